//! Config errors: `FILE:LINE:COL: message`, placed from a TOML span.

/// A configuration error: where it is and what is wrong, naming the key.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read: `cannot read config FILE: why`.
    Unreadable {
        /// The file.
        file: String,
        /// Why (the OS's words).
        message: String,
    },
    /// Something in the file is wrong: `FILE:LINE:COL: message`.
    At {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable { file, message } => write!(f, "cannot read config {file}: {message}"),
            Self::At {
                file,
                line,
                col,
                message,
            } => write!(f, "{file}:{line}:{col}: {message}"),
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
        ConfigError::Unreadable {
            file: path.to_string(),
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
