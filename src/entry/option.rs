//! dhcp-option entries: the lines of one `--dhcp-optsdir` file.
//!
//! A dhcp-option line is `[tag:<t>,]…<option>[,<value>]`. dnsmasq's parser
//! (src/option.c, `parse_dhcp_opt`) is forgiving in ways that hide mistakes:
//!
//! * any leading field that is not an option takes part as a *tag to
//!   match*: a typo like `optoin:router` or a bare `!175` silently becomes a
//!   tag no client carries, and the option is never sent. The broker
//!   therefore requires every leading field to be written `tag:<t>`.
//! * a bare number is a DHCPv4 option: `59` is DHCPv4's T2 (rebinding
//!   time), not the DHCPv6 boot-file URL, which is `option6:59` (or
//!   `option6:bootfile-url`). A URL given to `59` would be sent as a time of
//!   0, so time options only take numbers.
//! * the value is not just text: dnsmasq guesses its encoding from its
//!   characters (decimal, hex octets, IPv4/IPv6 addresses, text) and from
//!   the option's type. Some guesses fail (`bad IP address`: the line is
//!   skipped and only logged) and some silently change the value (a trailing
//!   `s` after digits is a length marker and is dropped). [`check_value`]
//!   follows dnsmasq's own characterisation and refuses both kinds.
//! * the option's type depends on the release: 2.93 types DHCPv4 91, 92,
//!   114 and DHCPv6 103, which 2.90 and 2.91 characterise from the value.
//!   [`check_value`] reads the value as each release does and refuses it
//!   unless they all send the same bytes (`3600i` for 91, not `3600`, which
//!   2.90 sends in 2 bytes and 2.93 in 4; a URL for 114, not `10.0.0.1`,
//!   which 2.90 sends as an address and 2.93 as text), and refuses the names
//!   only 2.93 knows (`option:captive-portal`: 2.90 refuses the line).
//!
//! Values may hold commas and inner spaces, but never a control character,
//! `"` (dnsmasq strips quotes), leading or trailing whitespace (trimmed) or
//! whitespace followed by `#` (the start of a comment).

use super::common::{
    body_object, check_tag, describe_char, file_lines, json_type, q, reject_unknown_keys,
};
use super::error::EntryError;
use super::known_options::{self, Kind, OptInfo};
use super::MAX_LINE_BYTES;
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DHCPv4 option payload.
const MAX_V4_OPTION_LEN: usize = 255;

/// One dhcp-option line: the tags a client must (or, with `!`, must not)
/// carry, the option, and its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DhcpOption {
    /// Tags to match, in order; a leading `!` means "must not carry".
    pub tags: Vec<String>,
    /// The option, canonical: `"67"`, `"option:router"`, `"option6:59"`,
    /// `"option6:bootfile-url"` (names in lowercase, numbers without
    /// leading zeros).
    pub option: String,
    /// The value as written to the line; empty for an option sent without
    /// a value (rendered without a trailing comma).
    pub value: String,
}

impl DhcpOption {
    /// Which option this line sets, as dnsmasq keys it: (DHCPv6?, number).
    /// `67` and `option:bootfile-name` are the same option. `None` only for
    /// a line that did not come through this module's parser.
    pub fn code(&self) -> Option<(bool, u16)> {
        parse_option_field(&self.option)
            .ok()
            .map(|o| (o.v6, o.code))
    }

    /// The line for this option, without newline: `tag:<t>,…,<option>` and
    /// `,<value>` unless the value is empty.
    fn line(&self) -> String {
        let mut line = String::new();
        for t in &self.tags {
            line.push_str("tag:");
            line.push_str(t);
            line.push(',');
        }
        line.push_str(&self.option);
        if !self.value.is_empty() {
            line.push(',');
            line.push_str(&self.value);
        }
        line
    }
}

/// The contents of one dhcp-optsdir file: a list of dhcp-option lines,
/// each of which dnsmasq reads as meant and which fits in
/// [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsSpec {
    options: Vec<DhcpOption>,
}

/// The keys of an options body.
const BODY_KEYS: [&str; 2] = ["options", "lines"];
/// The keys of one option object.
const OPTION_KEYS: [&str; 3] = ["tags", "option", "value"];

impl OptionsSpec {
    /// Reads `{"options": [{"tags": [...], "option": "67", "value": "…"}]}`
    /// (`tags` and `value` may be left out; `option` may also be a JSON
    /// number, meaning a DHCPv4 option) or `{"lines": ["tag:x,67,pxelinux.0",
    /// …]}`. Errors name the field: `"options[0].value"`, `"lines[2]"`, ….
    pub fn from_json(v: &Value) -> Result<OptionsSpec, EntryError> {
        let obj = body_object(v, "{\"options\": […]} or {\"lines\": […]}")?;
        reject_unknown_keys(obj, &BODY_KEYS, "")?;
        match (obj.get("options"), obj.get("lines")) {
            (Some(_), Some(_)) => Err(EntryError::at(
                "lines",
                "give either `options` or `lines`, not both".to_owned(),
            )),
            (None, None) => Err(EntryError::body(
                "the body needs `options` (a list of option objects) or `lines` (a list of \
                 dhcp-option lines)",
            )),
            (Some(options), None) => {
                let items = options.as_array().ok_or_else(|| {
                    EntryError::at(
                        "options",
                        format!("`options` must be an array, not {}", json_type(options)),
                    )
                })?;
                let options = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        option_from_json(item).map_err(|e| e.with_prefix(&format!("options[{i}]")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(OptionsSpec { options })
            }
            (None, Some(lines)) => {
                let items = lines.as_array().ok_or_else(|| {
                    EntryError::at(
                        "lines",
                        format!(
                            "`lines` must be an array of strings, not {}",
                            json_type(lines)
                        ),
                    )
                })?;
                let options = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let field = format!("lines[{i}]");
                        let line = item.as_str().ok_or_else(|| {
                            EntryError::at(
                                &field,
                                format!(
                                    "`lines` must hold strings, but element {i} is {}",
                                    json_type(item)
                                ),
                            )
                        })?;
                        parse_option_line(line).map_err(|m| EntryError::at(&field, m))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(OptionsSpec { options })
            }
        }
    }

    /// Reads the contents of an existing optsdir file: UTF-8; blank lines
    /// and `#` comments skipped, CRLF and surrounding spaces tolerated, as
    /// dnsmasq's line reader does. Errors have no field and name the line
    /// number.
    pub fn parse_file(bytes: &[u8]) -> Result<OptionsSpec, EntryError> {
        let options = file_lines(bytes)?
            .into_iter()
            .map(|l| {
                parse_option_line(l.text)
                    .map_err(|m| EntryError::body(format!("line {}: {m}", l.number)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OptionsSpec { options })
    }

    /// The lines joined by `\n`, plus a final `\n` — byte-identical to
    /// Ironic's stock provider for the lines it writes. An empty list
    /// renders as `"\n"`.
    pub fn render(&self) -> String {
        let mut out = self
            .options
            .iter()
            .map(DhcpOption::line)
            .collect::<Vec<_>>()
            .join("\n");
        out.push('\n');
        out
    }

    /// The options, in file order.
    pub fn options(&self) -> &[DhcpOption] {
        &self.options
    }
}

/// Serializes as `{"options": [{"tags": [...], "option": "…", "value": "…"}, …]}`.
impl serde::Serialize for OptionsSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            options: &'a [DhcpOption],
        }
        Body {
            options: &self.options,
        }
        .serialize(serializer)
    }
}

/// One option object of the `options` list; error fields are relative to it.
fn option_from_json(item: &Value) -> Result<DhcpOption, EntryError> {
    let obj = item.as_object().ok_or_else(|| {
        EntryError::body(format!(
            "each option must be an object with `tags`, `option` and `value`, not {}",
            json_type(item)
        ))
    })?;
    reject_unknown_keys(obj, &OPTION_KEYS, "")?;
    let mut tags = Vec::new();
    match obj.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, t) in list.iter().enumerate() {
                let field = format!("tags[{i}]");
                let t = t.as_str().ok_or_else(|| {
                    EntryError::at(
                        &field,
                        format!(
                            "`tags` must hold strings, but element {i} is {}",
                            json_type(t)
                        ),
                    )
                })?;
                add_tag(&mut tags, t).map_err(|m| EntryError::at(&field, m))?;
            }
        }
        Some(other) => {
            return Err(EntryError::at(
                "tags",
                format!(
                    "`tags` must be an array of strings, not {}",
                    json_type(other)
                ),
            ))
        }
    }
    let option_text = match obj.get("option") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err(EntryError::at(
                "option",
                "`option` is missing: give a number 1–255, `option:<name>` or `option6:<number or name>`",
            ))
        }
        Some(other) => {
            return Err(EntryError::at(
                "option",
                format!("`option` must be a string, not {}", json_type(other)),
            ))
        }
    };
    let opt = parse_option_field(&option_text).map_err(|m| EntryError::at("option", m))?;
    let value = match obj.get("value") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(EntryError::at(
                "value",
                format!("`value` must be a string, not {}", json_type(other)),
            ))
        }
    };
    check_text(value, "value").map_err(|m| EntryError::at("value", m))?;
    if !value.is_empty() {
        check_value(&opt, value).map_err(|m| EntryError::at("value", m))?;
    }
    let option = DhcpOption {
        tags,
        option: opt.canonical,
        value: value.to_owned(),
    };
    check_length(&option).map_err(|m| EntryError::at("value", m))?;
    Ok(option)
}

/// Adds a match tag, refusing bad and repeated ones.
fn add_tag(tags: &mut Vec<String>, tag: &str) -> Result<(), String> {
    check_tag(tag, true)?;
    if tags.iter().any(|t| t == tag) {
        return Err(format!("the tag {} is listed twice", q(tag)));
    }
    tags.push(tag.to_owned());
    Ok(())
}

/// Refuses an option whose line would not fit in [`MAX_LINE_BYTES`].
fn check_length(option: &DhcpOption) -> Result<(), String> {
    let len = option.line().len() + 1;
    if len > MAX_LINE_BYTES {
        return Err(format!(
            "the option renders to a line of {len} bytes with its newline; at most \
             {MAX_LINE_BYTES} fit (dnsmasq would parse the rest as a separate line)"
        ));
    }
    Ok(())
}

/// Parses one dhcp-option line; the error is a message.
fn parse_option_line(line: &str) -> Result<DhcpOption, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    if line.trim().is_empty() {
        return Err("the line is empty".to_owned());
    }
    if line.len() + 1 > MAX_LINE_BYTES {
        return Err(format!(
            "the line is {} bytes long; with its newline it must fit in {MAX_LINE_BYTES} bytes, \
             dnsmasq would parse the rest as a separate line",
            line.len()
        ));
    }
    check_text(line, "line")?;
    let mut tags = Vec::new();
    let mut rest = line;
    let opt = loop {
        let (field, after) = match rest.split_once(',') {
            Some((f, a)) => (f, Some(a)),
            None => (rest, None),
        };
        let is_option = field.starts_with("option:")
            || field.starts_with("option6:")
            || (!field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()));
        if let Some(tag) = field.strip_prefix("tag:") {
            add_tag(&mut tags, tag)?;
        } else if is_option {
            break (parse_option_field(field)?, after);
        } else {
            return Err(refuse_leading_field(field, line));
        }
        match after {
            Some(a) => rest = a,
            None => {
                return Err(format!(
                    "the line {} has tags but no option; write the option (a number, \
                     `option:<name>` or `option6:<number or name>`) after the tags",
                    q(line)
                ))
            }
        }
    };
    let (opt, value) = opt;
    if let Some(v) = value {
        check_text(v, "value")?;
        check_value(&opt, v)?;
    }
    let option = DhcpOption {
        tags,
        option: opt.canonical,
        value: value.unwrap_or_default().to_owned(),
    };
    check_length(&option)?;
    Ok(option)
}

/// The message for a leading field that is neither `tag:` nor an option.
fn refuse_leading_field(field: &str, line: &str) -> String {
    if field.is_empty() {
        return format!(
            "the line {} has an empty field before the option (two commas in a row, or a \
             leading comma)",
            q(line)
        );
    }
    for (prefix, why) in [
        (
            "set:",
            "in a dhcp-option line dnsmasq reads `set:` as a tag to *match*; write `tag:` for that",
        ),
        ("net:", "`net:` is the old spelling of `tag:`; write `tag:`"),
        (
            "vendor:",
            "`vendor:` (vendor-class options) is not supported by the broker",
        ),
        (
            "encap:",
            "`encap:` (encapsulated options) is not supported by the broker",
        ),
        (
            "vi-encap:",
            "`vi-encap:` (vendor-identifying options) is not supported by the broker",
        ),
    ] {
        if field.starts_with(prefix) {
            return format!("{} cannot be used here: {why}", q(field));
        }
    }
    format!(
        "{} is neither an option (a number, `option:<name>` or `option6:<number or name>`) nor \
         a `tag:`; dnsmasq would silently take it as a tag to match, so the option would never \
         be sent — if a tag is meant, write `tag:<tag>`",
        q(field)
    )
}

/// A parsed option field.
#[derive(Debug)]
struct OptionRef {
    /// Canonical spelling.
    canonical: String,
    /// DHCPv6?
    v6: bool,
    /// The option number.
    code: u16,
    /// dnsmasq's table entry for the number, if any.
    info: Option<&'static OptInfo>,
}

/// Parses `<1-255>`, `option:<name>` or `option6:<1-65535 or name>`.
fn parse_option_field(s: &str) -> Result<OptionRef, String> {
    let (v6, body) = if let Some(rest) = s.strip_prefix("option6:") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("option:") {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{} is not an option dnsmasq accepts: `option:` takes a name; for a number write \
                 just `{}`",
                q(s),
                rest.trim_start_matches('0')
            ));
        }
        (false, rest)
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        (false, s)
    } else {
        return Err(format!(
            "{} is not an option: write a number 1–255, `option:<name>` or `option6:<number or name>`",
            q(s)
        ));
    };
    let max: u32 = if v6 { 65_535 } else { 255 };
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = body.trim_start_matches('0');
        let n: u32 = if trimmed.len() > 5 {
            u32::MAX
        } else {
            trimmed.parse().unwrap_or(0)
        };
        if n == 0 || n > max {
            return Err(format!(
                "{} is not an option number: {} options are numbered 1–{max}",
                q(s),
                if v6 { "DHCPv6" } else { "DHCPv4" }
            ));
        }
        let code = u16::try_from(n).map_err(|e| e.to_string())?;
        return Ok(OptionRef {
            canonical: if v6 {
                format!("option6:{n}")
            } else {
                n.to_string()
            },
            v6,
            code,
            info: known_options::by_code(v6, code),
        });
    }
    let family = if v6 { "DHCPv6" } else { "DHCPv4" };
    let help = if v6 { "dhcp6" } else { "dhcp" };
    match known_options::by_name(v6, body) {
        Some(info) if !info.in_every_release() => Err(format!(
            "{} is a name only {} and later know; {} refuse the line (`bad dhcp-option`): \
             write the number, `{}`",
            q(s),
            known_options::releases_text(info.since, None),
            known_options::releases_text(known_options::RELEASES[0], Some(info.since)),
            if v6 {
                format!("option6:{}", info.code)
            } else {
                info.code.to_string()
            }
        )),
        Some(info) if !info.internal => Ok(OptionRef {
            canonical: format!(
                "{}:{}",
                if v6 { "option6" } else { "option" },
                body.to_ascii_lowercase()
            ),
            v6,
            code: info.code,
            info: Some(info),
        }),
        Some(info) => Err(format!(
            "{} names the {family} option {}, which dnsmasq sets itself and refuses in a \
             dhcp-option by name",
            q(s),
            info.code
        )),
        None => {
            let hint = match known_options::by_name(!v6, body) {
                Some(other) if !other.internal => format!(
                    " (`{}` is a {} option: write `{}:{}`)",
                    body,
                    if v6 { "DHCPv4" } else { "DHCPv6" },
                    if v6 { "option" } else { "option6" },
                    body.to_ascii_lowercase()
                ),
                _ => String::new(),
            };
            Err(format!(
                "{} is not a {family} option name dnsmasq knows (see `dnsmasq --help {help}`){hint}",
                q(s)
            ))
        }
    }
}

/// The character rules for a value (and for a whole line, `what` naming
/// which): no control characters, no `"`, no whitespace other than inner
/// spaces, no leading or trailing space, no ` #`.
fn check_text(text: &str, what: &str) -> Result<(), String> {
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() || c == '"' || (c.is_whitespace() && c != ' '))
    {
        let why = if c == '"' {
            "dnsmasq strips double quotes when it reads the line"
        } else if c.is_control() {
            "dnsmasq turns control characters into spaces or ends the line there"
        } else {
            "only plain spaces are allowed inside a value"
        };
        return Err(format!(
            "the {what} {} contains {}; {why}",
            q(text),
            describe_char(c)
        ));
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(format!(
            "the {what} {} starts or ends with a space, which dnsmasq would trim",
            q(text)
        ));
    }
    if text.contains(" #") {
        return Err(format!(
            "the {what} {} contains a space followed by `#`, which dnsmasq reads as the start \
             of a comment",
            q(text)
        ));
    }
    Ok(())
}

/// What dnsmasq sends for a value: two readings that compare equal send
/// the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    /// Hex octets, as written.
    Hex,
    /// A number (a decimal, or a time in seconds) sent big-endian in `len`
    /// bytes.
    Number { len: usize, value: u64 },
    /// IPv4 addresses (with optional prefix lengths), as written.
    Ipv4List,
    /// IPv6 addresses, as written.
    Ipv6List,
    /// Domain names in DNS wire format.
    DomainList,
    /// DHCPv6 strings, each with a 2-byte length.
    CStrings,
    /// The text as written.
    Text,
}

impl Reading {
    /// How a message describes it.
    fn describe(&self) -> String {
        match self {
            Reading::Hex => "hex octets".to_owned(),
            Reading::Number { len, value } => format!(
                "the number {value} in {len} byte{}",
                if *len == 1 { "" } else { "s" }
            ),
            Reading::Ipv4List => "IPv4 addresses".to_owned(),
            Reading::Ipv6List => "IPv6 addresses".to_owned(),
            Reading::DomainList => "domain names".to_owned(),
            Reading::CStrings => "a list of strings".to_owned(),
            Reading::Text => "text".to_owned(),
        }
    }
}

/// Refuses a value that some supported dnsmasq would reject or encode
/// differently from what it says, or that two supported releases would
/// send differently (an option 2.93 types and 2.90/2.91 do not: see
/// `known_options`). `value` is what follows the option's comma (possibly
/// empty).
fn check_value(opt: &OptionRef, value: &str) -> Result<(), String> {
    let views = known_options::views(opt.info);
    let mut first: Option<(known_options::View, Reading)> = None;
    for view in views.iter().copied() {
        let reading = read_value(opt, view.info, value).map_err(|e| {
            if views.len() > 1 {
                format!("{}: {e}", view.releases())
            } else {
                e
            }
        })?;
        match &first {
            None => first = Some((view, reading)),
            Some((v0, r0)) if *r0 != reading => {
                return Err(differing_readings(opt, value, (v0, r0), (&view, &reading)))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The message for a value two releases send differently, with a value
/// every release reads the same where there is one.
fn differing_readings(
    opt: &OptionRef,
    value: &str,
    (old, old_reading): (&known_options::View, &Reading),
    (new, new_reading): (&known_options::View, &Reading),
) -> String {
    let name = opt_display(opt);
    let hint = match (new.info.map(|i| i.kind), new_reading) {
        (Some(Kind::Time), Reading::Number { value: secs, .. }) => format!(
            "; write the seconds with dnsmasq's 4-byte marker, `{secs}i`, which every release \
             sends as a 4-byte number"
        ),
        (Some(Kind::Time), _) => "; write the seconds with dnsmasq's 4-byte marker, like \
             `3600i`"
            .to_owned(),
        (Some(Kind::Name), _) => "; every release sends a value as text once it holds a \
             character other than hex digits, `.:-/,[]` and space, as a URI such as \
             `https://portal.example/` does"
            .to_owned(),
        _ => String::new(),
    };
    format!(
        "{} send {} for {name} as {}, {} as {}, so the entry would mean different things \
         depending on the dnsmasq release{hint}",
        old.releases(),
        q(value),
        old_reading.describe(),
        new.releases(),
        new_reading.describe(),
    )
}

/// How dnsmasq ends up encoding a value.
#[derive(Debug, PartialEq, Eq)]
enum Encoding {
    Hex,
    Decimal,
    Ipv4List,
    Ipv6List,
    DomainList,
    CStrings,
    Text,
}

/// What a dnsmasq whose table has `info` for the option (`None`: untyped)
/// sends for `value`, or why it would refuse or misread it. Follows
/// `parse_dhcp_opt`: the value's characters decide whether it can be a
/// decimal, hex octets, IPv4 or IPv6 addresses, and the option's type then
/// picks the encoding.
fn read_value(
    opt: &OptionRef,
    info: Option<&'static OptInfo>,
    value: &str,
) -> Result<Reading, String> {
    let kind = info.map_or(Kind::Untyped, |i| i.kind);
    let name = opt_display(opt);
    if value.is_empty() {
        if kind == Kind::AddrList {
            return Err(format!(
                "{name} needs addresses: dnsmasq refuses an empty value after the comma for it \
                 (to send the option without a value, leave out the comma and value)"
            ));
        }
        return Ok(Reading::Text);
    }
    if kind == Kind::Time {
        return check_time(opt, &name, value);
    }
    // dnsmasq's characterisation of the value, character by character.
    let b = value.as_bytes();
    let (mut is_addr, mut is_addr6, mut is_hex, mut is_dec) = (true, true, true, true);
    let (mut found_dig, mut found_colon) = (false, false);
    let (mut digs, mut dots) = (1usize, 0usize);
    let mut lenchar = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b',' => {
                is_dec = false;
                is_hex = false;
            }
            b':' => {
                digs += 1;
                is_dec = false;
                is_addr = false;
                found_colon = true;
            }
            b'/' => {
                is_addr6 = false;
                is_dec = false;
                is_hex = false;
                if i == 0 {
                    is_addr = false;
                }
            }
            b'.' => {
                is_dec = false;
                is_hex = false;
                dots += 1;
            }
            b'-' => {
                is_hex = false;
                is_addr = false;
                is_addr6 = false;
            }
            b' ' => {
                is_dec = false;
                is_hex = false;
            }
            b'0'..=b'9' => found_dig = true,
            _ => {
                is_addr = false;
                if i + 1 == b.len() && is_dec && matches!(c, b'b' | b's' | b'i') {
                    lenchar = Some(c);
                } else {
                    is_dec = false;
                }
                if !c.is_ascii_hexdigit() {
                    is_hex = false;
                    if c != b'[' && c != b']' {
                        is_addr6 = false;
                    }
                }
            }
        }
    }
    // dnsmasq cuts the length marker off the value before anything else
    // (an ASCII byte, so the cut keeps a char boundary).
    let eff = if lenchar.is_some() {
        &value[..value.len() - 1]
    } else {
        value
    };
    if !found_dig {
        is_dec = false;
        is_addr = false;
    }
    if !found_colon {
        is_addr6 = false;
    }
    let mut kind = kind;
    if opt.v6 && opt.code == 56 && !is_hex {
        // DHCPv6 NTP server: addresses or domain names.
        kind = if is_addr6 {
            Kind::AddrList
        } else {
            Kind::Rfc1035Name
        };
    }
    match kind {
        Kind::AddrList => {
            is_dec = false;
            is_hex = false;
            if !opt.v6 && (!is_addr || dots == 0) {
                return Err(format!(
                    "{name} takes IPv4 addresses (comma-separated, like `10.0.0.1,10.0.0.2`); \
                     dnsmasq refuses {} as `bad IP address`",
                    q(value)
                ));
            }
            if opt.v6 && !is_addr6 {
                return Err(format!(
                    "{name} takes IPv6 addresses (comma-separated, like `fd00::1,fd00::2`); \
                     dnsmasq refuses {} as `bad IPv6 address`",
                    q(value)
                ));
            }
        }
        Kind::Name | Kind::Rfc1035Name | Kind::CString => {
            is_addr = false;
            is_addr6 = false;
            is_dec = false;
            is_hex = false;
        }
        _ => {}
    }
    let encoding = if is_hex && digs > 1 {
        Encoding::Hex
    } else if is_dec {
        Encoding::Decimal
    } else if is_addr && !opt.v6 {
        Encoding::Ipv4List
    } else if is_addr6 && opt.v6 {
        Encoding::Ipv6List
    } else if !opt.v6 && (opt.code == 119 || opt.code == 120) {
        Encoding::DomainList
    } else if opt.v6 && kind == Kind::CString {
        Encoding::CStrings
    } else if opt.v6 && kind == Kind::Rfc1035Name {
        Encoding::DomainList
    } else {
        Encoding::Text
    };
    if let Some(c) = lenchar {
        if encoding != Encoding::Decimal {
            return Err(format!(
                "dnsmasq reads a `{}` after digits at the end of a value as a length marker and \
                 would send {} instead of {} for {name}",
                char::from(c),
                q(eff),
                q(value)
            ));
        }
    }
    let (len, reading) = match encoding {
        Encoding::Hex => {
            if opt.v6 && opt.code == 56 && value.parse::<Ipv6Addr>().is_ok() {
                return Err(format!(
                    "dnsmasq would read {} for {name} as hex octets, not as an address; write \
                     the address in brackets: `[{value}]`",
                    q(value)
                ));
            }
            (check_hex(value, digs, &name)?, Reading::Hex)
        }
        Encoding::Decimal => {
            let (len, value) = check_decimal(info, eff, lenchar, &name)?;
            (len, Reading::Number { len, value })
        }
        Encoding::Ipv4List => (
            check_ipv4_list(value, &name, opt.code == 120)?,
            Reading::Ipv4List,
        ),
        Encoding::Ipv6List => (check_ipv6_list(value, &name)?, Reading::Ipv6List),
        Encoding::DomainList => (
            check_domain_list(value, &name, if opt.code == 120 { 1 } else { 0 })?,
            Reading::DomainList,
        ),
        Encoding::CStrings => (check_cstrings(value, &name)?, Reading::CStrings),
        Encoding::Text => (value.len(), Reading::Text),
    };
    if !opt.v6 && len > MAX_V4_OPTION_LEN {
        return Err(format!(
            "the value {} encodes to {len} bytes; a DHCPv4 option holds at most \
             {MAX_V4_OPTION_LEN} and dnsmasq refuses it as `dhcp-option too long`",
            q(value)
        ));
    }
    Ok(reading)
}

/// `option 67 (bootfile-name)`, `option 114 (captive-portal in dnsmasq
/// 2.93)` and the like, for messages.
fn opt_display(opt: &OptionRef) -> String {
    let family = if opt.v6 { "DHCPv6 option" } else { "option" };
    match opt.info {
        Some(info) if !info.in_every_release() => format!(
            "{family} {} ({} in {})",
            opt.code,
            info.name,
            known_options::releases_text(info.since, None)
        ),
        Some(info) => format!("{family} {} ({})", opt.code, info.name),
        None => format!("{family} {}", opt.code),
    }
}

/// A time option's value: digits with an optional unit; sent in 4 bytes.
/// A final `i` after the digits (dnsmasq's "4 bytes" marker) is cut off
/// before the time is read, so `3600i` is 3600 seconds: the one spelling
/// that an untyped option's reading (a 4-byte decimal) agrees with.
fn check_time(opt: &OptionRef, name: &str, value: &str) -> Result<Reading, String> {
    let marked = value
        .strip_suffix('i')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    let per = match value.bytes().last().map(|b| b.to_ascii_lowercase()) {
        _ if marked.is_some() => None,
        Some(b's') => Some(1u64),
        Some(b'm') => Some(60),
        Some(b'h') => Some(3_600),
        Some(b'd') => Some(86_400),
        Some(b'w') => Some(604_800),
        _ => None,
    };
    // The unit is one ASCII byte, so cutting it off keeps a char boundary.
    let (digits, per) = match (marked, per) {
        (Some(d), _) => (d, 1),
        (None, Some(per)) => (&value[..value.len() - 1], per),
        (None, None) => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let hint = if !opt.v6 && opt.code == 59 {
            "; DHCPv4 option 59 is the rebinding time (T2) — the DHCPv6 boot-file URL is \
             `option6:59` (`option6:bootfile-url`)"
        } else {
            ""
        };
        return Err(format!(
            "{name} is a time: write a whole number of seconds, optionally followed by `s`, `m`, \
             `h`, `d` or `w`; dnsmasq would send {} as a wrong number{hint}",
            q(value)
        ));
    }
    let trimmed = digits.trim_start_matches('0');
    let amount: u64 = if trimmed.len() > 12 {
        u64::MAX
    } else {
        trimmed.parse().unwrap_or(0)
    };
    let seconds = amount.saturating_mul(per);
    if seconds > i32::MAX as u64 {
        return Err(format!(
            "{} is too large a time for {name}: dnsmasq computes it in a 32-bit signed integer",
            q(value)
        ));
    }
    Ok(Reading::Number {
        len: 4,
        value: seconds,
    })
}

/// Hex octets `aa:bb:…`: each one or two hex digits, so that dnsmasq's
/// octet count matches what it reads. Returns the encoded length.
fn check_hex(value: &str, digs: usize, name: &str) -> Result<usize, String> {
    if let Some(bad) = value.split(':').find(|o| !(1..=2).contains(&o.len())) {
        return Err(format!(
            "dnsmasq reads {} for {name} as hex octets separated by `:`, but {} is not one or two \
             hex digits, so it would send different bytes",
            q(value),
            q(bad)
        ));
    }
    Ok(digs)
}

/// A decimal: dnsmasq sends it in the option's size (`info`: the table
/// entry the release reading it has), or in 1, 2 or 4 bytes by magnitude,
/// or as marked by a `b`/`s`/`i` suffix. Returns the length and the value.
fn check_decimal(
    info: Option<&'static OptInfo>,
    digits: &str,
    lenchar: Option<u8>,
    name: &str,
) -> Result<(usize, u64), String> {
    // dnsmasq keeps a value of digits and `-` as a decimal and reads it with
    // atoi(), which stops at the first `-` (or reads a negative number).
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "dnsmasq takes {} for {name} as a decimal number and would send only the part before \
             the `-` (or a negative number); a decimal value is digits only, text here needs at \
             least one other character",
            q(digits)
        ));
    }
    let trimmed = digits.trim_start_matches('0');
    let val: u64 = if trimmed.len() > 12 {
        u64::MAX
    } else {
        trimmed.parse().unwrap_or(0)
    };
    if val > i32::MAX as u64 {
        return Err(format!(
            "{} is too large for {name}: dnsmasq reads decimals as 32-bit signed integers",
            q(digits)
        ));
    }
    let by_size = match info.map(|i| (i.kind, i.internal)) {
        Some((Kind::Fixed(n), _)) => Some(usize::from(n)),
        Some((_, true)) if lenchar.is_none() => {
            return Err(format!(
                "dnsmasq mis-sizes a decimal value for {name}, which it normally sets itself; \
                 write the value as hex octets (like `01:02`) or add a length marker `b`, `s` or `i`"
            ))
        }
        _ => None,
    };
    let len = match lenchar {
        Some(b'b') => 1,
        Some(b's') => 2,
        Some(_) => 4,
        None => by_size.unwrap_or(if val > 0xffff {
            4
        } else if val > 0xff {
            2
        } else {
            1
        }),
    };
    if len < 4 && val >> (8 * len) != 0 {
        return Err(format!(
            "{} does not fit in the {len} byte{} dnsmasq sends for {name}; it would be cut",
            q(digits),
            if len == 1 { "" } else { "s" }
        ));
    }
    Ok((len, val))
}

/// IPv4 addresses, each optionally with `/<prefix length>`. Returns the
/// encoded length.
fn check_ipv4_list(value: &str, name: &str, sip: bool) -> Result<usize, String> {
    let mut len = usize::from(sip);
    for item in value.split(',') {
        let (addr, mask) = match item.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (item, None),
        };
        if addr.parse::<Ipv4Addr>().is_err() {
            return Err(format!(
                "dnsmasq reads the value of {name} as IPv4 addresses, but {} is not one (it \
                 would refuse the line as `bad IPv4 address`)",
                q(item)
            ));
        }
        match mask {
            None => len += 4,
            Some(m) => {
                let bits = if !m.is_empty() && m.len() <= 2 && m.bytes().all(|b| b.is_ascii_digit())
                {
                    m.parse::<usize>().ok().filter(|&n| n <= 32)
                } else {
                    None
                };
                let Some(bits) = bits else {
                    return Err(format!(
                        "{} has a bad prefix length {}: write 0–32",
                        q(item),
                        q(m)
                    ));
                };
                len += 1 + bits.div_ceil(8);
            }
        }
    }
    Ok(len)
}

/// IPv6 addresses, each optionally in brackets. Returns the encoded length.
fn check_ipv6_list(value: &str, name: &str) -> Result<usize, String> {
    let mut len = 0;
    for item in value.split(',') {
        let inner = item.strip_prefix('[').unwrap_or(item);
        let inner = if inner.len() > 1 {
            inner.strip_suffix(']').unwrap_or(inner)
        } else {
            inner
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "dnsmasq reads the value of {name} as IPv6 addresses, but {} is not one (it \
                 would refuse the line as `bad IPv6 address`)",
                q(item)
            ));
        }
        len += 16;
    }
    Ok(len)
}

/// Domain names (or `.`), sent in DNS wire format. Returns an upper bound
/// of the encoded length (dnsmasq may compress repeated suffixes).
fn check_domain_list(value: &str, name: &str, header: usize) -> Result<usize, String> {
    let mut len = header;
    for item in value.split(',') {
        check_domain(item).map_err(|why| {
            format!(
                "{name} takes domain names separated by commas, but {} {why}",
                q(item)
            )
        })?;
        len += if item == "." {
            1
        } else {
            item.trim_end_matches('.').len() + 2
        };
    }
    Ok(len)
}

/// A domain name as dnsmasq encodes it without IDN conversion: lowercase
/// LDH labels (and `_`), at most 63 characters each, optional final dot.
fn check_domain(item: &str) -> Result<(), String> {
    if item == "." {
        return Ok(());
    }
    if item.is_empty() {
        return Err("is empty (dnsmasq stops reading the list there)".to_owned());
    }
    let body = item.strip_suffix('.').unwrap_or(item);
    if body.len() > 253 {
        return Err("is longer than 253 characters".to_owned());
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err("has an empty label".to_owned());
        }
        if label.len() > 63 {
            return Err(format!(
                "has the label {}, longer than 63 characters",
                q(label)
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "contains {}; write domain names with lowercase letters, digits, `-` and `_` \
                 (dnsmasq would pass anything else through IDN conversion)",
                describe_char(c)
            ));
        }
    }
    Ok(())
}

/// DHCPv6 string lists: dnsmasq stops at an empty element and trims spaces
/// around commas. Returns the encoded length.
fn check_cstrings(value: &str, name: &str) -> Result<usize, String> {
    let mut len = 0;
    for item in value.split(',') {
        if item.is_empty() || item.starts_with(' ') || item.ends_with(' ') {
            return Err(format!(
                "{name} takes strings separated by commas; in {} the element {} is empty or has \
                 spaces next to a comma, which dnsmasq would drop",
                q(value),
                q(item)
            ));
        }
        len += item.len() + 2;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;
    use serde_json::json;

    const UUID: &str = "f3a1b2c3-0000-4000-8000-000000000000";

    fn from_lines(lines: &[&str]) -> Result<OptionsSpec, EntryError> {
        OptionsSpec::from_json(&json!({ "lines": lines }))
    }

    /// Asserts that the single line is refused for `lines[0]`, quoting `bad`.
    fn bad_line(line: &str, bad: &str) -> EntryError {
        let e = match from_lines(&[line]) {
            Ok(o) => panic!("{line:?} accepted as {:?}", o.render()),
            Err(e) => e,
        };
        assert_eq!(e.code, "invalid_value");
        assert_eq!(e.field.as_deref(), Some("lines[0]"), "{line:?}: {e}");
        assert!(
            e.message.contains(bad),
            "{line:?}: message {:?} lacks {bad:?}",
            e.message
        );
        e
    }

    /// Asserts that the body is refused for `field`, quoting `bad`.
    fn refused(v: Value, field: Option<&str>, bad: &str) -> EntryError {
        let e = match OptionsSpec::from_json(&v) {
            Ok(o) => panic!("{v} accepted as {:?}", o.render()),
            Err(e) => e,
        };
        assert_eq!(e.code, "invalid_value");
        assert_eq!(e.field.as_deref(), field, "{v}: {e}");
        assert!(
            e.message.contains(bad),
            "{v}: message {:?} lacks {bad:?}",
            e.message
        );
        e
    }

    fn ironic_file() -> String {
        [
            format!("tag:{UUID},tag:!ipxe,67,undionly.kpxe"),
            format!("tag:{UUID},tag:ipxe,67,http://1.2.3.4:8080/boot.ipxe"),
            format!("tag:{UUID},66,1.2.3.4"),
            format!("tag:{UUID},150,1.2.3.4"),
            format!("tag:{UUID},255,1.2.3.4"),
            format!("tag:{UUID},60,HTTPClient"),
            format!("tag:{UUID},option6:59,http://[fd00::1]/x"),
            String::new(),
        ]
        .join("\n")
    }

    #[test]
    fn ironic_shapes_round_trip_byte_identically() {
        let file = ironic_file();
        let spec = OptionsSpec::parse_file(file.as_bytes()).unwrap();
        assert_eq!(spec.render(), file);
        assert_eq!(spec.options().len(), 7);
        assert_eq!(
            spec.options()[0],
            DhcpOption {
                tags: vec![UUID.to_owned(), "!ipxe".to_owned()],
                option: "67".to_owned(),
                value: "undionly.kpxe".to_owned(),
            }
        );
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(from_lines(&lines).unwrap(), spec);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["options"][6]["option"], json!("option6:59"));
        assert_eq!(OptionsSpec::from_json(&json).unwrap(), spec);
    }

    #[test]
    fn api_example_renders() {
        let spec = OptionsSpec::from_json(&json!({"options": [
            {"tags": [UUID, "!ipxe"], "option": "67", "value": "snponly.efi"},
            {"tags": [UUID], "option": "option6:bootfile-url", "value": "http://[fd00::1]/boot.ipxe"},
        ]}))
        .unwrap();
        assert_eq!(
            spec.render(),
            format!(
                "tag:{UUID},tag:!ipxe,67,snponly.efi\n\
                 tag:{UUID},option6:bootfile-url,http://[fd00::1]/boot.ipxe\n"
            )
        );
    }

    #[test]
    fn empty_lists_render_a_single_newline() {
        let empty = OptionsSpec::from_json(&json!({"options": []})).unwrap();
        assert_eq!(empty.render(), "\n");
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            json!({"options": []})
        );
        assert_eq!(from_lines(&[]).unwrap(), empty);
        assert_eq!(OptionsSpec::parse_file(b"").unwrap(), empty);
        assert_eq!(OptionsSpec::parse_file(b"\n").unwrap(), empty);
        assert_eq!(OptionsSpec::parse_file(b"# nothing\r\n").unwrap(), empty);
    }

    #[test]
    fn canonical_forms() {
        let spec = OptionsSpec::from_json(&json!({"options": [
            {"option": "option:Router", "value": "10.0.0.1,10.0.0.2"},
            {"tags": ["a"], "option": 67, "value": "pxelinux.0"},
            {"tags": ["a"], "option": "067"},
            {"tags": ["a"], "option": "option6:BootFile-URL", "value": "http://x/"},
            {"tags": ["a"], "option": "option6:0059", "value": "http://x/"},
            {"tags": ["a"], "option": "option:T1", "value": "5m"},
            {"tags": ["a"], "option": "3", "value": null},
            {"tags": null, "option": "60", "value": "Hello World, again"},
        ]}))
        .unwrap();
        assert_eq!(
            spec.render(),
            "option:router,10.0.0.1,10.0.0.2\n\
             tag:a,67,pxelinux.0\n\
             tag:a,67\n\
             tag:a,option6:bootfile-url,http://x/\n\
             tag:a,option6:59,http://x/\n\
             tag:a,option:t1,5m\n\
             tag:a,3\n\
             60,Hello World, again\n"
        );
        // A trailing comma (empty value) means the same as no value.
        assert_eq!(from_lines(&["tag:a,67,"]).unwrap().render(), "tag:a,67\n");
    }

    #[test]
    fn values_dnsmasq_reads_as_written() {
        for line in [
            "tag:a,3,10.0.0.1",
            "tag:a,option:router,10.0.0.1",
            "tag:a,121,10.0.0.0/8,10.0.0.1",
            "tag:a,33,10.0.0.0/24,10.0.0.1",
            "tag:a,option:domain-search,example.com,lab.example.com.,.",
            "tag:a,120,sip.example.com",
            "tag:a,120,10.0.0.1",
            "tag:a,option6:dns-server,[fd00::1],fd00::2",
            "tag:a,option6:ntp-server,[fd00::1],[fd00::2]",
            "tag:a,option6:ntp-server,ntp.example.com",
            "tag:a,option6:bootfile-param,a,b c",
            "tag:a,option6:information-refresh-time,1d",
            "tag:a,26,1500",
            "tag:a,23,64",
            "tag:a,175,1",
            "tag:a,175,70000",
            "tag:a,175,5b",
            "tag:a,53,5b",
            "tag:a,60,ab:cd:ef",
            "tag:a,97,00:01:02",
            "tag:a,67,http://10.0.0.1:8080/boot.ipxe?mac=${net0/mac}&x=1",
            "tag:a,67,#notacomment",
            "tag:a,67,a#b",
            "tag:a,67,100%",
            "tag:a,67,ünïcode",
            "tag:a,17,/srv/root path",
            "tag:a,option6:59,tftp://[fd00::1]/ipxe.efi",
            "tag:a,option6:100,anything goes here",
            "tag:a,66,1.2.3.4",
            "tag:a,12,node-1",
        ] {
            let spec = match from_lines(&[line]) {
                Ok(s) => s,
                Err(e) => panic!("{line:?} refused: {e}"),
            };
            assert_eq!(spec.render(), format!("{line}\n"));
        }
    }

    /// DHCPv4 91, 92, 114 and DHCPv6 103 are typed in 2.93 and untyped in
    /// 2.90 and 2.91: only values both read alike are accepted.
    #[test]
    fn options_typed_only_by_2_93_take_values_every_release_reads_alike() {
        for line in [
            // 91: a 4-byte number of seconds in every release.
            "tag:a,91,3600i",
            "tag:a,91,0i",
            "tag:a,91,70000",
            "tag:a,91,2147483647",
            // 92: addresses are addresses to an untyped option too.
            "tag:a,92,10.0.0.5",
            "tag:a,92,10.0.0.5,10.0.0.6",
            "tag:a,92",
            // 114, option6:103: text that 2.90 and 2.91 keep as text.
            "tag:a,114,https://portal.example/cp?x=1",
            "tag:a,114,abc",
            "tag:a,option6:103,https://[fd00::1]/portal",
            "tag:a,option6:103,https://portal.example/",
        ] {
            let spec = match from_lines(&[line]) {
                Ok(s) => s,
                Err(e) => panic!("{line:?} refused: {e}"),
            };
            assert_eq!(spec.render(), format!("{line}\n"));
        }
        // Values two releases send differently: the message names both
        // readings and, for the time, the spelling that works.
        for (line, bad, says) in [
            ("tag:a,91,3600", "`3600`", "`3600i`"),
            ("tag:a,91,1h", "`1h`", "`3600i`"),
            ("tag:a,91,3600s", "`3600s`", "`3600i`"),
            ("tag:a,91,65535", "`65535`", "the number 65535 in 2 bytes"),
            ("tag:a,114,10.0.0.1", "`10.0.0.1`", "IPv4 addresses"),
            ("tag:a,114,1234", "`1234`", "the number 1234 in 2 bytes"),
            ("tag:a,114,ab:cd", "`ab:cd`", "hex octets"),
            ("tag:a,option6:103,42", "`42`", "the number 42 in 1 byte"),
        ] {
            let e = bad_line(line, bad);
            assert!(
                e.message.contains(says)
                    && e.message.contains("dnsmasq 2.90 and 2.91")
                    && e.message.contains("dnsmasq 2.93"),
                "{line}: {}",
                e.message
            );
        }
        // Values one release refuses or misreads.
        for (line, bad, says) in [
            ("tag:a,91,00:00:0e:10", "`00:00:0e:10`", "is a time"),
            ("tag:a,91,5b", "`5b`", "is a time"),
            ("tag:a,92,gw", "`gw`", "bad IP address"),
            ("tag:a,92,", "empty value", "dnsmasq 2.93"),
            (
                "tag:a,option6:103,fd00::1",
                "`fd00::1`",
                "dnsmasq 2.90 and 2.91",
            ),
        ] {
            let e = bad_line(line, bad);
            assert!(e.message.contains(says), "{line}: {}", e.message);
        }
        // Their names: only 2.93 knows them, so 2.90 and 2.91 would refuse.
        for (line, number) in [
            ("tag:a,option:captive-portal,https://p.example/", "`114`"),
            ("tag:a,option:last-transaction,3600i", "`91`"),
            ("tag:a,option:associated-ip,10.0.0.1", "`92`"),
            (
                "tag:a,option6:Captive-Portal,https://p.example/",
                "`option6:103`",
            ),
        ] {
            let e = bad_line(line, number);
            assert!(
                e.message.contains("only dnsmasq 2.93") && e.message.contains("2.90 and 2.91"),
                "{line}: {}",
                e.message
            );
        }
        // A time option every release types takes the 4-byte marker too.
        assert!(from_lines(&["tag:a,option:t1,3600i"]).is_ok());
    }

    #[test]
    fn line_refusals() {
        let e = bad_line("optoin:router,10.0.0.1", "`optoin:router`");
        assert!(e.message.contains("tag:"), "{}", e.message);
        bad_line("!175,1", "`!175`");
        bad_line("ipxe,67,x", "`ipxe`");
        bad_line("tag:a,ipxe,67,x", "`ipxe`");
        bad_line("set:a,67,x", "`set:a`");
        bad_line("net:a,67,x", "`net:a`");
        bad_line("vendor:PXEClient,1,0.0.0.0", "`vendor:PXEClient`");
        bad_line("encap:175,1,1", "`encap:175`");
        bad_line("vi-encap:1,1,1", "`vi-encap:1`");
        bad_line("tag:a,,67,x", "`tag:a,,67,x`");
        bad_line("tag:a", "`tag:a`");
        bad_line("tag:a,tag:b", "`tag:a,tag:b`");
        bad_line("tag:,67,x", "`");
        bad_line("tag:a b,67,x", "`a b`");
        bad_line("tag:a,tag:a,67,x", "`a`");
        bad_line("tag:a,option:67,x", "`option:67`");
        bad_line("tag:a,option:routr,10.0.0.1", "`option:routr`");
        let e = bad_line("tag:a,option:bootfile-url,x", "`option:bootfile-url`");
        assert!(e.message.contains("option6:bootfile-url"), "{}", e.message);
        bad_line("tag:a,option:hostname,x", "`option:hostname`");
        bad_line("tag:a,option6:router,x", "`option6:router`");
        bad_line("tag:a,0,x", "`0`");
        bad_line("tag:a,256,x", "`256`");
        bad_line("tag:a,option6:0,x", "`option6:0`");
        bad_line("tag:a,option6:65536,x", "`option6:65536`");
        let e = bad_line("tag:a,59,http://[fd00::1]/x", "`http://[fd00::1]/x`");
        assert!(e.message.contains("`option6:59`"), "{}", e.message);
        bad_line("tag:a,option:t1,5b", "`5b`");
        bad_line("tag:a,58,99999999999", "`99999999999`");
        bad_line("tag:a,3,router.lan", "`router.lan`");
        bad_line("tag:a,3,", "empty value");
        bad_line("tag:a,3,10.0.0.1,10.0.0.300", "`10.0.0.300`");
        bad_line("tag:a,3,10.0.0.1 10.0.0.2", "`10.0.0.1 10.0.0.2`");
        bad_line("tag:a,33,10.0.0.0/33", "`33`");
        bad_line("tag:a,209,1.0", "`1.0`");
        bad_line("tag:a,option6:dns-server,dns.lan", "`dns.lan`");
        bad_line("tag:a,option6:dns-server,[fd00::g]", "`[fd00::g]`");
        bad_line("tag:a,26,70000", "`70000`");
        bad_line("tag:a,175,5000000000", "`5000000000`");
        bad_line("tag:a,67,5s", "`5s`");
        bad_line("tag:a,119,8-s", "`8-s`");
        bad_line("tag:a,67,2024-01-01s", "`2024-01-01s`");
        bad_line("tag:a,60,2024-01-01", "`2024-01-01`");
        bad_line("tag:a,175,-5", "`-5`");
        bad_line("tag:a,26,15-00", "`15-00`");
        bad_line("tag:a,67,s", "`s`");
        bad_line("tag:a,43,5", "option 43");
        bad_line("tag:a,option6:7,5", "DHCPv6 option 7");
        bad_line("tag:a,60,aabb:cc", "`aabb`");
        bad_line("tag:a,60,fd00::1", "`fd00::1`");
        bad_line("tag:a,119,a.com,,b.com", "``");
        bad_line("tag:a,119,Example.com", "`Example.com`");
        bad_line("tag:a,119,a..com", "`a..com`");
        bad_line("tag:a,option6:bootfile-param,a,,b", "``");
        bad_line("tag:a,option6:bootfile-param,a , b", "`a `");
        bad_line(&format!("tag:a,67,{}", "x".repeat(256)), "256 bytes");
        bad_line(&format!("tag:a,119,{}", ["abc"; 90].join(",")), "bytes");
        bad_line("tag:a,67,a #b", "`tag:a,67,a #b`");
        bad_line("tag:a,option6:ntp-server,fd00::1", "`[fd00::1]`");
        bad_line(
            "tag:a,option6:ntp-server,1:2:3:4:5:6:7:8",
            "`[1:2:3:4:5:6:7:8]`",
        );
        bad_line("tag:a,67,\"quoted\"", "double quote");
        bad_line("tag:a,67,tab\there", "a tab");
        bad_line("tag:a,67,nul\0", "NUL");
        bad_line("tag:a,67,a\nb", "a newline");
        bad_line("tag:a,67,del\u{7f}", "U+007F");
        bad_line("tag:a,67,nbsp\u{a0}x", "U+00A0");
        bad_line("tag:a,67, x", "` x`");
        bad_line("tag:a,67,x ", "`tag:a,67,x `");
        bad_line("", "empty");
        let long = format!("tag:a,option6:59,http://x/{}", "y".repeat(1000));
        bad_line(&long, "bytes");
    }

    #[test]
    fn json_refusals() {
        refused(json!("x"), None, "a string");
        refused(json!({"opts": []}), Some("opts"), "`opts`");
        refused(
            json!({"options": [], "lines": []}),
            Some("lines"),
            "`lines`",
        );
        refused(json!({}), None, "`options`");
        refused(json!({"options": {}}), Some("options"), "an object");
        refused(json!({"lines": "tag:a,67,x"}), Some("lines"), "a string");
        refused(
            json!({"lines": ["tag:a,67,x", 5]}),
            Some("lines[1]"),
            "a number",
        );
        refused(
            json!({"lines": ["tag:a,67,x", "tag:a,3,x"]}),
            Some("lines[1]"),
            "`x`",
        );
        refused(
            json!({"options": ["tag:a,67,x"]}),
            Some("options[0]"),
            "a string",
        );
        let ok = json!({"tags": ["a"], "option": "67", "value": "x"});
        refused(
            json!({"options": [ok, {"option": "67", "value": "x", "tag": ["a"]}]}),
            Some("options[1].tag"),
            "`tag`",
        );
        refused(
            json!({"options": [{"value": "x"}]}),
            Some("options[0].option"),
            "`option`",
        );
        refused(
            json!({"options": [{"option": true}]}),
            Some("options[0].option"),
            "a boolean",
        );
        refused(
            json!({"options": [{"option": 67.5}]}),
            Some("options[0].option"),
            "`67.5`",
        );
        refused(
            json!({"options": [{"option": -3}]}),
            Some("options[0].option"),
            "`-3`",
        );
        refused(
            json!({"options": [{"option": "optoin:router"}]}),
            Some("options[0].option"),
            "`optoin:router`",
        );
        refused(
            json!({"options": [{"option": "tag:a"}]}),
            Some("options[0].option"),
            "`tag:a`",
        );
        refused(
            json!({"options": [{"tags": "a", "option": "67"}]}),
            Some("options[0].tags"),
            "a string",
        );
        refused(
            json!({"options": [{"tags": ["a", "b:c"], "option": "67"}]}),
            Some("options[0].tags[1]"),
            "`b:c`",
        );
        refused(
            json!({"options": [{"tags": ["a", 1], "option": "67"}]}),
            Some("options[0].tags[1]"),
            "a number",
        );
        refused(
            json!({"options": [{"option": "67", "value": 5}]}),
            Some("options[0].value"),
            "a number",
        );
        refused(
            json!({"options": [{"option": "67", "value": "a\nb"}]}),
            Some("options[0].value"),
            "`a\\nb`",
        );
        refused(
            json!({"options": [{"option": "67", "value": " x"}]}),
            Some("options[0].value"),
            "` x`",
        );
        refused(
            json!({"options": [{"option": "3", "value": "gw"}]}),
            Some("options[0].value"),
            "`gw`",
        );
        refused(
            json!({"options": [{"option": "59", "value": "http://[fd00::1]/x"}]}),
            Some("options[0].value"),
            "`option6:59`",
        );
        let long = "y".repeat(1020);
        refused(
            json!({"options": [{"option": "option6:59", "value": long}]}),
            Some("options[0].value"),
            "bytes",
        );
    }

    #[test]
    fn parse_file_refusals_name_the_line() {
        let e = OptionsSpec::parse_file(b"tag:a,67,x\n\n# c\noptoin:router,1.2.3.4\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.starts_with("line 4: "), "{}", e.message);
        assert!(e.message.contains("`optoin:router`"), "{}", e.message);
        let e = OptionsSpec::parse_file(b"tag:a,67,\xc3\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let e = OptionsSpec::parse_file(b"tag:a,67,\"x\"\n").unwrap_err();
        assert!(e.message.starts_with("line 1: "), "{}", e.message);
        assert!(e.message.contains("`tag:a,67,\"x\"`"), "{}", e.message);
    }

    #[test]
    fn parse_file_reads_like_dnsmasq() {
        // dnsmasq trims surrounding whitespace and cuts ` #` comments.
        let o = OptionsSpec::parse_file(b" tag:a,67,x y # the boot file\t\r\n").unwrap();
        assert_eq!(o.render(), "tag:a,67,x y\n");
    }
}
