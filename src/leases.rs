//! Reading dnsmasq's lease file.
//!
//! dnsmasq rewrites the file in place (truncate, write, fsync), so a reader
//! can catch it empty or half-written. Lines that do not parse are skipped,
//! and a read that looks torn (a last line without its newline) is retried.

use std::path::Path;

use serde::Serialize;

/// One DHCPv4 or DHCPv6 lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Expiry as Unix seconds; 0 for an infinite lease.
    pub expires: u64,
    /// The client's MAC (DHCPv4), or `null` for DHCPv6 leases.
    pub mac: Option<String>,
    /// The leased address.
    pub ip: String,
    /// The client's hostname, if it sent one.
    pub hostname: Option<String>,
    /// The client id (DHCPv4) or IAID/DUID-derived id (DHCPv6), if any.
    pub client_id: Option<String>,
}

fn opt(field: &str) -> Option<String> {
    (field != "*").then(|| field.to_string())
}

/// Parses lease-file text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Lease> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"duid") || f.len() < 4 {
            continue;
        }
        let Ok(expires) = f[0].parse::<u64>() else {
            continue;
        };
        let is_mac =
            f[1].contains(':') && f[1].len() >= 11 && f[2].parse::<std::net::Ipv4Addr>().is_ok();
        let is_v6 = f[2].parse::<std::net::Ipv6Addr>().is_ok();
        if !is_mac && !is_v6 {
            continue;
        }
        out.push(Lease {
            expires,
            mac: is_mac.then(|| f[1].to_ascii_lowercase()),
            ip: f[2].to_string(),
            hostname: opt(f[3]),
            client_id: f.get(4).and_then(|c| opt(c)),
        });
    }
    out
}

/// Reads and parses the lease file; a missing file is an empty list.
pub fn read(path: &Path) -> std::io::Result<Vec<Lease>> {
    for _ in 0..5 {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if text.is_empty() || text.ends_with('\n') {
            return Ok(parse(&text));
        }
        // Caught mid-rewrite; dnsmasq finishes in well under a millisecond.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(parse(&std::fs::read_to_string(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_v6_and_skips_garbage() {
        let text = "1732400000 52:54:00:aa:bb:cc 10.0.0.5 node-1 01:52:54:00:aa:bb:cc\n\
                    0 52:54:00:aa:bb:dd 10.0.0.6 * *\n\
                    duid 00:01:00:01:2c:aa:bb:cc:dd:ee:ff:00\n\
                    1732400000 1234 fd00::5 node-2 00:01:02\n\
                    garbage line\n\
                    1732400000 52:54:00:aa:bb";
        let l = parse(text);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(l[0].hostname.as_deref(), Some("node-1"));
        assert_eq!(l[1].expires, 0);
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[1].client_id, None);
        assert_eq!(l[2].mac, None);
        assert_eq!(l[2].ip, "fd00::5");
    }
}
