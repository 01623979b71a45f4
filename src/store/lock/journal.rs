//! The change journal: which files each generation changed, kept in the
//! hosts directory's lock file after the generation line, so a broker that
//! finds the generation moved re-reads only those files instead of
//! stat'ing every file. (In the lock file rather than a file of its own, so
//! the directory holds no other dotfile, and it is never renamed: other
//! brokers wait on its `flock`.)
//!
//! Format (text, one record per line, appended under the directory locks):
//!
//! ```text
//! 00000000000000000042         the generation, fixed width (rewritten in place)
//! from 40                      records cover generations > 40
//! 41 h ironic-52:54:00:aa:bb:cc.conf 9f0c…   generation, h|o, file name, check
//! 42 o ironic-node-1.conf 3a1e…
//! ```
//!
//! An older broker that rewrites the lock file as just `N\n` drops the
//! journal; the next reader then finds a gap and scans everything.
//!
//! Crash safety: a record is one `write` of a whole line ending in `\n` with
//! a 64-bit FNV-1a check of the rest of the line. A torn append (killed
//! mid-write, short write) leaves a line without its newline or with a bad
//! check; such lines are ignored, and the next append first ends the torn
//! line so it cannot merge with a good record. A reader uses the journal only
//! when every generation it missed has at least one good record (every
//! commit changes at least one file); otherwise — journal missing, torn,
//! compacted past what the reader knew, or written by an older broker that
//! kept no journal — it falls back to a full scan. Extra names are harmless
//! (the reader re-reads them and finds them unchanged).
//!
//! Compaction: once the file holds more than [`MAX_RECORDS`] records it is
//! rewritten in place with the newest half (the records move towards the
//! start; a crash part-way leaves every record either in the new part or
//! still intact in the old tail, and torn lines fail their check), the
//! `from` line then naming the newest generation dropped.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::file::{header, synced_len, Uncached, HEADER};
use crate::store::Kind;

/// Records kept before compaction.
pub(crate) const MAX_RECORDS: usize = 20_000;

fn check(body: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn record(generation: u64, kind: Kind, name: &str) -> String {
    let k = match kind {
        Kind::Host => 'h',
        Kind::Option => 'o',
    };
    let body = format!("{generation} {k} {name}");
    format!("{body} {:016x}\n", check(&body))
}

/// A parsed journal: the generation its records start after, and the good
/// records.
struct Parsed {
    from: u64,
    records: Vec<(u64, Kind, String)>,
}

fn parse(text: &str) -> Option<Parsed> {
    let mut lines = text.split_inclusive('\n');
    lines.next()?; // the generation
    let from = lines
        .next()?
        .strip_suffix('\n')?
        .strip_prefix("from ")?
        .parse()
        .ok()?;
    let mut records = Vec::new();
    for line in lines {
        // A line without its newline is a torn append.
        let Some(line) = line.strip_suffix('\n') else {
            continue;
        };
        let Some((body, sum)) = line.rsplit_once(' ') else {
            continue;
        };
        if u64::from_str_radix(sum, 16).ok() != Some(check(body)) {
            continue;
        }
        let mut parts = body.splitn(3, ' ');
        let (Some(g), Some(k), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(g) = g.parse() else { continue };
        let kind = match k {
            "h" => Kind::Host,
            "o" => Kind::Option,
            _ => continue,
        };
        records.push((g, kind, name.to_string()));
    }
    Some(Parsed { from, records })
}

/// Records the names generation `generation` changed in the lock file
/// `lock`, open read-write as `file` (the one the caller holds the lock
/// through: no second open per commit). The caller holds the directory
/// locks and appends before it stores the new generation.
pub(crate) fn append(
    file: &File,
    lock: &Path,
    generation: u64,
    names: &[(Kind, String)],
) -> io::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    use std::os::unix::fs::FileExt;
    let len = synced_len(file)?;
    let mut head = [0u8; HEADER + 5];
    let got = file.read_at(&mut head, 0)?;
    let ours = got == head.len()
        && head[..HEADER - 1].iter().all(u8::is_ascii_digit)
        && head[HEADER - 1] == b'\n'
        && &head[HEADER..] == b"from ";
    let mut out = String::new();
    let mut at = len;
    if !ours {
        // No journal yet (or an older broker's `N\n`): start one.
        let old = String::from_utf8_lossy(&head[..got]);
        let current: u64 = old
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        out.push_str(&header(current));
        out.push_str(&format!("from {}\n", generation.saturating_sub(1)));
        file.set_len(0)?;
        at = 0;
    } else {
        // End a torn line first, so it cannot merge with this record.
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            out.push('\n');
        }
    }
    for (kind, name) in names {
        out.push_str(&record(generation, *kind, name));
    }
    file.write_all_at(out.as_bytes(), at)?;
    // Roughly 50 bytes a record: compact past the limit.
    if (at as usize + out.len()) / 50 > MAX_RECORDS {
        compact(lock)?;
    }
    Ok(())
}

/// Rewrites the journal in place with its newest half.
pub(crate) fn compact(lock: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let text = Uncached::open(lock)?.read_to_string()?;
    let Some(parsed) = parse(&text) else {
        return Ok(());
    };
    if parsed.records.len() <= MAX_RECORDS / 2 {
        return Ok(());
    }
    let cut = parsed.records.len() - MAX_RECORDS / 2;
    let from = parsed.records[..cut]
        .iter()
        .map(|r| r.0)
        .max()
        .unwrap_or(parsed.from)
        .max(parsed.from);
    let mut out = text[..HEADER].to_string();
    out.push_str(&format!("from {from}\n"));
    for (g, k, name) in parsed.records[cut..].iter().filter(|r| r.0 > from) {
        out.push_str(&record(*g, *k, name));
    }
    let file = OpenOptions::new().write(true).open(lock)?;
    file.write_all_at(out.as_bytes(), 0)?;
    file.set_len(out.len() as u64)?;
    file.sync_all()
}

/// The files changed by generations `known + 1 ..= current`, or `None` when
/// the journal in the lock file `lock` cannot tell (then scan everything).
pub(crate) fn since(lock: &Path, known: u64, current: u64) -> Option<Vec<(Kind, String)>> {
    if current <= known {
        return Some(Vec::new());
    }
    let text = Uncached::open(lock).ok()?.read_to_string().ok()?;
    let parsed = parse(&text)?;
    if parsed.from > known {
        return None;
    }
    let mut seen = vec![false; usize::try_from(current - known).ok()?];
    let mut names = Vec::new();
    for (g, kind, name) in parsed.records {
        if g > known && g <= current {
            seen[(g - known - 1) as usize] = true;
            names.push((kind, name));
        }
    }
    if seen.iter().any(|s| !s) {
        return None;
    }
    names.sort();
    names.dedup();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    /// A lock file as a broker leaves it (generation 0).
    fn lock() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(".hostsdir-broker.lock");
        fs::write(&path, "0\n").unwrap();
        (d, path)
    }

    fn append(lock: &Path, generation: u64, names: &[(Kind, String)]) -> io::Result<()> {
        let file = OpenOptions::new().read(true).write(true).open(lock)?;
        super::append(&file, lock, generation, names)
    }

    fn names(v: &[&str]) -> Vec<(Kind, String)> {
        v.iter().map(|n| (Kind::Host, n.to_string())).collect()
    }

    #[test]
    fn covers_the_gap_and_only_it() {
        let (_d, l) = lock();
        append(&l, 1, &names(&["a"])).unwrap();
        append(&l, 2, &names(&["b", "c"])).unwrap();
        append(&l, 3, &[(Kind::Option, "o".into())]).unwrap();
        assert_eq!(since(&l, 1, 2), Some(names(&["b", "c"])));
        assert_eq!(
            since(&l, 0, 3).unwrap().len(),
            4,
            "every name of every missed generation"
        );
        assert_eq!(since(&l, 3, 3), Some(vec![]));
        // A generation the journal never saw (an older broker wrote it).
        assert_eq!(since(&l, 1, 4), None);
    }

    #[test]
    fn a_torn_append_is_ignored_and_cannot_swallow_the_next() {
        let (_d, l) = lock();
        append(&l, 1, &names(&["a"])).unwrap();
        // Killed mid-append of generation 2: half a record, no newline.
        let full = record(2, Kind::Host, "b");
        let mut f = OpenOptions::new().append(true).open(&l).unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);
        // Generation 2 is not covered: the reader must scan.
        assert_eq!(since(&l, 1, 2), None);
        assert_eq!(since(&l, 0, 1), Some(names(&["a"])));
        // The next commit (generation 2 again: the torn one never stored
        // its generation) is readable.
        append(&l, 2, &names(&["c"])).unwrap();
        assert_eq!(since(&l, 1, 2), Some(names(&["c"])));
        // A record with a bad check is ignored too.
        let mut bad = record(3, Kind::Host, "d");
        bad.replace_range(0..1, "4");
        let mut f = OpenOptions::new().append(true).open(&l).unwrap();
        f.write_all(bad.as_bytes()).unwrap();
        drop(f);
        assert_eq!(since(&l, 2, 4), None);
    }

    #[test]
    fn compaction_keeps_the_newest_and_says_where_it_starts() {
        let (_d, l) = lock();
        let n = MAX_RECORDS as u64 + 10;
        // Write the records directly (appending one by one is slow here).
        let mut text = header(n) + "from 0\n";
        for g in 1..=n {
            text.push_str(&record(g, Kind::Host, &format!("n{g}")));
        }
        fs::write(&l, text).unwrap();
        compact(&l).unwrap();
        assert_eq!(since(&l, 1, n), None, "compacted away");
        let recent = since(&l, n - 5, n).unwrap();
        assert_eq!(recent.len(), 5);
        assert!(since(&l, n - (MAX_RECORDS as u64 / 2) + 1, n).is_some());
    }

    #[test]
    fn a_missing_or_garbled_journal_means_scan() {
        let (_d, l) = lock();
        assert_eq!(since(&l, 0, 1), None, "an old lock file: no journal");
        fs::write(&l, "garbage").unwrap();
        assert_eq!(since(&l, 0, 1), None);
    }
}
