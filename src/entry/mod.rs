//! The grammar of the entries the broker writes: dnsmasq dhcp-host lines
//! (one per file in `--dhcp-hostsdir`), dhcp-option lines (files in
//! `--dhcp-optsdir`) and the names of those files.
//!
//! Why this module exists: dnsmasq never tells the writer of a file that a
//! line was wrong. It logs `<reason> at line N of <file>` and skips the line
//! — or, worse, reads it *differently* from what was meant without any log
//! at all: a MAC written with dashes becomes a hostname, `10.250.0.300`
//! becomes a hostname, an unbracketed IPv6 address becomes a hardware
//! address, a lease under two minutes becomes two minutes, a misspelt
//! option keyword becomes a tag that never matches, `59` is DHCPv4's T2
//! rather than the DHCPv6 boot URL, a `"` disappears, ` #` starts a comment,
//! and a line longer than dnsmasq's 1024-byte read buffer is cut in two, the
//! tail parsed as a line of its own (an injection path). The broker is the
//! only place where such a mistake can still be answered with an error, so
//! every entry is parsed here against dnsmasq's real grammar (src/option.c of
//! dnsmasq 2.90, 2.91 and 2.93, the releases the broker supports) and only
//! entries that each of them reads exactly as meant are accepted: where the
//! releases differ (options only 2.93 types, `known_options`), a value must
//! be one they all send alike.
//!
//! Every accepted entry is kept in a validated form ([`HostSpec`],
//! [`OptionsSpec`]) whose `render()` cannot fail and always produces the
//! same canonical bytes, so equal entries are byte-equal files (stable
//! ETags, no needless reloads), and Ironic's own lines round-trip
//! byte-identically.
//!
//! Every refusal is an [`EntryError`] naming the JSON path of the bad value
//! and a sentence that quotes it in backticks and says why.

mod common;
mod error;
mod host;
mod known_options;
mod lease;
mod mac;
mod name;
mod option;

#[cfg(test)]
mod tests;

pub use error::EntryError;
pub use host::HostSpec;
pub use lease::LeaseTime;
pub use mac::Mac;
pub use name::Name;
pub use option::{DhcpOption, OptionsSpec};

/// The longest line the broker writes, *including* its `\n`. dnsmasq reads
/// files with `fgets` into a 1025-byte buffer; the rest of a longer line is
/// parsed as a new line, so a value could smuggle in a line of its own.
pub const MAX_LINE_BYTES: usize = 1024;
