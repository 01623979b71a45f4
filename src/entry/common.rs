//! Pieces shared by the host and the option grammar: quoting bad values in
//! messages, the character rules of dnsmasq's line reader, tags, JSON
//! shape checks and splitting an existing file into lines.

use super::error::EntryError;
use super::MAX_LINE_BYTES;
use serde_json::{Map, Value};

/// Longest excerpt of a bad value quoted in a message.
const QUOTE_MAX_CHARS: usize = 80;

/// `s` in backticks for a message: control characters escaped (so a
/// message never spans lines) and very long values shortened.
pub(crate) fn q(s: &str) -> String {
    let mut out = String::from("`");
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// A readable name for one character, used when refusing it.
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '\0' => "a NUL byte".to_owned(),
        '"' => "a double quote `\"`".to_owned(),
        '#' => "`#`".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if c.is_whitespace() => format!("the whitespace character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// The tag rule `^!?[A-Za-z0-9_.-]{1,64}$`; `!` (negation) only where the
/// tag is matched, never where it is set.
pub(crate) fn check_tag(tag: &str, negation_allowed: bool) -> Result<(), String> {
    let body = match tag.strip_prefix('!') {
        Some(rest) if negation_allowed => rest,
        Some(_) => {
            return Err(format!(
            "{} starts with `!`, which only makes sense when matching a tag, not when setting one",
            q(tag)
        ))
        }
        None => tag,
    };
    if body.is_empty() {
        return Err(format!(
            "{} is not a tag: a tag needs at least one character",
            q(tag)
        ));
    }
    if body.len() > 64 {
        return Err(format!(
            "{} is not a tag: a tag has at most 64 characters, this one has {}",
            q(tag),
            body.chars().count()
        ));
    }
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{} is not a tag: it contains {}; tags are letters, digits, `_`, `.` and `-`{}",
            q(tag),
            describe_char(c),
            if negation_allowed {
                ", optionally after a leading `!`"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

/// A readable name of a JSON value's type.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body as a JSON object, or an error about the whole body.
pub(crate) fn body_object<'a>(
    v: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>, EntryError> {
    v.as_object().ok_or_else(|| {
        EntryError::body(format!(
            "the body must be a JSON object ({what}), not {}",
            json_type(v)
        ))
    })
}

/// Refuses the first key of `obj` not in `allowed`, naming it.
pub(crate) fn reject_unknown_keys(
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), EntryError> {
    if let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        let list = allowed
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(EntryError::value(
            Some(format!("{prefix}{key}")),
            format!("unknown key {}; the keys here are {list}", q(key)),
        ));
    }
    Ok(())
}

/// A JSON string, or `None` for null/absent; anything else is refused.
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EntryError::at(
            field,
            format!("`{key}` must be a string or null, not {}", json_type(other)),
        )),
    }
}

/// A JSON array of strings (null/absent = empty); anything else is refused,
/// an element naming its index.
pub(crate) fn str_list<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Vec<&'a str>, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().ok_or_else(|| {
                    EntryError::at(
                        &format!("{field}[{i}]"),
                        format!(
                            "`{key}` must hold strings, but element {i} is {}",
                            json_type(item)
                        ),
                    )
                })
            })
            .collect(),
        Some(other) => Err(EntryError::at(
            field,
            format!(
                "`{key}` must be an array of strings, not {}",
                json_type(other)
            ),
        )),
    }
}

/// One meaningful line of an existing file.
#[derive(Debug)]
pub(crate) struct FileLine<'a> {
    /// 1-based line number in the file, as dnsmasq counts it in its log.
    pub(crate) number: usize,
    /// The line without its terminator (`\n` or `\r\n`).
    pub(crate) text: &'a str,
}

/// Splits the contents of an existing directory file the way dnsmasq reads
/// it: a trailing `\r` is dropped, a comment (`#` at the start or after
/// whitespace) is cut off, surrounding spaces and tabs are trimmed, and
/// lines left empty are skipped. Refuses non-UTF-8 contents and any line
/// (comments included: dnsmasq would parse the tail of a long comment as a
/// line of its own) longer than [`MAX_LINE_BYTES`] with its terminator.
/// Errors have no field and name the line number.
pub(crate) fn file_lines(bytes: &[u8]) -> Result<Vec<FileLine<'_>>, EntryError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        EntryError::body(format!(
            "the file is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut out = Vec::new();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (raw, terminated, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, ""),
        };
        rest = next;
        let raw_len = raw.len() + usize::from(terminated);
        if raw_len > MAX_LINE_BYTES {
            return Err(EntryError::body(format!(
                "line {number} is {raw_len} bytes long; dnsmasq reads lines in pieces of at most \
                 {MAX_LINE_BYTES} bytes and would parse the rest as a separate line"
            )));
        }
        let line = strip_comment(raw.strip_suffix('\r').unwrap_or(raw)).trim_matches([' ', '\t']);
        if !line.is_empty() {
            out.push(FileLine { number, text: line });
        }
    }
    Ok(out)
}

/// The whitespace of dnsmasq's line reader (C `isspace`).
fn is_reader_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `line` up to the first `#` that starts it or follows whitespace, which
/// dnsmasq's line reader treats as the start of a comment. (Quotes, which
/// would protect a `#`, are refused by the grammar anyway.)
fn strip_comment(line: &str) -> &str {
    let mut white = true;
    for (i, b) in line.bytes().enumerate() {
        if is_reader_space(b) {
            white = true;
        } else if white && b == b'#' {
            return &line[..i];
        } else {
            white = false;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    #[test]
    fn quoting_escapes_controls_and_shortens() {
        assert_eq!(q("a\nb"), "`a\\nb`");
        let long = "x".repeat(200);
        let quoted = q(&long);
        assert!(quoted.ends_with("…`"));
        assert_eq!(quoted.chars().count(), QUOTE_MAX_CHARS + 3);
    }

    #[test]
    fn tags() {
        assert!(check_tag("ironic", false).is_ok());
        assert!(check_tag("f3a1b2c3-0000-4000-8000-000000000000", false).is_ok());
        assert!(check_tag("!ipxe", true).is_ok());
        assert!(check_tag("a_b.c-d", true).is_ok());
        for (bad, neg) in [
            ("!ipxe", false),
            ("", true),
            ("!", true),
            ("a b", true),
            ("a:b", true),
            ("a,b", true),
            ("ä", true),
            ("!!x", true),
        ] {
            let msg = check_tag(bad, neg).unwrap_err();
            assert!(msg.contains(&format!("`{bad}`")), "{msg}");
        }
        assert!(check_tag(&"a".repeat(64), false).is_ok());
        assert!(check_tag(&"a".repeat(65), false).is_err());
        assert!(check_tag(&format!("!{}", "a".repeat(64)), true).is_ok());
    }

    #[test]
    fn file_lines_skip_blank_and_comments() {
        let lines = file_lines(
            b"# c\n\n  \r\n  # indented\nreal,line\r\n\t spaced ,x \t\nhash#kept # cut\nlast",
        )
        .unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.number, l.text)).collect();
        assert_eq!(
            got,
            vec![
                (5, "real,line"),
                (6, "spaced ,x"),
                (7, "hash#kept"),
                (8, "last")
            ]
        );
    }

    #[test]
    fn file_lines_refuse_long_lines_and_bad_utf8() {
        let mut long = vec![b'#'; MAX_LINE_BYTES];
        long.push(b'\n');
        let e = file_lines(&long).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("line 1 is 1025 bytes"), "{}", e.message);
        let ok = vec![b'#'; MAX_LINE_BYTES - 1];
        assert!(file_lines(&[ok.as_slice(), b"\n"].concat()).is_ok());
        let e = file_lines(b"ab\xffc\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("offset 2"));
    }
}
