//! dhcp-host entries: one line in a `--dhcp-hostsdir` file.
//!
//! dnsmasq does not parse a dhcp-host line by position but guesses what each
//! comma-separated field is (src/option.c, `case 'G'`):
//!
//! * a field containing `:` is `id:<client-id>`, `set:`/`net:<tag>`,
//!   `tag:<tag>`, `[<ipv6>]`, and otherwise a hardware address — so an
//!   unbracketed IPv6 address is silently read as a short hardware address;
//! * a field with `.` that `inet_pton` accepts is the IPv4 address;
//! * `infinite` and `ignore` are keywords, digits with an optional unit a
//!   lease time;
//! * *anything else* is the hostname: `02-00-00-00-01-02` (a MAC without
//!   colons), `10.250.0.300` (a mistyped address) and `5m` vs `5mm` all end
//!   up there without an error.
//!
//! A second IPv4 address or hostname silently replaces the first. Bad
//! lines are only logged by dnsmasq and skipped, so nobody who wrote them
//! learns of it. [`HostSpec`] therefore accepts only fields whose meaning is
//! unambiguous, and always renders them in one canonical order, so that the
//! line written is read by dnsmasq exactly as the spec says.

use super::common::{
    body_object, describe_char, json_type, opt_str, q, reject_unknown_keys, str_list,
};
use super::common::{check_tag, file_lines};
use super::error::EntryError;
use super::lease::{looks_like_lease, LeaseTime};
use super::mac::Mac;
use super::MAX_LINE_BYTES;
use serde_json::{Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest hostname (a full domain name), in characters.
const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label of a hostname.
const MAX_LABEL_LEN: usize = 63;
/// Most octets in a client ID (it travels in one DHCP option).
const MAX_CLIENT_ID_OCTETS: usize = 255;

/// The keys of a HostSpec object.
const HOST_KEYS: [&str; 9] = [
    "macs",
    "client_id",
    "set_tags",
    "match_tags",
    "ipv4",
    "ipv6",
    "hostname",
    "lease_time",
    "ignore",
];

/// A dhcp-host entry that dnsmasq reads exactly as meant: it has at least
/// one MAC, a client ID or a hostname to match, and renders to a single
/// line of at most [`MAX_LINE_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    macs: Vec<Mac>,
    client_id: Option<String>,
    set_tags: Vec<String>,
    match_tags: Vec<String>,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    hostname: Option<String>,
    lease_time: Option<LeaseTime>,
    ignore: bool,
}

/// Where a spec being built came from, to aim its errors.
#[derive(Clone, Copy)]
enum Source {
    Json,
    Line,
}

impl Source {
    /// The field of an error about element `i` of the JSON list `key`.
    fn item(self, key: &str, i: usize) -> Option<String> {
        match self {
            Source::Json => Some(format!("{key}[{i}]")),
            Source::Line => Some("line".to_owned()),
        }
    }

    /// The field of an error about the whole entry.
    fn whole(self) -> Option<String> {
        match self {
            Source::Json => None,
            Source::Line => Some("line".to_owned()),
        }
    }
}

impl HostSpec {
    /// Reads the body of a PUT: either the HostSpec object of the API
    /// (`macs`, `client_id`, `set_tags`, `match_tags`, `ipv4`, `ipv6`,
    /// `hostname`, `lease_time`, `ignore`; null means absent) or
    /// `{"line": "<dhcp-host line>"}` with nothing else. Unknown keys are
    /// refused naming the key, wrong JSON types naming the field.
    pub fn from_json(v: &Value) -> Result<HostSpec, EntryError> {
        let obj = body_object(v, "a HostSpec or {\"line\": …}")?;
        if obj.contains_key("line") {
            if let Some(other) = obj.keys().find(|k| k.as_str() != "line") {
                return Err(EntryError::at(
                    other,
                    format!(
                        "{} cannot be given together with `line`: send either a HostSpec object or \
                         {{\"line\": …}} alone",
                        q(other)
                    ),
                ));
            }
            return match &obj["line"] {
                Value::String(line) => Self::parse_line(line),
                other => Err(EntryError::at(
                    "line",
                    format!("`line` must be a string, not {}", json_type(other)),
                )),
            };
        }
        reject_unknown_keys(obj, &HOST_KEYS, "")?;
        Self::from_object(obj)
    }

    fn from_object(obj: &Map<String, Value>) -> Result<HostSpec, EntryError> {
        let src = Source::Json;
        let mut spec = HostSpec::empty();
        for (i, m) in str_list(obj, "macs", "macs")?.into_iter().enumerate() {
            let mac = Mac::parse(m).map_err(|msg| EntryError::value(src.item("macs", i), msg))?;
            spec.add_mac(mac, src, i)?;
        }
        if let Some(id) = opt_str(obj, "client_id", "client_id")? {
            spec.client_id = Some(parse_client_id(id).map_err(|m| EntryError::at("client_id", m))?);
        }
        for (i, t) in str_list(obj, "set_tags", "set_tags")?
            .into_iter()
            .enumerate()
        {
            spec.add_tag(t, false, src, i)?;
        }
        for (i, t) in str_list(obj, "match_tags", "match_tags")?
            .into_iter()
            .enumerate()
        {
            spec.add_tag(t, true, src, i)?;
        }
        if let Some(a) = opt_str(obj, "ipv4", "ipv4")? {
            spec.ipv4 = Some(a.parse().map_err(|_| {
                EntryError::at(
                    "ipv4",
                    format!(
                        "{} is not an IPv4 address (write a dotted quad like `10.0.0.5`)",
                        q(a)
                    ),
                )
            })?);
        }
        if let Some(a) = opt_str(obj, "ipv6", "ipv6")? {
            let bare = a
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(a);
            spec.ipv6 = Some(bare.parse().map_err(|_| {
                EntryError::at(
                    "ipv6",
                    format!("{} is not an IPv6 address (write one like `fd00::5`)", q(a)),
                )
            })?);
        }
        if let Some(h) = opt_str(obj, "hostname", "hostname")? {
            spec.hostname = Some(check_hostname(h).map_err(|m| EntryError::at("hostname", m))?);
        }
        spec.lease_time = match obj.get("lease_time") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(LeaseTime::parse(s).map_err(|m| EntryError::at("lease_time", m))?)
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(secs) => {
                    Some(LeaseTime::from_secs(secs).map_err(|m| EntryError::at("lease_time", m))?)
                }
                None => {
                    return Err(EntryError::at(
                        "lease_time",
                        format!(
                            "`{n}` is not a lease time: a number must be a whole, positive number of seconds"
                        ),
                    ))
                }
            },
            Some(other) => {
                return Err(EntryError::at(
                    "lease_time",
                    format!(
                        "`lease_time` must be a string, a number of seconds or null, not {}",
                        json_type(other)
                    ),
                ))
            }
        };
        spec.ignore = match obj.get("ignore") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(EntryError::at(
                    "ignore",
                    format!("`ignore` must be true or false, not {}", json_type(other)),
                ))
            }
        };
        spec.finish(src)
    }

    /// Reads one dhcp-host line (a single trailing `\n` is tolerated).
    /// Fields may come in any order; they are rendered in canonical order.
    /// Errors have field `"line"`.
    pub fn parse_line(line: &str) -> Result<HostSpec, EntryError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let src = Source::Line;
        let err = |msg: String| EntryError::at("line", msg);
        if line.is_empty() {
            return Err(err("the line is empty".to_owned()));
        }
        if line.len() + 1 > MAX_LINE_BYTES {
            return Err(err(format!(
                "the line is {} bytes long; with its newline it must fit in {MAX_LINE_BYTES} bytes, \
                 dnsmasq would parse the rest as a separate line",
                line.len()
            )));
        }
        if let Some(c) = line
            .chars()
            .find(|&c| c.is_control() || c.is_whitespace() || c == '"' || c == '#' || !c.is_ascii())
        {
            let why = match c {
                '"' => "dnsmasq strips double quotes when it reads the line",
                '#' => "dnsmasq may take it for the start of a comment",
                c if c.is_control() => "dnsmasq turns it into a space or ends the line there",
                c if c.is_whitespace() => "dhcp-host fields never contain whitespace",
                _ => "dhcp-host lines are plain ASCII",
            };
            return Err(err(format!(
                "the line {} contains {}; {why}",
                q(line),
                describe_char(c)
            )));
        }
        let mut spec = HostSpec::empty();
        let (mut mac_n, mut set_n, mut match_n) = (0, 0, 0);
        for field in line.split(',') {
            if field.is_empty() {
                return Err(err(format!(
                    "the line {} has an empty field (two commas in a row, or a comma at one end)",
                    q(line)
                )));
            }
            if field.contains(':') {
                if field.len() >= 3 && field[..3].eq_ignore_ascii_case("id:") {
                    if let Some(old) = &spec.client_id {
                        return Err(err(format!(
                            "the line has two client IDs, `id:{old}` and {}",
                            q(field)
                        )));
                    }
                    spec.client_id = Some(parse_client_id(&field[3..]).map_err(err)?);
                } else if let Some(tag) = field.strip_prefix("set:") {
                    spec.add_tag(tag, false, src, set_n)?;
                    set_n += 1;
                } else if let Some(tag) = field.strip_prefix("tag:") {
                    spec.add_tag(tag, true, src, match_n)?;
                    match_n += 1;
                } else if let Some(tag) = field.strip_prefix("net:") {
                    return Err(err(format!(
                        "{} uses the old `net:` prefix; write `set:{tag}` to set a tag",
                        q(field)
                    )));
                } else if field.starts_with('[') {
                    spec.set_ipv6_field(field)?;
                } else {
                    let mac = parse_line_mac(field).map_err(err)?;
                    spec.add_mac(mac, src, mac_n)?;
                    mac_n += 1;
                }
            } else if field.contains('.') && field.parse::<Ipv4Addr>().is_ok() {
                if let Some(old) = spec.ipv4 {
                    return Err(err(format!(
                        "the line has two IPv4 addresses, `{old}` and {}; dnsmasq would silently \
                         use only the last",
                        q(field)
                    )));
                }
                spec.ipv4 = field.parse().ok();
            } else if field == "ignore" {
                if spec.ignore {
                    return Err(err("the line says `ignore` twice".to_owned()));
                }
                spec.ignore = true;
            } else if field == "infinite" || looks_like_lease(field) {
                if let Some(old) = spec.lease_time {
                    return Err(err(format!(
                        "the line has two lease times, `{old}` and {}; dnsmasq would silently use \
                         only the last",
                        q(field)
                    )));
                }
                spec.lease_time = Some(LeaseTime::parse(field).map_err(err)?);
            } else if Mac::parse(field).is_ok() {
                return Err(err(format!(
                    "{} looks like a MAC address with dashes, but dnsmasq reads a field without \
                     `:` as a hostname; write it with colons ({})",
                    q(field),
                    q(&field.replace('-', ":").to_ascii_lowercase())
                )));
            } else {
                let name = check_hostname(field).map_err(err)?;
                if let Some(old) = &spec.hostname {
                    return Err(err(format!(
                        "the line has two hostnames, `{old}` and {}; dnsmasq would silently use \
                         only the last",
                        q(field)
                    )));
                }
                spec.hostname = Some(name);
            }
        }
        spec.finish(src)
    }

    /// Reads the contents of an existing hosts-dir file: UTF-8, exactly one
    /// dhcp-host line. Blank lines and `#` comments are skipped, CRLF and
    /// surrounding spaces tolerated, as dnsmasq's line reader does. Such
    /// files may have been written by others — stock Ironic writes
    /// `<mac>,set:<tag>,set:ironic\n` and `<mac>,ignore\n`. Errors have no
    /// field and name the line number.
    pub fn parse_file(bytes: &[u8]) -> Result<HostSpec, EntryError> {
        let lines = file_lines(bytes)?;
        match lines.as_slice() {
            [] => Err(EntryError::body(
                "the file holds no dhcp-host line (only blank lines or comments)",
            )),
            [one] => Self::parse_line(one.text).map_err(|e| EntryError {
                field: None,
                message: format!("line {}: {}", one.number, e.message),
                ..e
            }),
            [_, second, ..] => Err(EntryError::body(format!(
                "the file holds {} dhcp-host lines (the second at line {}); an entry holds exactly one",
                lines.len(),
                second.number
            ))),
        }
    }

    /// The canonical line plus `\n`: the MACs, `id:<client_id>`,
    /// `set:<tag>`…, `tag:<tag>`…, the IPv4 address, `[<ipv6>]`, the
    /// hostname, the lease time and `ignore`, comma-separated. Never longer
    /// than [`MAX_LINE_BYTES`] (the constructors refuse longer entries).
    pub fn render(&self) -> String {
        let mut fields: Vec<String> = self.macs.iter().map(Mac::to_string).collect();
        if let Some(id) = &self.client_id {
            fields.push(format!("id:{id}"));
        }
        fields.extend(self.set_tags.iter().map(|t| format!("set:{t}")));
        fields.extend(self.match_tags.iter().map(|t| format!("tag:{t}")));
        if let Some(a) = self.ipv4 {
            fields.push(a.to_string());
        }
        if let Some(a) = self.ipv6 {
            fields.push(format!("[{a}]"));
        }
        if let Some(h) = &self.hostname {
            fields.push(h.clone());
        }
        if let Some(l) = self.lease_time {
            fields.push(l.to_string());
        }
        if self.ignore {
            fields.push("ignore".to_owned());
        }
        let mut line = fields.join(",");
        line.push('\n');
        line
    }

    /// The MACs the entry matches (any of them).
    pub fn macs(&self) -> &[Mac] {
        &self.macs
    }

    /// The client ID matched: `*` (ignore the client's ID) or lowercase hex
    /// octets with colons.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Tags set on a matching client (`set:`).
    pub fn set_tags(&self) -> &[String] {
        &self.set_tags
    }

    /// Tags the client must carry for the entry to apply (`tag:`; a leading
    /// `!` means "must not carry").
    pub fn match_tags(&self) -> &[String] {
        &self.match_tags
    }

    /// The fixed IPv4 address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
    }

    /// The fixed IPv6 address. (dnsmasq treats one whose first 64 bits are
    /// zero, like `::5`, as a host part to combine with each DHCPv6 range's
    /// prefix.)
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The hostname (lowercase).
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The lease time.
    pub fn lease_time(&self) -> Option<LeaseTime> {
        self.lease_time
    }

    /// Does the entry tell dnsmasq to ignore the client?
    pub fn ignore(&self) -> bool {
        self.ignore
    }

    fn empty() -> HostSpec {
        HostSpec {
            macs: Vec::new(),
            client_id: None,
            set_tags: Vec::new(),
            match_tags: Vec::new(),
            ipv4: None,
            ipv6: None,
            hostname: None,
            lease_time: None,
            ignore: false,
        }
    }

    fn add_mac(&mut self, mac: Mac, src: Source, i: usize) -> Result<(), EntryError> {
        if self.macs.contains(&mac) {
            return Err(EntryError::value(
                src.item("macs", i),
                format!("the MAC `{mac}` is listed twice"),
            ));
        }
        self.macs.push(mac);
        Ok(())
    }

    fn add_tag(
        &mut self,
        tag: &str,
        matching: bool,
        src: Source,
        i: usize,
    ) -> Result<(), EntryError> {
        let (key, list) = if matching {
            ("match_tags", &mut self.match_tags)
        } else {
            ("set_tags", &mut self.set_tags)
        };
        check_tag(tag, matching).map_err(|m| EntryError::value(src.item(key, i), m))?;
        if list.iter().any(|t| t == tag) {
            return Err(EntryError::value(
                src.item(key, i),
                format!("the tag {} is listed twice", q(tag)),
            ));
        }
        list.push(tag.to_owned());
        Ok(())
    }

    fn set_ipv6_field(&mut self, field: &str) -> Result<(), EntryError> {
        let err = |msg: String| EntryError::at("line", msg);
        let Some(inner) = field.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
            return Err(err(format!(
                "{} is not a bracketed IPv6 address like `[fd00::5]`",
                q(field)
            )));
        };
        if inner.contains('/') {
            return Err(err(format!(
                "{} has a prefix length; the broker stores single IPv6 addresses only",
                q(field)
            )));
        }
        let addr: Ipv6Addr = inner.parse().map_err(|_| {
            err(format!(
                "{} is not a bracketed IPv6 address like `[fd00::5]`",
                q(field)
            ))
        })?;
        if let Some(old) = self.ipv6 {
            return Err(err(format!(
                "the line has two IPv6 addresses, `[{old}]` and {}; an entry holds one",
                q(field)
            )));
        }
        self.ipv6 = Some(addr);
        Ok(())
    }

    /// The checks on the whole entry.
    fn finish(self, src: Source) -> Result<HostSpec, EntryError> {
        let rendered = self.render();
        let identified = !self.macs.is_empty()
            || self.client_id.as_deref().is_some_and(|id| id != "*")
            || self.hostname.is_some();
        if !identified {
            let message = match src {
                Source::Json => "the entry matches no client: give at least one of `macs`, \
                                 `client_id` (other than `*`) or `hostname`"
                    .to_owned(),
                Source::Line => format!(
                    "the line {} matches no client: it needs a MAC address, an `id:` client ID \
                     (other than `*`) or a hostname",
                    q(rendered.trim_end())
                ),
            };
            return Err(EntryError::value(src.whole(), message));
        }
        let len = rendered.len();
        if len > MAX_LINE_BYTES {
            return Err(EntryError::value(
                src.whole(),
                format!(
                    "the entry renders to a line of {len} bytes; with its newline a line must fit in \
                     {MAX_LINE_BYTES} bytes (dnsmasq would parse the rest as a separate line)"
                ),
            ));
        }
        Ok(self)
    }
}

/// A MAC in a dhcp-host line: colon form only.
fn parse_line_mac(field: &str) -> Result<Mac, String> {
    if field.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "{} looks like an IPv6 address without brackets, which dnsmasq would read as a \
             hardware address; write `[{field}]`",
            q(field)
        ));
    }
    let prefix = field.split(':').next().unwrap_or_default();
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'*')
    {
        return Err(format!(
            "{} has the prefix `{prefix}:`, which dnsmasq does not know in a dhcp-host line (it \
             would try to read the field as a hardware address); the prefixes are `id:`, `set:` \
             and `tag:`",
            q(field)
        ));
    }
    if field.contains('-') {
        return Err(format!(
            "{} mixes `-` and `:`; in a dhcp-host line dnsmasq reads the part before a `-` as a \
             hardware type, so write the MAC with colons only",
            q(field)
        ));
    }
    Mac::parse(field)
}

/// A client ID: `*` or hex octets separated by `:` (at least two, so that
/// dnsmasq parses it as hex rather than as text). Returns the canonical
/// lowercase two-digit form.
fn parse_client_id(id: &str) -> Result<String, String> {
    if id == "*" {
        return Ok(id.to_owned());
    }
    let octets: Vec<&str> = id.split(':').collect();
    let bad = octets
        .iter()
        .find(|o| !((1..=2).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_hexdigit())));
    if octets.len() < 2 || bad.is_some() {
        return Err(format!(
            "{} is not a client ID: write `*` or hex octets separated by colons, like `01:52:54:00:aa:bb:cc`{}",
            q(id),
            match bad {
                Some(o) => format!(" (the octet {} is not one or two hex digits)", q(o)),
                None => " (without a colon dnsmasq would read it as text)".to_owned(),
            }
        ));
    }
    if octets.len() > MAX_CLIENT_ID_OCTETS {
        return Err(format!(
            "{} is not a client ID: it has {} octets, at most {MAX_CLIENT_ID_OCTETS} fit in a DHCP option",
            q(id),
            octets.len()
        ));
    }
    Ok(octets
        .iter()
        .map(|o| format!("{:0>2}", o.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(":"))
}

/// A hostname dnsmasq will take as a hostname and nothing else: RFC 1123
/// labels (letters, digits, inner `-`, at most 63 each) joined by dots, at
/// most 253 characters, and not something dnsmasq reads as a lease time, a
/// keyword or an (invalid) IPv4 address. Returns it in lowercase, which
/// also keeps dnsmasq from passing it through IDN conversion.
pub(crate) fn check_hostname(h: &str) -> Result<String, String> {
    let bad = |why: String| Err(format!("{} is not a usable hostname: {why}", q(h)));
    if h.is_empty() {
        return bad("it is empty".to_owned());
    }
    if h.eq_ignore_ascii_case("infinite") || h.eq_ignore_ascii_case("ignore") {
        return bad(
            "dnsmasq reads `infinite` and `ignore` in a dhcp-host line as keywords".to_owned(),
        );
    }
    if looks_like_lease(h) {
        return bad(
            "digits alone, or digits followed by one of `s m h d w`, are read by dnsmasq as a \
             lease time"
                .to_owned(),
        );
    }
    if h.contains('.') && h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{} is not an IPv4 address (dnsmasq would read it as a hostname)",
            q(h)
        ));
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return bad(format!(
            "it contains {}; hostnames are letters, digits, `-` and dots between labels",
            describe_char(c)
        ));
    }
    if h.len() > MAX_HOSTNAME_LEN {
        return bad(format!(
            "it has {} characters, at most {MAX_HOSTNAME_LEN} are allowed",
            h.len()
        ));
    }
    for label in h.split('.') {
        if label.is_empty() {
            return bad(
                "it has an empty label (a dot at one end, or two dots in a row)".to_owned(),
            );
        }
        if label.len() > MAX_LABEL_LEN {
            return bad(format!(
                "the label {} has {} characters, at most {MAX_LABEL_LEN} are allowed",
                q(label),
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("the label {} starts or ends with `-`", q(label)));
        }
    }
    Ok(h.to_ascii_lowercase())
}

/// The HostSpec JSON of the API.
#[derive(serde::Serialize)]
struct HostSpecJson<'a> {
    macs: &'a [Mac],
    client_id: Option<&'a str>,
    set_tags: &'a [String],
    match_tags: &'a [String],
    ipv4: Option<String>,
    ipv6: Option<String>,
    hostname: Option<&'a str>,
    lease_time: Option<String>,
    ignore: bool,
}

/// Serializes to exactly the HostSpec JSON of the API: `{"macs": [...],
/// "client_id": null|"…", "set_tags": [...], "match_tags": [...], "ipv4":
/// null|"…", "ipv6": null|"…", "hostname": null|"…", "lease_time":
/// null|"<canonical, like 12h, infinite, 600>", "ignore": bool}`.
impl serde::Serialize for HostSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        HostSpecJson {
            macs: &self.macs,
            client_id: self.client_id.as_deref(),
            set_tags: &self.set_tags,
            match_tags: &self.match_tags,
            ipv4: self.ipv4.map(|a| a.to_string()),
            ipv6: self.ipv6.map(|a| a.to_string()),
            hostname: self.hostname.as_deref(),
            lease_time: self.lease_time.map(|l| l.to_string()),
            ignore: self.ignore,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;
    use serde_json::json;

    const UUID: &str = "f3a1b2c3-0000-4000-8000-000000000000";

    fn host(v: Value) -> HostSpec {
        match HostSpec::from_json(&v) {
            Ok(h) => h,
            Err(e) => panic!("{v} refused: {e}"),
        }
    }

    /// Asserts that `v` is refused for `field` with a message quoting `bad`.
    fn refused(v: Value, field: Option<&str>, bad: &str) -> EntryError {
        let e = match HostSpec::from_json(&v) {
            Ok(h) => panic!("{v} accepted as {}", h.render()),
            Err(e) => e,
        };
        assert_eq!(e.code, "invalid_value", "{v}: {e}");
        assert_eq!(e.field.as_deref(), field, "{v}: {e}");
        assert!(
            e.message.contains(bad),
            "{v}: message {:?} lacks {bad:?}",
            e.message
        );
        e
    }

    /// Asserts that the line is refused with field `line`, quoting `bad`.
    fn bad_line(line: &str, bad: &str) -> EntryError {
        let e = match HostSpec::parse_line(line) {
            Ok(h) => panic!("{line:?} accepted as {}", h.render()),
            Err(e) => e,
        };
        assert_eq!(e.field.as_deref(), Some("line"), "{line:?}: {e}");
        assert!(
            e.message.contains(bad),
            "{line:?}: message {:?} lacks {bad:?}",
            e.message
        );
        e
    }

    #[test]
    fn ironic_shapes_render_byte_identically() {
        let h = host(json!({"macs": ["52:54:00:aa:bb:cc"], "set_tags": ["t1", "ironic"]}));
        assert_eq!(h.render(), "52:54:00:aa:bb:cc,set:t1,set:ironic\n");
        let h = host(json!({"macs": ["52:54:00:aa:bb:cc"], "ignore": true}));
        assert_eq!(h.render(), "52:54:00:aa:bb:cc,ignore\n");
        for file in [
            format!("52:54:00:aa:bb:cc,set:{UUID},set:ironic\n"),
            "52:54:00:aa:bb:cc,ignore\n".to_owned(),
        ] {
            let h = HostSpec::parse_file(file.as_bytes()).unwrap();
            assert_eq!(h.render(), file);
            assert_eq!(HostSpec::parse_line(&file).unwrap(), h);
        }
    }

    #[test]
    fn full_spec_renders_in_canonical_order() {
        let h = host(json!({
            "ignore": true,
            "lease_time": "12H",
            "hostname": "Node-1.example.com",
            "ipv6": "FD00:0:0:0:0:0:0:5",
            "ipv4": "10.0.0.5",
            "match_tags": ["!known", "pxe"],
            "set_tags": ["ironic"],
            "client_id": "01:52:54:0:AA:BB:CC",
            "macs": ["52-54-00-AA-BB-CC", "52:54:00:*:*:*"],
        }));
        let line =
            "52:54:00:aa:bb:cc,52:54:00:*:*:*,id:01:52:54:00:aa:bb:cc,set:ironic,tag:!known,\
                    tag:pxe,10.0.0.5,[fd00::5],node-1.example.com,12h,ignore\n";
        assert_eq!(h.render(), line);
        assert_eq!(h.macs().len(), 2);
        assert_eq!(h.client_id(), Some("01:52:54:00:aa:bb:cc"));
        assert_eq!(h.set_tags(), ["ironic"]);
        assert_eq!(h.match_tags(), ["!known", "pxe"]);
        assert_eq!(h.ipv4(), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(h.ipv6(), "fd00::5".parse().ok());
        assert_eq!(h.hostname(), Some("node-1.example.com"));
        assert_eq!(h.lease_time().and_then(|l| l.seconds()), Some(43_200));
        assert!(h.ignore());
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({
                "macs": ["52:54:00:aa:bb:cc", "52:54:00:*:*:*"],
                "client_id": "01:52:54:00:aa:bb:cc",
                "set_tags": ["ironic"],
                "match_tags": ["!known", "pxe"],
                "ipv4": "10.0.0.5",
                "ipv6": "fd00::5",
                "hostname": "node-1.example.com",
                "lease_time": "12h",
                "ignore": true,
            })
        );
        // Fields of a line may come in any order.
        let shuffled = "ignore,12h,node-1.example.com,[fd00::5],10.0.0.5,tag:!known,set:ironic,\
                        52:54:00:aa:bb:cc,tag:pxe,id:01:52:54:00:aa:bb:cc,52:54:00:*:*:*";
        assert_eq!(HostSpec::parse_line(shuffled).unwrap(), h);
        assert_eq!(HostSpec::from_json(&json!({"line": line})).unwrap(), h);
    }

    #[test]
    fn minimal_and_null_fields() {
        let h = host(json!({
            "macs": ["52:54:00:aa:bb:cc"], "client_id": null, "set_tags": null, "match_tags": [],
            "ipv4": null, "ipv6": null, "hostname": null, "lease_time": null, "ignore": null
        }));
        assert_eq!(h.render(), "52:54:00:aa:bb:cc\n");
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({"macs": ["52:54:00:aa:bb:cc"], "client_id": null, "set_tags": [],
                   "match_tags": [], "ipv4": null, "ipv6": null, "hostname": null,
                   "lease_time": null, "ignore": false})
        );
        assert_eq!(host(json!({"hostname": "node-1"})).render(), "node-1\n");
        assert_eq!(host(json!({"client_id": "01:02"})).render(), "id:01:02\n");
        assert_eq!(
            host(json!({"macs": ["52:54:00:aa:bb:cc"], "client_id": "*"})).render(),
            "52:54:00:aa:bb:cc,id:*\n"
        );
        assert_eq!(
            host(json!({"hostname": "n", "lease_time": 600})).render(),
            "n,600\n"
        );
        assert_eq!(
            host(json!({"hostname": "n", "lease_time": "infinite", "ipv6": "[fd00::1]"})).render(),
            "[fd00::1],n,infinite\n"
        );
        assert_eq!(host(json!({"hostname": "m"})).render(), "m\n");
        assert_eq!(host(json!({"hostname": "a1b2"})).render(), "a1b2\n");
    }

    #[test]
    fn parse_file_reads_like_dnsmasq() {
        // dnsmasq trims surrounding whitespace and cuts ` #` comments.
        let h = HostSpec::parse_file(b"\t52:54:00:aa:bb:cc,ignore  # retired\n").unwrap();
        assert_eq!(h.render(), "52:54:00:aa:bb:cc,ignore\n");
        let e = HostSpec::parse_file(b"52:54:00:aa:bb:cc,set:a#b\n").unwrap_err();
        assert!(
            e.message.contains("`52:54:00:aa:bb:cc,set:a#b`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn parse_file_skips_comments_and_crlf() {
        let file = b"# written by hand\r\n\r\n52:54:00:AA:BB:CC,set:ironic\r\n\n";
        let h = HostSpec::parse_file(file).unwrap();
        assert_eq!(h.render(), "52:54:00:aa:bb:cc,set:ironic\n");
    }

    #[test]
    fn parse_file_refusals_name_the_line() {
        let e = HostSpec::parse_file(b"# only a comment\n\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("no dhcp-host line"), "{}", e.message);
        let e = HostSpec::parse_file(b"52:54:00:aa:bb:cc\n# c\n52:54:00:aa:bb:cd\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("line 3"), "{}", e.message);
        let e = HostSpec::parse_file(b"\n02-00-00-00-01-02,set:x\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.starts_with("line 2: "), "{}", e.message);
        assert!(e.message.contains("`02-00-00-00-01-02`"), "{}", e.message);
        let e = HostSpec::parse_file(b"52:54:00:aa:bb:cc,\xff\n").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let long = format!("52:54:00:aa:bb:cc,{}\n", "a".repeat(1100));
        let e = HostSpec::parse_file(long.as_bytes()).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("line 1 is"), "{}", e.message);
    }

    #[test]
    fn json_refusals_name_the_field_and_value() {
        let mac = "52:54:00:aa:bb:cc";
        refused(json!(["x"]), None, "an array");
        refused(json!({"macs": [mac], "mac": "x"}), Some("mac"), "`mac`");
        refused(json!({"macs": mac}), Some("macs"), "a string");
        refused(json!({"macs": [mac, 5]}), Some("macs[1]"), "a number");
        refused(
            json!({"macs": [mac, "52:54:00:aa:bb"]}),
            Some("macs[1]"),
            "`52:54:00:aa:bb`",
        );
        refused(
            json!({"macs": [mac, "52-54-00-AA-BB-CC"]}),
            Some("macs[1]"),
            "`52:54:00:aa:bb:cc`",
        );
        refused(
            json!({"macs": [mac], "client_id": "01"}),
            Some("client_id"),
            "`01`",
        );
        refused(
            json!({"macs": [mac], "client_id": "01:zz"}),
            Some("client_id"),
            "`zz`",
        );
        refused(
            json!({"macs": [mac], "client_id": 1}),
            Some("client_id"),
            "a number",
        );
        refused(
            json!({"macs": [mac], "set_tags": ["ok", "!neg"]}),
            Some("set_tags[1]"),
            "`!neg`",
        );
        refused(
            json!({"macs": [mac], "set_tags": ["a:b"]}),
            Some("set_tags[0]"),
            "`a:b`",
        );
        refused(
            json!({"macs": [mac], "set_tags": ["a", "a"]}),
            Some("set_tags[1]"),
            "`a`",
        );
        refused(
            json!({"macs": [mac], "match_tags": ["x y"]}),
            Some("match_tags[0]"),
            "`x y`",
        );
        refused(
            json!({"macs": [mac], "match_tags": "x"}),
            Some("match_tags"),
            "a string",
        );
        refused(
            json!({"macs": [mac], "ipv4": "10.250.0.300"}),
            Some("ipv4"),
            "`10.250.0.300`",
        );
        refused(
            json!({"macs": [mac], "ipv4": "010.0.0.1"}),
            Some("ipv4"),
            "`010.0.0.1`",
        );
        refused(
            json!({"macs": [mac], "ipv4": "fd00::1"}),
            Some("ipv4"),
            "`fd00::1`",
        );
        refused(
            json!({"macs": [mac], "ipv6": "10.0.0.1"}),
            Some("ipv6"),
            "`10.0.0.1`",
        );
        refused(
            json!({"macs": [mac], "ipv6": "fd00::1/64"}),
            Some("ipv6"),
            "`fd00::1/64`",
        );
        for name in [
            "123",
            "5m",
            "12H",
            "infinite",
            "IGNORE",
            "10.250.0.300",
            "1.2.3",
            "-a",
            "a-",
            "a_b",
            "a..b",
            "a.",
            "ä",
            "a b",
        ] {
            refused(
                json!({"macs": [mac], "hostname": name}),
                Some("hostname"),
                &format!("`{name}`"),
            );
        }
        let long_label = "a".repeat(64);
        refused(
            json!({"hostname": long_label}),
            Some("hostname"),
            "at most 63",
        );
        let long_name = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        refused(
            json!({"hostname": long_name}),
            Some("hostname"),
            "at most 253",
        );
        refused(
            json!({"hostname": "n", "lease_time": 60}),
            Some("lease_time"),
            "`60`",
        );
        refused(
            json!({"hostname": "n", "lease_time": "1m"}),
            Some("lease_time"),
            "`1m`",
        );
        refused(
            json!({"hostname": "n", "lease_time": "1x"}),
            Some("lease_time"),
            "`1x`",
        );
        refused(
            json!({"hostname": "n", "lease_time": 1.5}),
            Some("lease_time"),
            "`1.5`",
        );
        refused(
            json!({"hostname": "n", "lease_time": -600}),
            Some("lease_time"),
            "`-600`",
        );
        refused(
            json!({"hostname": "n", "lease_time": true}),
            Some("lease_time"),
            "a boolean",
        );
        refused(
            json!({"hostname": "n", "ignore": "yes"}),
            Some("ignore"),
            "a string",
        );
        refused(json!({}), None, "`macs`");
        refused(
            json!({"set_tags": ["x"], "ipv4": "10.0.0.1"}),
            None,
            "`hostname`",
        );
        refused(json!({"client_id": "*"}), None, "`client_id`");
        refused(
            json!({"line": mac, "ignore": true}),
            Some("ignore"),
            "`ignore`",
        );
        refused(json!({"line": 5}), Some("line"), "a number");
        refused(
            json!({"line": "02-00-00-00-01-02"}),
            Some("line"),
            "`02-00-00-00-01-02`",
        );
        let tags: Vec<String> = (0..20).map(|i| format!("{i:0>60}")).collect();
        refused(json!({"macs": [mac], "set_tags": tags}), None, "bytes");
    }

    #[test]
    fn line_refusals_name_the_value() {
        let e = bad_line("02-00-00-00-01-02,set:x", "`02-00-00-00-01-02`");
        assert!(e.message.contains("hostname"), "{}", e.message);
        let e = bad_line("52:54:00:aa:bb:cc,10.250.0.300", "`10.250.0.300`");
        assert!(e
            .message
            .contains("not an IPv4 address (dnsmasq would read it as a hostname)"));
        bad_line("52:54:00:aa:bb:cc,10.0.0.05", "`10.0.0.05`");
        bad_line("52:54:00:aa:bb:cc,fd00::5", "`[fd00::5]`");
        bad_line("52:54:00:aa:bb:cc,[fd00::5/64]", "`[fd00::5/64]`");
        bad_line("52:54:00:aa:bb:cc,[fd00::5", "`[fd00::5`");
        bad_line("52:54:00:aa:bb:cc,[fd00::5],[fd00::6]", "`[fd00::6]`");
        bad_line("52:54:00:aa:bb:cc,[1.2.3.4]", "`[1.2.3.4]`");
        bad_line("52:54:00:aa:bb:cc,net:x", "`set:x`");
        bad_line("52:54:00:aa:bb:cc,Set:x", "`Set:`");
        bad_line("52:54:00:aa:bb:cc,foo:bar", "`foo:`");
        bad_line("52:54:00:aa:bb:cc,set:!x", "`!x`");
        bad_line("52:54:00:aa:bb:cc,tag:a.b:c", "`a.b:c`");
        bad_line("52-54-00:aa:bb:cc", "`52-54-00:aa:bb:cc`");
        bad_line("52:54:00:aa:bb", "`52:54:00:aa:bb`");
        bad_line("52:54:00:aa:bb:cc,52:54:00:AA:BB:CC", "`52:54:00:aa:bb:cc`");
        bad_line("52:54:00:aa:bb:cc,10.0.0.1,10.0.0.2", "`10.0.0.2`");
        bad_line("52:54:00:aa:bb:cc,a,b", "`b`");
        bad_line("52:54:00:aa:bb:cc,12h,infinite", "`infinite`");
        bad_line("52:54:00:aa:bb:cc,60", "`60`");
        bad_line("52:54:00:aa:bb:cc,1m", "`1m`");
        bad_line("52:54:00:aa:bb:cc,Infinite", "`Infinite`");
        bad_line("52:54:00:aa:bb:cc,ignore,ignore", "`ignore`");
        bad_line("52:54:00:aa:bb:cc,id:01,id:02:03", "`01`");
        bad_line("52:54:00:aa:bb:cc,id:01:02,id:02:03", "`id:02:03`");
        bad_line("52:54:00:aa:bb:cc,,ignore", "`52:54:00:aa:bb:cc,,ignore`");
        bad_line("52:54:00:aa:bb:cc,", "`52:54:00:aa:bb:cc,`");
        bad_line("", "empty");
        bad_line("\n", "empty");
        bad_line("52:54:00:aa:bb:cc,\"host\"", "double quote");
        bad_line("52:54:00:aa:bb:cc,host#1", "`#`");
        bad_line("52:54:00:aa:bb:cc, host", "a space");
        bad_line("52:54:00:aa:bb:cc,\thost", "a tab");
        bad_line("52:54:00:aa:bb:cc,ho\u{7f}st", "U+007F");
        bad_line("52:54:00:aa:bb:cc\nset:x", "a newline");
        bad_line("52:54:00:aa:bb:cc\r", "a carriage return");
        bad_line("52:54:00:aa:bb:cc,hôst", "`ô`");
        bad_line("set:x,10.0.0.5", "matches no client");
        bad_line("id:*,set:x", "matches no client");
        let long = format!(
            "52:54:00:aa:bb:cc,{}",
            ["set:", &"a".repeat(60)].concat().repeat(17)
        );
        let long = format!("{long},{}", "b".repeat(10));
        bad_line(&long, "bytes");
    }

    #[test]
    fn line_tolerates_one_trailing_newline() {
        assert!(HostSpec::parse_line("52:54:00:aa:bb:cc\n").is_ok());
        bad_line("52:54:00:aa:bb:cc\n\n", "");
    }

    #[test]
    fn client_ids() {
        assert_eq!(parse_client_id("*").unwrap(), "*");
        assert_eq!(parse_client_id("1:A:ff").unwrap(), "01:0a:ff");
        for bad in ["", "01", "01:", ":01", "01::02", "1:2:3x", "*:01", "01-02"] {
            assert!(parse_client_id(bad).unwrap_err().contains(&q(bad)), "{bad}");
        }
        let many = vec!["00"; 256].join(":");
        assert!(parse_client_id(&many).unwrap_err().contains("256 octets"));
    }
}
