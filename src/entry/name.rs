//! Entry names: the file name of an entry inside the hosts or options
//! directory.
//!
//! The rule `^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$`, not ending in `~`,
//! keeps every name a plain file name that dnsmasq reads: it cannot hold
//! `/` or be `.`/`..` (no escape from the directory), cannot start with `.`
//! (dnsmasq's inotify code ignores dotfiles — and the broker's own temp
//! files are dotfiles), cannot be an editor backup (`…~`) or autosave
//! (`#…#`) file, which dnsmasq also ignores. It admits Ironic's names
//! (`ironic-52:54:00:aa:bb:cc.conf`, `ironic-<uuid>.conf`, bare MACs,
//! `unknown_hosts_filter`).

use super::common::{describe_char, q};
use super::error::EntryError;
use std::fmt;

/// Longest entry name, in bytes (all characters are ASCII).
const MAX_NAME_LEN: usize = 200;

/// A validated entry file name: `^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$`,
/// not ending in `~`.
///
/// Shared (`Arc<str>`): the index keeps a name in several maps, and a clone
/// is a reference count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(std::sync::Arc<str>);

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Name {
    /// Checks `s` against the name rule. Errors have code `invalid_name`
    /// and field `"name"`.
    pub fn parse(s: &str) -> Result<Name, EntryError> {
        let fail = |why: String| EntryError {
            code: "invalid_name",
            field: Some("name".to_owned()),
            message: format!("{} is not a valid entry name: {why}", q(s)),
        };
        let Some(first) = s.chars().next() else {
            return Err(fail("it is empty".to_owned()));
        };
        if !first.is_ascii_alphanumeric() {
            return Err(fail(format!(
                "it starts with {}; a name starts with a letter or digit{}",
                describe_char(first),
                if first == '.' {
                    " (dnsmasq ignores dotfiles)"
                } else {
                    ""
                }
            )));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '+' | '-'))
        }) {
            return Err(fail(format!(
                "it contains {}; names are letters, digits and `._:@+-`",
                describe_char(c)
            )));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(fail(format!(
                "it is {} characters long; at most {MAX_NAME_LEN} are allowed",
                s.len()
            )));
        }
        if s.ends_with('~') {
            // Unreachable with the character rule above, kept so that a
            // future widening of the character set cannot forget it.
            return Err(fail(
                "dnsmasq ignores files whose name ends in `~`".to_owned(),
            ));
        }
        Ok(Name(s.into()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Name {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::parse(s)
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    #[test]
    fn accepts_ironic_names() {
        for ok in [
            "ironic-52:54:00:aa:bb:cc.conf",
            "ironic-f3a1b2c3-0000-4000-8000-000000000000.conf",
            "52:54:00:aa:bb:cc",
            "unknown_hosts_filter",
            "a",
            "0",
            "node+1@rack.2",
        ] {
            let n = Name::parse(ok).unwrap();
            assert_eq!(n.as_str(), ok);
            assert_eq!(n.to_string(), ok);
            assert_eq!(serde_json::to_value(&n).unwrap(), serde_json::json!(ok));
        }
        assert!(Name::parse(&"a".repeat(200)).is_ok());
    }

    #[test]
    fn refuses_bad_names() {
        let long = "a".repeat(201);
        for bad in [
            "",
            ".hidden",
            "-dash",
            "_x",
            "a/b",
            "..",
            "a b",
            "#autosave#",
            "backup~",
            "a\nb",
            "é",
            "a%b",
            long.as_str(),
        ] {
            let e = Name::parse(bad).unwrap_err();
            assert_eq!(e.code, "invalid_name");
            assert_eq!(e.field.as_deref(), Some("name"));
            assert!(e.message.contains(&q(bad)), "{}", e.message);
        }
    }
}
