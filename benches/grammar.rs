//! What the dnsmasq grammar costs per entry (Criterion micro-benchmarks).
//!
//! `cargo bench --bench grammar`
//!
//! The index keeps each file's text and hash, not its parsed spec, and
//! parses the text again whenever a spec is needed (`Entry::spec`: list
//! filters, inserts, removals). That trade of CPU for memory is only sound
//! while a parse stays cheap, so this measures the grammar on the lines
//! Ironic actually writes: parsing (from a line, a file and a JSON body),
//! rendering, the SHA-256 ETag, building a canonical entry, and re-parsing
//! an entry's spec — alone and across a page of 1,000 entries.
//!
//! Under `cargo test --all-targets` Criterion runs each benchmark once.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use hostsdir_broker::entry::{HostSpec, Name, OptionsSpec};
use hostsdir_broker::store::{Entry, Etag, Kind, Spec};
use serde_json::json;

/// The host lines stock Ironic writes: a plain entry, one with a fixed
/// IPv4 address, and a disabled one.
const HOST_LINES: [(&str, &str); 3] = [
    ("tags", "52:54:00:aa:bb:cc,set:node-1,set:ironic\n"),
    (
        "ipv4_tags",
        "52:54:00:aa:bb:cc,10.0.0.5,set:node-1,set:ironic\n",
    ),
    ("ignore", "52:54:00:aa:bb:cc,ignore\n"),
];

/// The options file Ironic writes for a node booting over iPXE.
const OPTIONS_FILE: &str = "tag:node-1,tag:!ipxe,67,snponly.efi\n\
                            tag:node-1,tag:ipxe,67,http://10.0.0.1:8080/boot.ipxe\n";

fn host_spec(line: &str) -> HostSpec {
    HostSpec::parse_line(line).expect("an Ironic host line parses")
}

fn options_spec() -> OptionsSpec {
    OptionsSpec::parse_file(OPTIONS_FILE.as_bytes()).expect("an Ironic options file parses")
}

fn host_lines(c: &mut Criterion) {
    let mut g = c.benchmark_group("host");
    for (id, line) in HOST_LINES {
        g.bench_with_input(BenchmarkId::new("parse_line", id), line, |b, line| {
            b.iter(|| HostSpec::parse_line(black_box(line)))
        });
        g.bench_with_input(BenchmarkId::new("parse_file", id), line, |b, line| {
            b.iter(|| HostSpec::parse_file(black_box(line.as_bytes())))
        });
        let spec = host_spec(line);
        g.bench_with_input(BenchmarkId::new("render", id), &spec, |b, spec| {
            b.iter(|| black_box(spec).render())
        });
    }
    let object = json!({
        "macs": ["52:54:00:aa:bb:cc"],
        "set_tags": ["node-1", "ironic"],
        "ipv4": "10.0.0.5",
    });
    g.bench_function("from_json/object", |b| {
        b.iter(|| HostSpec::from_json(black_box(&object)))
    });
    let line = json!({ "line": HOST_LINES[1].1.trim_end() });
    g.bench_function("from_json/line", |b| {
        b.iter(|| HostSpec::from_json(black_box(&line)))
    });
    g.finish();
}

fn options_files(c: &mut Criterion) {
    let mut g = c.benchmark_group("options");
    g.bench_function("parse_file", |b| {
        b.iter(|| OptionsSpec::parse_file(black_box(OPTIONS_FILE.as_bytes())))
    });
    let spec = options_spec();
    g.bench_function("render", |b| b.iter(|| black_box(&spec).render()));
    let lines = json!({ "lines": OPTIONS_FILE.lines().collect::<Vec<_>>() });
    g.bench_function("from_json/lines", |b| {
        b.iter(|| OptionsSpec::from_json(black_box(&lines)))
    });
    g.finish();
}

/// The two files an Ironic node has, as `(id, kind, bytes)`.
fn files() -> [(&'static str, Kind, &'static str); 2] {
    [
        ("host", Kind::Host, HOST_LINES[1].1),
        ("options", Kind::Option, OPTIONS_FILE),
    ]
}

fn entries(c: &mut Criterion) {
    let mut g = c.benchmark_group("entry");
    for (id, kind, text) in files() {
        let spec = Spec::parse_file(kind, text.as_bytes()).expect("an Ironic file parses");
        let name = Name::parse("ironic-node-1.conf").expect("a valid entry name");
        g.bench_with_input(BenchmarkId::new("etag", id), text, |b, text| {
            b.iter(|| Etag::of(black_box(text.as_bytes())))
        });
        g.bench_with_input(BenchmarkId::new("spec_parse_file", id), text, |b, text| {
            b.iter(|| Spec::parse_file(kind, black_box(text.as_bytes())))
        });
        // Render, hash and parse back (the round-trip check).
        g.bench_with_input(BenchmarkId::new("canonical", id), &spec, |b, spec| {
            b.iter(|| Entry::canonical(name.clone(), black_box(spec).clone()))
        });
        let entry = Entry::canonical(name.clone(), spec);
        g.bench_with_input(BenchmarkId::new("spec", id), &entry, |b, entry| {
            b.iter(|| black_box(entry).spec())
        });
    }
    g.finish();
}

/// `Entry::spec` over a page of 1,000 host entries: what a filtered list
/// pays on top of walking the index.
fn spec_page(c: &mut Criterion) {
    const PAGE: u64 = 1000;
    let page: Vec<Entry> = (0..PAGE)
        .map(|i| {
            let mac = format!("52:54:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
            let line = if i.is_multiple_of(2) {
                format!("{mac},10.0.{}.{},set:node-{i},set:ironic", i >> 8, i & 0xff)
            } else {
                format!("{mac},set:node-{i},set:ironic")
            };
            let name = Name::parse(&format!("ironic-{mac}.conf")).expect("a valid entry name");
            Entry::canonical(name, Spec::Host(host_spec(&line)))
        })
        .collect();
    let mut g = c.benchmark_group("entry");
    g.throughput(Throughput::Elements(PAGE));
    g.bench_function("spec_x1000/host", |b| {
        b.iter(|| {
            black_box(&page)
                .iter()
                .filter(|e| e.spec().has_tag("ironic"))
                .count()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = host_lines, options_files, entries, spec_page
}

fn main() {
    common::main(benches, |c| {
        host_lines(c);
        options_files(c);
        entries(c);
        spec_page(c);
    });
}
