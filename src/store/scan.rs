//! Reading the directories into an [`Index`]: at start-up, and whenever
//! another process changed them.
//!
//! Nothing found here is rewritten or dropped silently: files that do not
//! parse, names dnsmasq reads but the API cannot address, and address clashes
//! are all listed as problems for status and logs.

use std::fs;
use std::sync::Arc;
use std::time::SystemTime;

use super::fsio::{self, DirLock, FsError};
use super::{Entry, Etag, Index, Kind, Problem, Spec, Stamp, StoreConfig};
use crate::entry::Name;

/// Both directories' locks, always taken hosts first, then options.
pub(crate) struct Locks {
    /// The hosts directory's lock; its file holds the shared generation.
    pub(crate) hosts: DirLock,
    /// The options directory's lock.
    _opts: DirLock,
}

impl Locks {
    pub(crate) fn acquire(config: &StoreConfig) -> Result<Locks, FsError> {
        let hosts = DirLock::acquire(&config.hosts_dir, config.lock_timeout)?;
        let opts = DirLock::acquire(&config.opts_dir, config.lock_timeout)?;
        Ok(Locks { hosts, _opts: opts })
    }
}

/// Takes the locks and scans; returns the index, the generation read and the
/// directories' mtimes after the scan.
pub(crate) fn scan_locked(
    config: &StoreConfig,
) -> Result<(Index, u64, [Option<SystemTime>; 2]), FsError> {
    let mut locks = Locks::acquire(config)?;
    let generation = locks.hosts.generation()?;
    let index = scan(config, true, None)?;
    for p in index.problems.iter().chain(&index.duplicates()) {
        tracing::warn!(kind = %p.kind, file = %p.file, "{}", p.reason);
    }
    Ok((index, generation, dir_mtimes(config)))
}

/// The mtimes of both directories now.
pub(crate) fn dir_mtimes(config: &StoreConfig) -> [Option<SystemTime>; 2] {
    [Kind::Host, Kind::Option].map(|k| fs::metadata(config.dir(k)).and_then(|m| m.modified()).ok())
}

/// Reads both directories. The caller holds the locks; with `clean`, stale
/// temp files left by a killed broker are removed. Files whose stamp matches
/// `previous` are not read again.
pub(crate) fn scan(
    config: &StoreConfig,
    clean: bool,
    previous: Option<&Index>,
) -> Result<Index, FsError> {
    let mut index = Index::default();
    for kind in [Kind::Host, Kind::Option] {
        let dir = config.dir(kind);
        let mut names: Vec<String> = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| FsError::new("list", dir, e))?;
        for item in rd {
            let item = item.map_err(|e| FsError::new("list", dir, e))?;
            let Ok(file_name) = item.file_name().into_string() else {
                index.problems.push(problem(
                    kind,
                    &item.file_name().to_string_lossy(),
                    "the name is not UTF-8",
                ));
                continue;
            };
            if let Some(original) = fsio::parked_name(&file_name).filter(|_| clean) {
                // Killed mid-replace: the old version was parked and the new
                // one never linked. Put the old one back (the replace was
                // never acknowledged).
                let (parked, target) = (item.path(), dir.join(original));
                if !target.exists() && fs::rename(&parked, &target).is_ok() {
                    tracing::warn!(file = %target.display(), "restored an entry left parked by an interrupted replace");
                    names.push(original.to_string());
                    continue;
                }
            }
            if fsio::is_stale_temp(&file_name) {
                if clean {
                    let path = item.path();
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(path = %path.display(), "removed a stale temp file")
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), "could not remove a stale temp file: {e}")
                        }
                    }
                }
                continue;
            }
            names.push(file_name);
        }
        names.sort();
        for file_name in names {
            let meta = fs::metadata(dir.join(&file_name));
            let stamp = meta.as_ref().ok().map(Stamp::of);
            let known = previous
                .zip(stamp.as_ref())
                .and_then(|(p, s)| p.unchanged(kind, &file_name, s));
            let entry = match known {
                Some(e) => Some(e.clone()),
                None => read_entry(config, kind, &file_name, &mut index).map(Arc::new),
            };
            if let (Some(entry), Some(stamp)) = (entry, stamp) {
                index.set_stamp(kind, entry.name.clone(), stamp);
                index.insert(entry);
            }
        }
    }
    Ok(index)
}

/// Reads one file as an entry, or records why it is not one. Returns `None`
/// for files dnsmasq ignores too (dotfiles, `~`, `#…#`, subdirectories).
pub(crate) fn read_entry(
    config: &StoreConfig,
    kind: Kind,
    file_name: &str,
    index: &mut Index,
) -> Option<Entry> {
    let problems = &mut index.problems;
    if file_name.starts_with('.')
        || file_name.ends_with('~')
        || (file_name.starts_with('#') && file_name.ends_with('#'))
    {
        return None;
    }
    let path = config.dir(kind).join(file_name);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            problems.push(problem(kind, file_name, &format!("cannot stat: {e}")));
            return None;
        }
    };
    if !meta.is_file() {
        return None;
    }
    let name = match Name::parse(file_name) {
        Ok(n) => n,
        Err(e) => {
            problems.push(problem(
                kind,
                file_name,
                &format!(
                    "dnsmasq reads it but the API cannot manage it: {}",
                    e.message
                ),
            ));
            return None;
        }
    };
    let bytes = match fsio::read(&path) {
        Ok(b) => b,
        Err(e) => {
            problems.push(problem(kind, file_name, &e.to_string()));
            return None;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o004 == 0 {
        problems.push(problem(
            kind,
            file_name,
            "not world-readable: dnsmasq running as `nobody` cannot read it",
        ));
    }
    match Spec::parse_file(kind, &bytes) {
        Ok(spec) => {
            // parse_file succeeded, so the bytes are UTF-8.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let etag = Etag::of(&bytes);
            Some(Entry {
                name,
                spec,
                text,
                etag,
            })
        }
        Err(e) => {
            let file = super::Unparsed {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                etag: Etag::of(&bytes),
                reason: e.message,
            };
            index.set_unparsed(kind, name, file);
            None
        }
    }
}

fn problem(kind: Kind, file: &str, reason: &str) -> Problem {
    Problem {
        kind,
        file: file.to_string(),
        reason: reason.to_string(),
    }
}
