//! What the broker knows about dnsmasq versions, learned by running the
//! binary with `--version` (the one it supervises, or `/proc/PID/exe`).

use std::path::Path;
use std::process::Command;

/// A dnsmasq version as `(major, minor)`, e.g. `(2, 90)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Version {
    /// Parses the first line of `dnsmasq --version`
    /// (`Dnsmasq version 2.90  Copyright …`).
    pub fn parse_banner(text: &str) -> Option<Version> {
        let rest = text.split("version").nth(1)?.trim_start();
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version(major, minor))
    }

    /// True for versions that crash on SIGHUP once a host with a `set:` tag
    /// has done a DHCP exchange. Measured on 2.90 and fixed in 2.91; older
    /// versions were not measured and are treated as affected to be safe.
    pub fn crashes_on_sighup_with_set_tags(self) -> bool {
        self < Version(2, 91)
    }
}

/// Runs `binary --version` and parses it.
pub fn version_of(binary: &Path) -> Option<Version> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    Version::parse_banner(&String::from_utf8_lossy(&out.stdout))
}

/// The version of a running process, through `/proc/PID/exe`.
pub fn version_of_pid(pid: i32) -> Option<Version> {
    version_of(Path::new(&format!("/proc/{pid}/exe")))
}

/// The start-up warning for a version that crashes on SIGHUP, naming the fix.
pub fn crash_warning(v: Version, supervised: bool) -> String {
    let action = if supervised {
        "the broker restarts it instead of sending SIGHUP while hosts with `set:` tags are loaded (a restart costs more than a reload)"
    } else {
        "the broker refuses to send SIGHUP while hosts with `set:` tags are loaded, so removed or changed entries stay live until dnsmasq restarts"
    };
    format!("dnsmasq {v} crashes on SIGHUP once a host with a `set:` tag (every Ironic entry) has done a DHCP exchange; {action}. Fix: upgrade dnsmasq to 2.91 or later.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_banners() {
        assert_eq!(
            Version::parse_banner("Dnsmasq version 2.90  Copyright (c) 2000-2024 Simon Kelley\n"),
            Some(Version(2, 90))
        );
        assert_eq!(
            Version::parse_banner("Dnsmasq version 2.91rc3  Copyright"),
            Some(Version(2, 91))
        );
        assert_eq!(Version::parse_banner("nothing here"), None);
    }

    #[test]
    fn crash_range() {
        assert!(Version(2, 90).crashes_on_sighup_with_set_tags());
        assert!(!Version(2, 91).crashes_on_sighup_with_set_tags());
        assert!(!Version(3, 0).crashes_on_sighup_with_set_tags());
    }
}
