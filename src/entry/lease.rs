//! Lease times of dhcp-host lines.
//!
//! dnsmasq reads a dhcp-host field as a lease time when it is all digits,
//! optionally followed by one of `s m h d w` (any case), and as "no expiry"
//! when it is exactly `infinite`. It silently raises anything under 120
//! seconds to 120 and computes `number × unit` in a C `int`, so the broker
//! refuses values below 120 s (they would not mean what they say) and above
//! 2³¹−1 s (they would overflow).

use super::common::q;
use std::fmt;

/// Shortest lease dnsmasq honours, in seconds.
pub(crate) const MIN_LEASE_SECS: u64 = 120;
/// Longest finite lease that dnsmasq computes without overflow, in seconds.
pub(crate) const MAX_LEASE_SECS: u64 = i32::MAX as u64;

/// A dhcp-host lease time: `infinite`, or a number of seconds, minutes,
/// hours, days or weeks. Displays in its canonical form (`infinite`,
/// `600`, `12h`): no leading zeros, lowercase unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTime(Repr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    Infinite,
    Finite { amount: u32, unit: Option<char> },
}

/// Seconds per unit letter (lowercase), `None` for a letter that is no unit.
fn unit_secs(unit: char) -> Option<u64> {
    match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3_600),
        'd' => Some(86_400),
        'w' => Some(604_800),
        _ => None,
    }
}

/// Does dnsmasq's dhcp-host parser take `field` for a lease time (digits,
/// optionally followed by a unit letter when the field is longer than one
/// character)? `infinite` is handled separately.
pub(crate) fn looks_like_lease(field: &str) -> bool {
    // A unit is one ASCII byte, so cutting it off keeps a char boundary.
    let digits = match field.chars().last() {
        Some(c) if field.len() > 1 && unit_secs(c.to_ascii_lowercase()).is_some() => {
            &field[..field.len() - 1]
        }
        _ => field,
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

impl LeaseTime {
    /// The lease that never expires.
    pub const INFINITE: LeaseTime = LeaseTime(Repr::Infinite);

    /// Parses `infinite` or digits with an optional unit (`s m h d w`, any
    /// case). The error is a message naming the value.
    pub fn parse(s: &str) -> Result<LeaseTime, String> {
        if s == "infinite" {
            return Ok(Self::INFINITE);
        }
        // An ASCII letter is one byte, so cutting it off keeps a char boundary.
        let (digits, unit) = match s.chars().last() {
            Some(c) if c.is_ascii_alphabetic() => (&s[..s.len() - 1], Some(c.to_ascii_lowercase())),
            _ => (s, None),
        };
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || unit.is_some_and(|u| unit_secs(u).is_none())
        {
            return Err(format!(
                "{} is not a lease time: write `infinite` or a whole number of seconds, optionally \
                 followed by a unit `s`, `m`, `h`, `d` or `w` (like `12h`)",
                q(s)
            ));
        }
        let trimmed = digits.trim_start_matches('0');
        let amount: u64 = if trimmed.is_empty() {
            0
        } else if trimmed.len() > 12 {
            u64::MAX
        } else {
            trimmed.parse().map_err(|e| format!("{}: {e}", q(s)))?
        };
        Self::finite(amount, unit).map_err(|why| format!("{} {why}", q(s)))
    }

    /// A lease of `secs` seconds (as given by a JSON integer).
    pub fn from_secs(secs: u64) -> Result<LeaseTime, String> {
        Self::finite(secs, None).map_err(|why| format!("`{secs}` {why}"))
    }

    fn finite(amount: u64, unit: Option<char>) -> Result<LeaseTime, String> {
        let per = unit.and_then(unit_secs).unwrap_or(1);
        let secs = amount.saturating_mul(per);
        if secs < MIN_LEASE_SECS {
            return Err(format!(
                "is a lease of {secs} seconds; dnsmasq silently raises leases under \
                 {MIN_LEASE_SECS} seconds to {MIN_LEASE_SECS}, so write at least `{MIN_LEASE_SECS}` \
                 (or `2m`)"
            ));
        }
        if secs > MAX_LEASE_SECS {
            return Err(format!(
                "is a lease of more than {MAX_LEASE_SECS} seconds, which overflows dnsmasq's \
                 arithmetic; write `infinite` for a lease that does not expire"
            ));
        }
        // secs <= i32::MAX and per >= 1, so amount fits in u32.
        let amount = u32::try_from(amount).map_err(|e| e.to_string())?;
        Ok(LeaseTime(Repr::Finite { amount, unit }))
    }

    /// The lease in seconds, `None` for `infinite`.
    pub fn seconds(&self) -> Option<u64> {
        match self.0 {
            Repr::Infinite => None,
            Repr::Finite { amount, unit } => {
                Some(u64::from(amount) * unit.and_then(unit_secs).unwrap_or(1))
            }
        }
    }

    /// Is this the lease that never expires?
    pub fn is_infinite(&self) -> bool {
        self.0 == Repr::Infinite
    }
}

impl fmt::Display for LeaseTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Infinite => f.write_str("infinite"),
            Repr::Finite { amount, unit: None } => write!(f, "{amount}"),
            Repr::Finite {
                amount,
                unit: Some(u),
            } => write!(f, "{amount}{u}"),
        }
    }
}

impl serde::Serialize for LeaseTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        for (input, canon, secs) in [
            ("infinite", "infinite", None),
            ("120", "120", Some(120)),
            ("0120", "120", Some(120)),
            ("600s", "600s", Some(600)),
            ("2m", "2m", Some(120)),
            ("12h", "12h", Some(43_200)),
            ("12H", "12h", Some(43_200)),
            ("1d", "1d", Some(86_400)),
            ("1W", "1w", Some(604_800)),
            ("2147483647", "2147483647", Some(2_147_483_647)),
        ] {
            let l = LeaseTime::parse(input).unwrap();
            assert_eq!(l.to_string(), canon);
            assert_eq!(l.seconds(), secs);
            assert_eq!(LeaseTime::parse(canon).unwrap(), l);
        }
        assert_eq!(LeaseTime::from_secs(600).unwrap().to_string(), "600");
    }

    #[test]
    fn refuses_bad_leases() {
        for bad in [
            "",
            "119",
            "1m",
            "0",
            "0h",
            "1x",
            "h",
            "12hh",
            "-5",
            "+600",
            "1.5h",
            "Infinite",
            "infinity",
            "3551w",
            "2147483648",
            "99999999999999999999",
        ] {
            let msg = LeaseTime::parse(bad).unwrap_err();
            assert!(msg.contains(&q(bad)), "{msg}");
        }
        assert!(LeaseTime::from_secs(119).unwrap_err().contains("`119`"));
    }

    #[test]
    fn lease_shape_follows_dnsmasq() {
        for yes in ["5", "5m", "5M", "120", "0", "12w", "00s"] {
            assert!(looks_like_lease(yes), "{yes}");
        }
        for no in ["m", "", "m5", "5x", "1.2", "infinite", "s5s"] {
            assert!(!looks_like_lease(no), "{no}");
        }
    }
}
