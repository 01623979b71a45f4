//! The one error type of the grammar module.
//!
//! Every refusal names the JSON path of the bad value and says, in a
//! sentence, what is wrong with it — usually what dnsmasq would do with it
//! instead — so that the HTTP layer can hand it to the client unchanged as
//! `{"error": {"code", "message", "field"}}`.

use std::fmt;

/// Why an entry name, a host entry or an options entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// `"invalid_name"` for entry names, `"invalid_value"` otherwise.
    pub code: &'static str,
    /// JSON path of the bad value (`"name"`, `"macs[1]"`, `"set_tags[0]"`,
    /// `"ipv4"`, `"line"`, `"lines[2]"`, `"options[0].value"`), or `None`
    /// when the whole body (or the whole file) is at fault.
    pub field: Option<String>,
    /// A human sentence naming the bad value in backticks and saying why.
    pub message: String,
}

impl EntryError {
    /// An `invalid_value` error for `field`.
    pub(crate) fn value(field: Option<String>, message: impl Into<String>) -> Self {
        EntryError {
            code: "invalid_value",
            field,
            message: message.into(),
        }
    }

    /// An `invalid_value` error for the named field.
    pub(crate) fn at(field: &str, message: impl Into<String>) -> Self {
        Self::value(Some(field.to_owned()), message)
    }

    /// An `invalid_value` error about the whole body.
    pub(crate) fn body(message: impl Into<String>) -> Self {
        Self::value(None, message)
    }

    /// Puts `prefix` in front of the field path, for errors found inside a
    /// larger document: with prefix `"ops[3].spec"` (a trailing `.` is
    /// allowed) the field `"macs[0]"` becomes `"ops[3].spec.macs[0]"`, a
    /// field `"[2]"` becomes `"ops[3].spec[2]"`, and no field becomes
    /// `"ops[3].spec"`. An empty prefix changes nothing.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let base = prefix.strip_suffix('.').unwrap_or(prefix);
        if base.is_empty() {
            return self;
        }
        self.field = Some(match self.field.take() {
            None => base.to_owned(),
            Some(f) if f.is_empty() => base.to_owned(),
            Some(f) if f.starts_with('[') => format!("{base}{f}"),
            Some(f) => format!("{base}.{f}"),
        });
        self
    }
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({}): {}", self.code, field, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for EntryError {}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    #[test]
    fn prefix_joins_paths() {
        let e = EntryError::at("macs[0]", "m");
        assert_eq!(
            e.clone().with_prefix("ops[3].spec").field.as_deref(),
            Some("ops[3].spec.macs[0]")
        );
        assert_eq!(
            e.clone().with_prefix("ops[3].spec.").field.as_deref(),
            Some("ops[3].spec.macs[0]")
        );
        assert_eq!(e.clone().with_prefix("").field.as_deref(), Some("macs[0]"));
        let b = EntryError::body("m");
        assert_eq!(
            b.with_prefix("ops[1].spec.").field.as_deref(),
            Some("ops[1].spec")
        );
        let i = EntryError::at("[2]", "m");
        assert_eq!(i.with_prefix("lines").field.as_deref(), Some("lines[2]"));
    }

    #[test]
    fn display_names_field() {
        let e = EntryError::at("ipv4", "bad");
        assert_eq!(e.to_string(), "invalid_value (ipv4): bad");
        assert_eq!(EntryError::body("x").to_string(), "invalid_value: x");
    }
}
