//! Ethernet MAC addresses as dhcp-host matches them.
//!
//! dnsmasq accepts many hardware-address spellings (any number of octets,
//! multi-octet chunks, a `<type>-` prefix); the broker accepts exactly six
//! octets, each one or two hex digits or a whole-octet `*` wildcard, and
//! always writes the lowercase colon form. The colon form matters: dnsmasq
//! takes a dhcp-host field for a hardware address only if it contains `:`
//! (`02-00-00-00-01-02` becomes a *hostname*), and in a field that does
//! contain `:` a `-` after the first octet marks a hardware *type*.

use super::common::q;
use std::fmt;

/// One MAC: 6 octets, each a hex byte or a `*` wildcard. Displays in
/// lowercase colon form (`52:54:00:aa:bb:cc`, `52:54:00:*:*:*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac([Option<u8>; 6]);

impl Mac {
    /// Parses six octets separated by `:` or (all of them) by `-`, in any
    /// case; an octet is one or two hex digits or `*`. The error is a
    /// message naming the value.
    pub fn parse(s: &str) -> Result<Mac, String> {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 6 {
            return Err(format!(
                "{} is not a MAC address: it has {} `{}`-separated parts, a MAC has 6 octets",
                q(s),
                parts.len(),
                sep
            ));
        }
        let mut octets = [None; 6];
        for (slot, part) in octets.iter_mut().zip(&parts) {
            *slot = match *part {
                "*" => None,
                p if (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(u8::from_str_radix(p, 16).map_err(|e| format!("{}: {e}", q(s)))?)
                }
                p => {
                    return Err(format!(
                        "{} is not a MAC address: octet {} is not one or two hex digits or `*`",
                        q(s),
                        q(p)
                    ))
                }
            };
        }
        Ok(Mac(octets))
    }

    /// Does any octet match every value (`*`)?
    pub fn is_wildcard(&self) -> bool {
        self.0.iter().any(Option::is_none)
    }

    /// The octets, `None` standing for a `*` wildcard.
    pub fn octets(&self) -> [Option<u8>; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            match octet {
                Some(b) => write!(f, "{b:02x}")?,
                None => f.write_str("*")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mac::parse(s)
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    #[test]
    fn parses_and_normalises() {
        for (input, want) in [
            ("52:54:00:aa:bb:cc", "52:54:00:aa:bb:cc"),
            ("52:54:00:AA:BB:CC", "52:54:00:aa:bb:cc"),
            ("52-54-00-aa-bb-cc", "52:54:00:aa:bb:cc"),
            ("2:4:0:a:b:c", "02:04:00:0a:0b:0c"),
            ("52:54:00:*:*:*", "52:54:00:*:*:*"),
            ("*-*-*-*-*-*", "*:*:*:*:*:*"),
        ] {
            let m = Mac::parse(input).unwrap();
            assert_eq!(m.to_string(), want);
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(want));
        }
        assert!(Mac::parse("52:54:00:*:*:*").unwrap().is_wildcard());
        assert!(!Mac::parse("52:54:00:aa:bb:cc").unwrap().is_wildcard());
    }

    #[test]
    fn refuses_bad_macs() {
        for bad in [
            "",
            "52:54:00:aa:bb",
            "52:54:00:aa:bb:cc:dd",
            "52:54:00-aa-bb-cc",
            "52:54:00:aa:bb:ccc",
            "52:54:00:aa:bb:",
            "52:54:00:aa:bb:c*",
            "52:54:00:aa:bb:gg",
            "5254.00aa.bbcc",
            "52:54:00:aa:bb:+c",
            "fd00::5",
        ] {
            let msg = Mac::parse(bad).unwrap_err();
            assert!(msg.contains(&q(bad)), "{msg}");
        }
    }
}
