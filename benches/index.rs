//! What the in-memory index costs per operation at 10,000 and 100,000 host
//! entries (Criterion micro-benchmarks).
//!
//! `cargo bench --bench index`
//!
//! Every request passes through the index: a PUT inserts (and a replace
//! first removes), a conflict check asks who holds a MAC, a GET reads by
//! name and Ironic's lookups list by MAC or tag. The index keeps each
//! entry's text rather than its spec, so whatever needs the spec (insert,
//! remove, list filters) parses again; this shows which operations pay
//! that per entry and which stay flat as the directory grows.
//!
//! Each index is built once per size and shared by all its benchmarks.
//! Under `cargo test --all-targets` (no `--bench`) each benchmark runs
//! one short pass on a 1,000-entry index, so the test stays quick in a
//! debug build.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use hostsdir_broker::entry::{HostSpec, Mac, Name};
use hostsdir_broker::store::{Entry, Index, Key, Kind, ListQuery, Spec};

/// The MAC of host `i` (distinct for every `i` below 2^32).
fn mac(i: u64) -> String {
    let b = i.to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[4], b[5], b[6], b[7])
}

/// Host `i` as Ironic writes it: tags `node-<i>` and `ironic`, and every
/// other host a fixed IPv4 address.
fn host(i: u64) -> Arc<Entry> {
    let mac = mac(i);
    let line = if i.is_multiple_of(2) {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        format!("{mac},{ip},set:node-{i},set:ironic\n")
    } else {
        format!("{mac},set:node-{i},set:ironic\n")
    };
    let spec = HostSpec::parse_line(&line).expect("an Ironic host line parses");
    let name = Name::parse(&format!("ironic-{mac}.conf")).expect("a valid entry name");
    Arc::new(Entry::canonical(name, Spec::Host(spec)))
}

fn build(n: u64) -> Index {
    let started = Instant::now();
    let mut index = Index::default();
    for i in 0..n {
        index.insert(host(i));
    }
    assert_eq!(index.len(Kind::Host), n as usize);
    assert!(index.duplicates().is_empty());
    eprintln!("index: built {n} host entries in {:.2?}", started.elapsed());
    index
}

fn parse_mac(i: u64) -> Mac {
    Mac::parse(&mac(i)).expect("a valid MAC")
}

fn bench_size(c: &mut Criterion, n: u64) {
    let mut index = build(n);
    let mut g = c.benchmark_group(format!("index/{n}"));

    // A new host (tags `node-<n>`, `ironic`, a fixed IPv4): insert, then
    // remove so the index stays at `n` entries.
    let new = host(n);
    g.bench_function("insert_remove_new", |b| {
        b.iter(|| {
            index.insert(black_box(new.clone()));
            index.remove(Kind::Host, black_box(new.name.as_str()))
        })
    });
    assert_eq!(index.len(Kind::Host), n as usize);
    // Replacing an existing host (a PUT over a node's file): `insert`
    // removes the old entry first.
    let existing = host(n / 2);
    g.bench_function("insert_replace", |b| {
        b.iter(|| index.insert(black_box(existing.clone())))
    });
    assert_eq!(index.len(Kind::Host), n as usize);

    let index = index;
    let probe = n / 2 + 1;
    let key = Key::Mac(parse_mac(probe));
    g.bench_function("holder_mac", |b| {
        b.iter(|| index.holder(black_box(&key)).is_some())
    });
    let by_mac = ListQuery {
        mac: Some(parse_mac(probe)),
        limit: 100,
        ..Default::default()
    };
    g.bench_function("list_mac", |b| {
        b.iter(|| index.list(Kind::Host, black_box(&by_mac)))
    });
    let rare = ListQuery {
        tag: Some("node-123".to_owned()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(index.list(Kind::Host, &rare).0.len(), 1);
    g.bench_function("list_tag_rare", |b| {
        b.iter(|| index.list(Kind::Host, black_box(&rare)))
    });
    let common = ListQuery {
        tag: Some("ironic".to_owned()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(index.list(Kind::Host, &common).0.len(), 100);
    g.bench_function("list_tag_common_100", |b| {
        b.iter(|| index.list(Kind::Host, black_box(&common)))
    });
    let name = host(probe).name.clone();
    g.bench_function("get_name", |b| {
        b.iter(|| index.get(Kind::Host, black_box(name.as_str())).is_some())
    });
    g.finish();
}

fn index(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; without it (`cargo test`), a debug
    // build of a large index would take far longer than the test itself.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[u64] = if full { &[10_000, 100_000] } else { &[1_000] };
    for &n in sizes {
        bench_size(c, n);
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = index
}

fn main() {
    common::main(benches, |c| {
        index(c);
    });
}
