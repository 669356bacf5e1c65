//! Config errors: `FILE:LINE:COL: message`, placed from a TOML span.

/// A configuration error, already formatted as `FILE:LINE:COL: message` (or, when the file cannot be read,
/// `cannot read config FILE: why`, marked by `line == 0`).
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file could not be read).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "cannot read config {}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The file at `path` could not be read.
    pub(super) fn unreadable(path: &str, e: &std::io::Error) -> Self {
        // The io::Error's Display ends in " (os error N)"; the OS text alone reads better.
        let text = e.to_string();
        let message = match text.rfind(" (os error ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ConfigError {
            file: path.to_string(),
            line: 0,
            col: 0,
            message,
        }
    }
}

/// The line and column (both from 1) of byte `offset` in `text`.
pub(super) fn pos(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| before.len() - i).unwrap_or(before.len() + 1);
    (line, col)
}
