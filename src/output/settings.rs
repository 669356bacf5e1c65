//! The keys of one `[[output]]` table as each kind's parser takes them: typed, with the byte span of each value so
//! the config names file, line and column. Pure: no file access; `config` turns a [`SettingError`]'s span into a
//! line and column.

use serde::de::DeserializeOwned;
use toml::Spanned;

/// A byte range in the config text.
pub type Span = std::ops::Range<usize>;

/// What is wrong with an output's setting, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    /// Where in the text (the value, or the key when it should not be there).
    pub span: Span,
    /// What is wrong, naming the key (`output.KEY …`).
    pub message: String,
}

impl SettingError {
    /// An error at `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }
}

/// The keys of one `[[output]]` not taken yet.
pub struct Keys {
    entries: Vec<(Spanned<String>, Spanned<toml::Value>)>,
    /// The span of the `kind` value (errors about the output as a whole point there).
    pub kind_span: Span,
}

impl Keys {
    /// The table's keys, with the span of its `kind` value.
    pub fn new(entries: Vec<(Spanned<String>, Spanned<toml::Value>)>, kind_span: Span) -> Self {
        Self { entries, kind_span }
    }

    /// Takes `key` (without the `output.` prefix) as a `T`; None when absent. A value of the wrong type is an error
    /// at the value.
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<Spanned<T>>, SettingError> {
        let Some(i) = self.entries.iter().position(|(k, _)| k.get_ref() == key) else {
            return Ok(None);
        };
        let (_, v) = self.entries.remove(i);
        let span = v.span();
        T::deserialize(v.into_inner())
            .map(|t| Some(Spanned::new(span.clone(), t)))
            .map_err(|e| SettingError::at(span, format!("output.{key}: {}", e.message())))
    }

    /// Takes `key` as milliseconds within `lo..=hi`, in ns; None when absent.
    pub fn ms_ns(&mut self, key: &str, lo: f64, hi: f64) -> Result<Option<i64>, SettingError> {
        match self.take::<f64>(key)? {
            None => Ok(None),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(Some((s.get_ref() * 1e6).round() as i64)),
            Some(s) => Err(SettingError::at(
                s.span(),
                format!("output.{key} must be between {lo} and {hi} ms, not {}", s.get_ref()),
            )),
        }
    }

    /// Takes `key` as a non-empty path; None when absent.
    pub fn path(&mut self, key: &str) -> Result<Option<String>, SettingError> {
        match self.take::<String>(key)? {
            Some(p) if p.get_ref().is_empty() => {
                Err(SettingError::at(p.span(), format!("output.{key} must not be empty")))
            }
            p => Ok(p.map(Spanned::into_inner)),
        }
    }

    /// Takes `adapter` (`hciN`); None when absent.
    pub fn adapter(&mut self) -> Result<Option<String>, SettingError> {
        match self.take::<String>("adapter")? {
            Some(a) if !a.get_ref().starts_with("hci") || a.get_ref()[3..].parse::<u16>().is_err() => {
                Err(SettingError::at(
                    a.span(),
                    format!("output.adapter {:?} must look like hci0", a.get_ref()),
                ))
            }
            a => Ok(a.map(Spanned::into_inner)),
        }
    }

    /// Every key was taken: anything left is an error naming the first one (`other_kind_takes(key)`: whether some
    /// other kind takes it, which makes the message "does not apply" rather than "unknown").
    pub fn finish(self, kind: &str, other_kind_takes: impl Fn(&str) -> bool) -> Result<(), SettingError> {
        let Some((k, _)) = self.entries.into_iter().min_by_key(|(k, _)| k.span().start) else {
            return Ok(());
        };
        let key = k.get_ref();
        let message = if other_kind_takes(key) {
            format!("output.{key} does not apply to kind {kind:?}")
        } else {
            format!("unknown key output.{key} for kind {kind:?}")
        };
        Err(SettingError::at(k.span(), message))
    }
}
