//! The in-memory view of both directories: name → entry, and the
//! MAC / IPv4 / IPv6 → host-name maps that enforce "one entry per address".
//!
//! Only the writer thread mutates it; readers take a short read lock. It is
//! rebuilt from disk at start-up and whenever another process changed the
//! directories, so it is a cache of the files, never the source of truth.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::{Entry, Kind, Spec};
use crate::entry::{Mac, Name};

/// Something a host entry may hold exclusively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A hardware address.
    Mac(Mac),
    /// A fixed IPv4 address.
    V4(Ipv4Addr),
    /// A fixed IPv6 address.
    V6(Ipv6Addr),
}

impl Key {
    /// The API field the key comes from, for conflict messages.
    pub fn field(&self) -> &'static str {
        match self {
            Key::Mac(_) => "macs",
            Key::V4(_) => "ipv4",
            Key::V6(_) => "ipv6",
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Mac(m) => m.fmt(f),
            Key::V4(a) => a.fmt(f),
            Key::V6(a) => a.fmt(f),
        }
    }
}

/// The exclusive keys of a spec (none for options).
pub(crate) fn keys_of(spec: &Spec) -> Vec<Key> {
    match spec {
        Spec::Host(h) => h
            .macs()
            .iter()
            .map(|m| Key::Mac(*m))
            .chain(h.ipv4().map(Key::V4))
            .chain(h.ipv6().map(Key::V6))
            .collect(),
        Spec::Options(_) => Vec::new(),
    }
}

/// A file in a managed directory that is not a usable entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Which directory.
    pub kind: Kind,
    /// The file name.
    pub file: String,
    /// Why it is not indexed.
    pub reason: String,
}

/// Inode, size and mtime of a file: equal stamps mean unchanged contents
/// (for files replaced by rename, which is how everyone should write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    size: u64,
    /// Nanoseconds since the epoch (an `i64` lasts until 2262).
    mtime_ns: i64,
}

/// An entry's [`Stamp`], kept in the entry itself: a map from 150,000
/// names to stamps cost more than the stamps (a second copy of every name
/// pointer, hash slots). Atomics, because the entry is shared (`Arc`) with
/// readers while the index notes a new stamp; only the index reads it.
#[derive(Default)]
pub(crate) struct StampCell {
    /// 0: no stamp (no file has inode 0).
    ino: AtomicU64,
    size: AtomicU64,
    mtime_ns: AtomicI64,
}

impl StampCell {
    pub(crate) fn get(&self) -> Option<Stamp> {
        let ino = self.ino.load(Ordering::Relaxed);
        (ino != 0).then(|| Stamp {
            ino,
            size: self.size.load(Ordering::Relaxed),
            mtime_ns: self.mtime_ns.load(Ordering::Relaxed),
        })
    }

    pub(crate) fn set(&self, stamp: Option<Stamp>) {
        let s = stamp.unwrap_or(Stamp {
            ino: 0,
            size: 0,
            mtime_ns: 0,
        });
        // Only the index's owner writes, under its write lock; readers of
        // the stamp hold its read lock: the three stores are never seen
        // half-done.
        self.size.store(s.size, Ordering::Relaxed);
        self.mtime_ns.store(s.mtime_ns, Ordering::Relaxed);
        self.ino.store(s.ino, Ordering::Relaxed);
    }
}

impl Clone for StampCell {
    fn clone(&self) -> Self {
        let c = StampCell::default();
        c.set(self.get());
        c
    }
}

impl std::fmt::Debug for StampCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// Entries are equal by contents, wherever their files are.
impl PartialEq for StampCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StampCell {}

impl Stamp {
    /// The stamp of a raw `stat`.
    pub(crate) fn from_stat(st: &nix::sys::stat::FileStat) -> Stamp {
        Stamp {
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st
                .st_mtime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_mtime_nsec),
        }
    }

    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
        }
    }
}

/// A file with a valid entry name that does not parse: the broker does not
/// understand it, but it exists, so it can be replaced or deleted (and its
/// removal from dnsmasq needs a reload like any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed {
    /// The file's contents (lossy UTF-8).
    pub text: String,
    /// SHA-256 of the file's bytes.
    pub etag: super::Etag,
    /// Why it does not parse.
    pub reason: String,
}

/// Filters for listing entries.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// Only hosts holding this MAC.
    pub mac: Option<Mac>,
    /// Only entries carrying this tag (set or match tag, or an option's tag).
    pub tag: Option<String>,
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Only names sorting after this (the cursor).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// The first `limit` items, and whether more follow.
fn page(mut iter: impl Iterator<Item = Arc<Entry>>, limit: usize) -> (Vec<Arc<Entry>>, bool) {
    let items: Vec<_> = iter.by_ref().take(limit).collect();
    let more = iter.next().is_some();
    (items, more)
}

impl ListQuery {
    /// The `mac` and `tag` filters (names are bounded by the walk).
    fn admits(&self, e: &Entry) -> bool {
        if self.mac.is_none() && self.tag.is_none() {
            return true;
        }
        let spec = e.spec();
        self.mac
            .is_none_or(|m| matches!(&spec, Spec::Host(h) if h.macs().contains(&m)))
            && self.tag.as_deref().is_none_or(|t| spec.has_tag(t))
    }
}

/// Both directories' entries plus the uniqueness maps.
#[derive(Debug, Default)]
pub struct Index {
    hosts: BTreeMap<Name, Arc<Entry>>,
    options: BTreeMap<Name, Arc<Entry>>,
    /// Who holds each MAC / IP. When files on disk already break the rule
    /// (written by others), the first name in sort order is kept here and the
    /// clash is listed in `duplicates`.
    holders: Holders,
    /// Files that could not be indexed, with the reason.
    pub problems: Vec<Problem>,
    /// Address clashes found among files not written by this broker, by file.
    duplicates: BTreeMap<(Kind, String), String>,
    /// Files under entry names that do not parse (also listed in `problems`).
    /// Indexed by `Kind as usize`, so lookups by `&str` need no allocation.
    unparsed: [HashMap<Name, Unparsed>; 2],
    /// How many host entries carry a `set:` tag (kept current so the
    /// dnsmasq 2.90 crash check is O(1) on the commit path).
    set_tag_hosts: usize,
    /// Entries by tag (by the tag's hash, to keep the map small; a lookup
    /// checks the tag itself), by `Kind as usize`.
    tags: [TagMap; 2],
}

/// Who holds each MAC / IPv4 / IPv6, one map per kind of key (a map of
/// [`Key`] would spend 40 bytes a slot on the widest variant).
#[derive(Debug, Default)]
struct Holders {
    macs: HashMap<Mac, Name>,
    v4: HashMap<Ipv4Addr, Name>,
    v6: HashMap<Ipv6Addr, Name>,
}

impl Holders {
    fn get(&self, key: &Key) -> Option<&Name> {
        match key {
            Key::Mac(m) => self.macs.get(m),
            Key::V4(a) => self.v4.get(a),
            Key::V6(a) => self.v6.get(a),
        }
    }

    fn insert(&mut self, key: Key, name: Name) {
        match key {
            Key::Mac(m) => self.macs.insert(m, name),
            Key::V4(a) => self.v4.insert(a, name),
            Key::V6(a) => self.v6.insert(a, name),
        };
    }

    fn remove(&mut self, key: &Key) {
        match key {
            Key::Mac(m) => self.macs.remove(m),
            Key::V4(a) => self.v4.remove(a),
            Key::V6(a) => self.v6.remove(a),
        };
    }
}

/// The entries carrying one tag. Most tags (Ironic's per-node tags) have
/// one holder, kept without a collection of its own; a tag most entries
/// carry (`ironic`) is a set, so removing one of 100,000 holders is O(1).
#[derive(Debug)]
enum Tagged {
    One(Arc<Entry>),
    /// Boxed: the map's slot stays two words for the common `One` (one
    /// entry per tag is the rule: `set:node-<uuid>`), not eight.
    #[allow(clippy::box_collection)]
    Many(Box<std::collections::HashSet<ByPtr>>),
}

/// An entry compared and hashed by identity (the index holds one `Arc` per
/// entry).
#[derive(Debug, Clone)]
struct ByPtr(Arc<Entry>);

impl PartialEq for ByPtr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByPtr {}

impl std::hash::Hash for ByPtr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

impl Tagged {
    fn len(&self) -> usize {
        match self {
            Tagged::One(_) => 1,
            Tagged::Many(set) => set.len(),
        }
    }

    /// The holders `keep` admits, in no particular order.
    fn matching(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        match self {
            Tagged::One(e) => Vec::from_iter(keep(e).then(|| e.clone())),
            Tagged::Many(set) => set
                .iter()
                .filter(|e| keep(&e.0))
                .map(|e| e.0.clone())
                .collect(),
        }
    }

    fn push(&mut self, entry: Arc<Entry>) {
        match self {
            Tagged::One(first) => {
                *self = Tagged::Many(Box::new(
                    [ByPtr(first.clone()), ByPtr(entry)].into_iter().collect(),
                ))
            }
            Tagged::Many(set) => {
                set.insert(ByPtr(entry));
            }
        }
    }

    /// Removes `entry`; true when none is left.
    fn remove(&mut self, entry: &Arc<Entry>) -> bool {
        match self {
            Tagged::One(e) => Arc::ptr_eq(e, entry),
            Tagged::Many(set) => {
                set.remove(&ByPtr(entry.clone()));
                set.is_empty()
            }
        }
    }
}

/// What the index needs of a spec: its exclusive keys and its tags'
/// hashes. Computed where the file was parsed (on the scan's workers), so
/// indexing needs neither the spec nor a second parse.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    keys: Vec<Key>,
    tags: Vec<u64>,
    set_tags: bool,
}

impl Digest {
    pub(crate) fn of(spec: &Spec) -> Digest {
        let mut tags: Vec<u64> = tags_of(spec).into_iter().map(tag_hash).collect();
        tags.sort_unstable();
        tags.dedup();
        Digest {
            keys: keys_of(spec),
            tags,
            set_tags: has_set_tags(spec),
        }
    }
}

/// A hasher for keys that are already hashes (the tag map's `u64`s).
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type TagMap = HashMap<u64, Tagged, std::hash::BuildHasherDefault<Prehashed>>;

/// The distinct tags an entry carries (set, match or option tags).
fn tags_of(spec: &Spec) -> Vec<&str> {
    let mut tags: Vec<&str> = match spec {
        Spec::Host(h) => h
            .set_tags()
            .iter()
            .chain(h.match_tags())
            .map(String::as_str)
            .collect(),
        Spec::Options(o) => o
            .options()
            .iter()
            .flat_map(|opt| opt.tags.iter().map(String::as_str))
            .collect(),
    };
    tags.sort_unstable();
    tags.dedup();
    tags
}

fn tag_hash(tag: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    h.finish()
}

pub(crate) fn has_set_tags(spec: &Spec) -> bool {
    matches!(spec, Spec::Host(h) if !h.set_tags().is_empty())
}

impl Index {
    fn map(&self, kind: Kind) -> &BTreeMap<Name, Arc<Entry>> {
        match kind {
            Kind::Host => &self.hosts,
            Kind::Option => &self.options,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut BTreeMap<Name, Arc<Entry>> {
        match kind {
            Kind::Host => &mut self.hosts,
            Kind::Option => &mut self.options,
        }
    }

    /// The entry stored under `name`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Arc<Entry>> {
        self.map(kind).get(name)
    }

    /// Number of entries of a kind.
    pub fn len(&self, kind: Kind) -> usize {
        self.map(kind).len()
    }

    /// The host entry holding `key`, if any.
    pub fn holder(&self, key: &Key) -> Option<&Name> {
        self.holders.get(key)
    }

    /// True when some host entry carries a `set:` tag (relevant to
    /// dnsmasq 2.90's crash on SIGHUP).
    pub fn any_set_tags(&self) -> bool {
        self.set_tag_hosts > 0
    }

    /// The unparsable file under `name`, if there is one.
    pub fn unparsed(&self, kind: Kind, name: &Name) -> Option<&Unparsed> {
        self.unparsed[kind as usize].get(name.as_str())
    }

    /// Records an unparsable file under an entry name.
    pub fn set_unparsed(&mut self, kind: Kind, name: Name, file: Unparsed) {
        self.problems.push(Problem {
            kind,
            file: name.to_string(),
            reason: file.reason.clone(),
        });
        self.unparsed[kind as usize].insert(name, file);
    }

    /// Records an unparsable file whose problem is already listed.
    pub(crate) fn set_unparsed_quiet(&mut self, kind: Kind, name: Name, file: Unparsed) {
        self.unparsed[kind as usize].insert(name, file);
    }

    /// Forgets an unparsable file that was replaced or removed.
    fn forget_unparsed(&mut self, kind: Kind, name: &str) {
        if self.unparsed[kind as usize].remove(name).is_some() {
            self.problems
                .retain(|p| !(p.kind == kind && p.file == name));
        }
    }

    /// Inserts or replaces an entry, keeping the address maps in step.
    pub fn insert(&mut self, entry: Arc<Entry>) -> Option<Arc<Entry>> {
        let digest = Digest::of(&entry.spec());
        let kind = entry.kind();
        self.forget_unparsed(kind, entry.name.as_str());
        let old = self.remove(kind, entry.name.as_str());
        // Its file's stamp is noted once it is on disk (`set_stamp`).
        entry.stamp.set(None);
        self.add(entry, &digest);
        old
    }

    /// Takes over `other`'s entries, files and problems of `kind` (an
    /// index built from that directory alone).
    pub(crate) fn absorb(&mut self, mut other: Index, kind: Kind) {
        let k = kind as usize;
        *self.map_mut(kind) = std::mem::take(other.map_mut(kind));
        self.unparsed[k] = std::mem::take(&mut other.unparsed[k]);
        self.tags[k] = std::mem::take(&mut other.tags[k]);
        self.problems.append(&mut other.problems);
        if kind == Kind::Host {
            self.holders = other.holders;
            self.duplicates.append(&mut other.duplicates);
            self.set_tag_hosts = other.set_tag_hosts;
        }
    }

    /// Makes room for `n` more entries of a kind (before a scan).
    pub(crate) fn reserve(&mut self, kind: Kind, n: usize) {
        self.tags[kind as usize].reserve(n);
        if kind == Kind::Host {
            self.holders.macs.reserve(n);
        }
    }

    /// Adds an entry whose name the index does not hold yet, with its stamp,
    /// for a scan that lists each name once, in order, and holds them in
    /// `sorted` until [`Index::fill`] builds the map from them at
    /// once (packed nodes, no search per insert).
    pub(crate) fn add_sorted(
        &mut self,
        sorted: &mut Vec<(Name, Arc<Entry>)>,
        entry: Arc<Entry>,
        digest: &Digest,
        stamp: Stamp,
    ) {
        entry.stamp.set(Some(stamp));
        self.link(&entry, digest);
        sorted.push((entry.name.clone(), entry));
    }

    /// The entries of `kind` are `sorted` (see [`Index::add_sorted`]).
    pub(crate) fn fill(&mut self, kind: Kind, sorted: Vec<(Name, Arc<Entry>)>) {
        debug_assert!(self.map(kind).is_empty());
        *self.map_mut(kind) = sorted.into_iter().collect();
    }

    /// Adds an entry under a name no entry holds.
    fn add(&mut self, entry: Arc<Entry>, digest: &Digest) {
        self.link(&entry, digest);
        self.map_mut(entry.kind()).insert(entry.name.clone(), entry);
    }

    /// Notes an entry's addresses and tags (not the entry itself).
    fn link(&mut self, entry: &Arc<Entry>, digest: &Digest) {
        let kind = entry.kind();
        for &key in &digest.keys {
            match self.holders.get(&key) {
                Some(holder) if holder != &entry.name => {
                    let reason = format!("{} `{key}` is also held by `{holder}`", key.field());
                    self.duplicates
                        .insert((kind, entry.name.to_string()), reason);
                }
                _ => {
                    self.holders.insert(key, entry.name.clone());
                }
            }
        }
        self.set_tag_hosts += usize::from(digest.set_tags);
        for &tag in &digest.tags {
            match self.tags[kind as usize].entry(tag) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    o.get_mut().push(entry.clone())
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Tagged::One(entry.clone()));
                }
            }
        }
    }

    /// Removes an entry (or an unparsable file's record), releasing its
    /// addresses.
    pub fn remove(&mut self, kind: Kind, name: &str) -> Option<Arc<Entry>> {
        self.forget_unparsed(kind, name);
        if !self.duplicates.is_empty() {
            self.duplicates.remove(&(kind, name.to_string()));
        }
        let old = self.map_mut(kind).remove(name)?;
        let old_spec = old.spec();
        let digest = Digest::of(&old_spec);
        self.set_tag_hosts -= usize::from(digest.set_tags);
        for &h in &digest.tags {
            if let Some(list) = self.tags[kind as usize].get_mut(&h) {
                if list.remove(&old) {
                    self.tags[kind as usize].remove(&h);
                }
            }
        }
        let mut released = Vec::new();
        for &key in &digest.keys {
            if self.holders.get(&key).map(|n| n.as_str()) == Some(name) {
                self.holders.remove(&key);
                released.push(key);
            }
        }
        if !released.is_empty() && !self.duplicates.is_empty() {
            self.promote_duplicates(&released);
        }
        Some(old)
    }

    /// After a holder is removed, a file that clashed with it on a released
    /// key becomes that key's holder (what a full rescan would find).
    fn promote_duplicates(&mut self, released: &[Key]) {
        let clashing: Vec<Arc<Entry>> = self
            .duplicates
            .keys()
            .filter(|(k, _)| *k == Kind::Host)
            .filter_map(|(_, n)| self.hosts.get(n.as_str()).cloned())
            .filter(|e| keys_of(&e.spec()).iter().any(|k| released.contains(k)))
            .collect();
        for entry in clashing {
            self.duplicates
                .remove(&(Kind::Host, entry.name.to_string()));
            for key in keys_of(&entry.spec()) {
                match self.holders.get(&key) {
                    Some(holder) if holder != &entry.name => {
                        let reason = format!("{} `{key}` is also held by `{holder}`", key.field());
                        self.duplicates
                            .insert((Kind::Host, entry.name.to_string()), reason);
                    }
                    _ => {
                        self.holders.insert(key, entry.name.clone());
                    }
                }
            }
        }
    }

    /// Forgets every problem recorded for `file` (before it is read again).
    pub(crate) fn forget_problems(&mut self, kind: Kind, file: &str) {
        if !self.problems.is_empty() {
            self.problems
                .retain(|p| !(p.kind == kind && p.file == file));
        }
        if let Ok(name) = Name::parse(file) {
            self.unparsed[kind as usize].remove(name.as_str());
        }
    }

    /// Names of every file the index knows of (entries and unparsable
    /// files) of a kind.
    pub(crate) fn known_names(&self, kind: Kind) -> impl Iterator<Item = &Name> {
        self.map(kind)
            .keys()
            .chain(self.unparsed[kind as usize].keys())
    }

    /// Entries matching `q`, sorted by name, and whether more follow.
    pub fn list(&self, kind: Kind, q: &ListQuery) -> (Vec<Arc<Entry>>, bool) {
        // A MAC has one holder unless files written by others clash.
        if let Some(m) = q.mac.filter(|_| self.duplicates.is_empty()) {
            let found = match kind {
                Kind::Host => self
                    .holders
                    .get(&Key::Mac(m))
                    .and_then(|n| self.hosts.get(n.as_str())),
                Kind::Option => None,
            };
            return self.finish_list(found.into_iter().cloned().collect(), q);
        }
        // A tag held by few entries: from the tag index. (A tag most entries
        // carry is cheaper to find by walking in name order, which stops at
        // `limit`.)
        if let Some(tag) = q.tag.as_deref() {
            let list = self.tags[kind as usize].get(&tag_hash(tag));
            let holders = list.map_or(0, Tagged::len);
            if holders <= 1024 || holders <= q.limit {
                let mut found: Vec<Arc<Entry>> =
                    list.map_or_else(Vec::new, |l| l.matching(|e| e.spec().has_tag(tag)));
                found.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                // The tag is checked: the rest of the query need not parse
                // each entry again for it.
                let rest = ListQuery {
                    tag: None,
                    ..q.clone()
                };
                return self.finish_list(found, &rest);
            }
        }
        self.scan_list(kind, q)
    }

    /// Applies the cursor, prefix, remaining filters and limit to
    /// candidates sorted by name.
    fn finish_list(&self, found: Vec<Arc<Entry>>, q: &ListQuery) -> (Vec<Arc<Entry>>, bool) {
        let iter = found
            .into_iter()
            .filter(|e| q.after.as_deref().is_none_or(|a| e.name.as_str() > a))
            .filter(|e| {
                q.prefix
                    .as_deref()
                    .is_none_or(|p| e.name.as_str().starts_with(p))
            })
            .filter(|e| q.admits(e));
        page(iter, q.limit)
    }

    /// [`Index::list`] by walking the entries in name order.
    fn scan_list(&self, kind: Kind, q: &ListQuery) -> (Vec<Arc<Entry>>, bool) {
        // Seek straight to the later of the cursor and the prefix.
        let start = match (q.after.as_deref(), q.prefix.as_deref()) {
            (Some(a), Some(p)) if p > a => Bound::Included(p),
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(p)) => Bound::Included(p),
            (None, None) => Bound::Unbounded,
        };
        let iter = self
            .map(kind)
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, e)| e)
            .take_while(|e| {
                q.prefix
                    .as_deref()
                    .is_none_or(|p| e.name.as_str().starts_with(p))
            })
            .filter(|e| q.admits(e))
            .cloned();
        page(iter, q.limit)
    }

    /// Names of a kind starting with `prefix`.
    pub fn names_with_prefix(&self, kind: Kind, prefix: &str) -> Vec<Name> {
        self.map(kind)
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(n, _)| n.as_str().starts_with(prefix))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Records how `name`'s file looks on disk now.
    /// (Only for a name the index holds an entry for: an unparsable file
    /// is read again at every pass.)
    pub fn set_stamp(&mut self, kind: Kind, name: &str, stamp: Stamp) {
        if let Some(entry) = self.map(kind).get(name) {
            entry.stamp.set(Some(stamp));
        }
    }

    /// How `name`'s file looked on disk when last read or written.
    pub fn stamp(&self, kind: Kind, name: &Name) -> Option<Stamp> {
        self.stamp_of(kind, name.as_str())
    }

    /// How the file `name` looked when last read or written (by `&str`).
    pub(crate) fn stamp_of(&self, kind: Kind, name: &str) -> Option<Stamp> {
        self.map(kind).get(name).and_then(|e| e.stamp.get())
    }

    /// Address clashes among entries on disk.
    pub fn duplicates(&self) -> Vec<Problem> {
        self.duplicates
            .iter()
            .map(|((kind, file), reason)| Problem {
                kind: *kind,
                file: file.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// Every entry of a kind (for snapshot comparisons).
    pub fn iter(&self, kind: Kind) -> impl Iterator<Item = &Arc<Entry>> {
        self.map(kind).values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::HostSpec;

    fn host(name: &str, line: &str) -> Arc<Entry> {
        let spec = HostSpec::parse_line(line).expect("a valid host line");
        Arc::new(Entry::canonical(
            Name::parse(name).expect("a valid name"),
            Spec::Host(spec),
        ))
    }

    fn stamp(ino: u64) -> Stamp {
        Stamp {
            ino,
            size: 40,
            mtime_ns: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn a_stamp_lives_with_its_entry_and_not_beyond_it() {
        let mut index = Index::default();
        let a = host("a.conf", "52:54:00:00:00:01,10.0.0.1\n");
        index.insert(a.clone());
        assert_eq!(
            index.stamp_of(Kind::Host, "a.conf"),
            None,
            "not on disk yet"
        );
        index.set_stamp(Kind::Host, "a.conf", stamp(7));
        assert_eq!(index.stamp_of(Kind::Host, "a.conf"), Some(stamp(7)));
        assert_eq!(index.stamp_of(Kind::Option, "a.conf"), None);

        // A new version of the file has no stamp until it is written.
        index.insert(host("a.conf", "52:54:00:00:00:01,10.0.0.2\n"));
        assert_eq!(index.stamp_of(Kind::Host, "a.conf"), None);
        index.set_stamp(Kind::Host, "a.conf", stamp(8));
        assert_eq!(index.stamp_of(Kind::Host, "a.conf"), Some(stamp(8)));

        // Removed: gone with it; a stamp for a name without an entry is
        // not kept (such a file is read again at every pass).
        index.remove(Kind::Host, "a.conf");
        assert_eq!(index.stamp_of(Kind::Host, "a.conf"), None);
        index.set_stamp(Kind::Host, "a.conf", stamp(9));
        assert_eq!(index.stamp_of(Kind::Host, "a.conf"), None);
    }

    #[test]
    fn a_scan_in_name_order_builds_the_same_index_as_inserts() {
        let lines = [
            ("a.conf", "52:54:00:00:00:01,10.0.0.1,set:x\n"),
            ("b.conf", "52:54:00:00:00:02,set:x\n"),
            ("c.conf", "52:54:00:00:00:01,set:y\n"),
        ];
        let mut inserted = Index::default();
        let mut scanned = Index::default();
        let mut sorted = Vec::new();
        for (i, (name, line)) in lines.iter().enumerate() {
            inserted.insert(host(name, line));
            let entry = host(name, line);
            let digest = Digest::of(&entry.spec());
            scanned.add_sorted(&mut sorted, entry, &digest, stamp(i as u64 + 1));
        }
        scanned.fill(Kind::Host, sorted);
        let names = |ix: &Index| {
            ix.iter(Kind::Host)
                .map(|e| e.text.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&scanned), names(&inserted));
        assert_eq!(scanned.duplicates(), inserted.duplicates());
        assert_eq!(scanned.duplicates().len(), 1, "c.conf clashes with a.conf");
        let mac = Key::Mac(Mac::parse("52:54:00:00:00:01").unwrap());
        assert_eq!(scanned.holder(&mac).map(Name::as_str), Some("a.conf"));
        let tagged = |ix: &Index| {
            let q = ListQuery {
                tag: Some("x".into()),
                limit: 10,
                ..Default::default()
            };
            ix.list(Kind::Host, &q).0.len()
        };
        assert_eq!(tagged(&scanned), 2);
        assert_eq!(tagged(&inserted), 2);
        assert_eq!(scanned.stamp_of(Kind::Host, "c.conf"), Some(stamp(3)));
    }
}
