//! The broker's own costs at scale (a benchmark, not a timed test). Run by
//! `scripts/bench.sh`; prints one Markdown table.
//!
//! `cargo bench --bench scale -- [--sizes 10000,100000] [--seconds 3]`
//!
//! For each size N: N Ironic host files and N/2 options files are written
//! straight into fresh directories, then the release broker is started on
//! them (`--reload none`, default poll of 1 s) and measured from outside:
//! start-up (spawn → `/readyz` 200, median of three), RSS, idle CPU over 10 s, lookups by MAC
//! and tag over HTTP, sequential replace latency alone and while a
//! "foreign" writer adds a file behind the broker's back every 200 ms
//! (forcing polls to find changes and rescans to run), durable PUT
//! throughput at 1/16/64 clients next to a direct writer (temp file, fsync,
//! rename, directory fsync per entry) on the same filesystem in the same
//! run, RSS after 10,000 writes, and the time a second broker on the same
//! directories takes to serve 100 writes made through the first.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hostsdir-broker");

fn mac(i: u64) -> String {
    let b = i.to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[4], b[5], b[6], b[7])
}

fn v4(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

fn host_line(i: u64, tag: &str) -> String {
    if i.is_multiple_of(2) {
        format!("{},{},set:node-{i},set:{tag}\n", mac(i), v4(i))
    } else {
        format!("{},set:node-{i},set:{tag}\n", mac(i))
    }
}

fn generate(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
    let hosts = dir.join("hosts");
    let opts = dir.join("opts");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::create_dir_all(&opts).unwrap();
    let write = |path: PathBuf, text: String| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    std::thread::scope(|s| {
        for part in 0..2u64 {
            let (hosts, opts) = (&hosts, &opts);
            s.spawn(move || {
                for i in (part..n).step_by(2) {
                    write(
                        hosts.join(format!("ironic-{}.conf", mac(i))),
                        host_line(i, "ironic"),
                    );
                    if i < n / 2 {
                        write(
                            opts.join(format!("ironic-node-{i}.conf")),
                            format!(
                                "tag:node-{i},tag:!ipxe,67,snponly.efi\ntag:node-{i},tag:ipxe,67,http://10.0.0.1:8080/boot.ipxe\n"
                            ),
                        );
                    }
                }
            });
        }
    });
    (hosts, opts)
}

struct Broker {
    child: Child,
    url: String,
    started: Instant,
}

impl Broker {
    fn start(hosts: &Path, opts: &Path) -> Broker {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--reload", "none"])
            .arg("--hosts-dir")
            .arg(hosts)
            .arg("--opts-dir")
            .arg(opts)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the broker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .expect("listening line")
            .to_string();
        Broker {
            child,
            url: format!("http://{addr}"),
            started,
        }
    }

    /// Seconds from spawn until /readyz answers 200.
    fn wait_ready(&self) -> f64 {
        let agent = agent();
        loop {
            if let Ok(r) = agent.get(&format!("{}/readyz", self.url)).call() {
                if r.status() == 200 {
                    return self.started.elapsed().as_secs_f64();
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }

    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn put_host(agent: &ureq::Agent, url: &str, i: u64, tag: &str) -> u16 {
    let body = format!(
        "{{\"macs\":[\"{}\"],\"set_tags\":[\"node-{i}\",\"{tag}\"]}}",
        mac(i)
    );
    agent
        .put(&format!("{url}/v1/hosts/ironic-{}.conf", mac(i)))
        .header("Content-Type", "application/json")
        .send(&body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Sequential replaces of existing entries; latencies in ms.
fn write_latencies(url: &str, n: u64, count: u64, round: &AtomicU64) -> Vec<f64> {
    let agent = agent();
    let r = round.fetch_add(1, Ordering::Relaxed);
    (0..count)
        .map(|k| {
            let i = (k * 7919 + r * 31) % n;
            let t = Instant::now();
            let status = put_host(&agent, url, i, &format!("r{r}"));
            assert!(status == 200 || status == 201, "PUT answered {status}");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// Durable PUTs of new entries by `clients` threads for `secs`: ops/s.
fn broker_throughput(url: &str, clients: u64, secs: f64, next: &AtomicU64) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let status = put_host(&agent, url, i, "tp");
                    assert!(status == 200 || status == 201, "PUT answered {status}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

/// What a naive writer does per entry: temp file, fsync, rename, dir fsync.
fn direct_write(dir: &Path, i: u64) {
    let name = format!("ironic-{}.conf", mac(i));
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .unwrap();
    f.write_all(host_line(i, "tp").as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, dir.join(&name)).unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

fn direct_throughput(dir: &Path, clients: u64, secs: f64, next: &AtomicU64) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    direct_write(dir, next.fetch_add(1, Ordering::Relaxed));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn lookup_ms(url: &str, paths: &[String]) -> (f64, f64) {
    let agent = agent();
    let mut v: Vec<f64> = paths
        .iter()
        .map(|p| {
            let t = Instant::now();
            let r = agent.get(&format!("{url}{p}")).call().unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.into_body().read_to_string();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
}

struct Row {
    label: &'static str,
    values: Vec<String>,
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // target too (with the test harness's flags), where it must do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benches/scale: a benchmark; run `scripts/bench.sh` (or `cargo bench --bench scale`)"
        );
        return;
    }
    let mut sizes = vec![10_000u64, 100_000];
    let mut secs = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|s| s.parse().unwrap())
                    .collect()
            }
            "--seconds" => secs = args.next().unwrap().parse().unwrap(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().unwrap().join("target/bench-scale"));
    let mut rows: Vec<Row> = Vec::new();
    let row = |rows: &mut Vec<Row>, label: &'static str, v: String| match rows
        .iter_mut()
        .find(|r| r.label == label)
    {
        Some(r) => r.values.push(v),
        None => rows.push(Row {
            label,
            values: vec![v],
        }),
    };
    let ticks = nix_ticks();
    for &n in &sizes {
        let dir = base.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        let (hosts, opts) = generate(&dir, n);
        eprintln!(
            "[{n}] generated {} files in {:.1} s",
            n + n / 2,
            t.elapsed().as_secs_f64()
        );
        // Drop the page cache's advantage? No: a restarted broker usually
        // finds the files cached; the numbers are for a warm cache. But
        // the files just generated are flushed first: the kernel writing
        // 150,000 new files back is not the broker's start-up. The median
        // of three starts (the last one stays up for the rows below).
        let _ = Command::new("sync").status();
        let mut readies = Vec::new();
        let broker = loop {
            let broker = Broker::start(&hosts, &opts);
            readies.push(broker.wait_ready());
            if readies.len() == 3 {
                break broker;
            }
        };
        readies.sort_by(f64::total_cmp);
        row(
            &mut rows,
            "start-up to /readyz 200, median of 3 (s)",
            format!("{:.2} ({:.2}–{:.2})", readies[1], readies[0], readies[2]),
        );
        std::thread::sleep(Duration::from_secs(1));
        row(
            &mut rows,
            "RSS at start (MiB)",
            format!("{:.0}", broker.rss_mib()),
        );

        let c0 = broker.cpu_ticks();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(10));
        let cpu = (broker.cpu_ticks() - c0) as f64 / ticks / t.elapsed().as_secs_f64() * 100.0;
        row(&mut rows, "idle CPU, 1 s poll (%)", format!("{cpu:.1}"));

        let macs: Vec<String> = (0..200)
            .map(|k| format!("/v1/hosts?mac={}", mac((k * 7919) % n)))
            .collect();
        let (p50, p99) = lookup_ms(&broker.url, &macs);
        row(
            &mut rows,
            "GET ?mac= p50 / p99 (ms)",
            format!("{p50:.2} / {p99:.2}"),
        );
        let tags: Vec<String> = (0..200)
            .map(|k| format!("/v1/hosts?tag=node-{}", (k * 7919) % n))
            .collect();
        let (p50, p99) = lookup_ms(&broker.url, &tags);
        row(
            &mut rows,
            "GET hosts ?tag= p50 / p99 (ms)",
            format!("{p50:.2} / {p99:.2}"),
        );
        let otags: Vec<String> = (0..200)
            .map(|k| format!("/v1/options?tag=node-{}", (k * 7919) % (n / 2)))
            .collect();
        let (p50, p99) = lookup_ms(&broker.url, &otags);
        row(
            &mut rows,
            "GET options ?tag= p50 / p99 (ms)",
            format!("{p50:.2} / {p99:.2}"),
        );

        let round = AtomicU64::new(0);
        let mut quiet = write_latencies(&broker.url, n, 300, &round);
        row(
            &mut rows,
            "replace p50 / p99, quiet (ms)",
            format!(
                "{:.1} / {:.1}",
                percentile(&mut quiet, 0.5),
                percentile(&mut quiet, 0.99)
            ),
        );
        // A foreign writer adds a file every 200 ms: every poll finds the
        // directory changed and a rescan runs.
        let stop = Arc::new(AtomicBool::new(false));
        let foreign = {
            let (stop, hosts) = (stop.clone(), hosts.clone());
            std::thread::spawn(move || {
                let mut i = 50_000_000u64;
                while !stop.load(Ordering::Relaxed) {
                    std::fs::write(hosts.join(format!("foreign-{i}.conf")), host_line(i, "f"))
                        .unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let mut busy = write_latencies(&broker.url, n, 300, &round);
        stop.store(true, Ordering::Relaxed);
        foreign.join().unwrap();
        row(
            &mut rows,
            "replace p50 / p99, with polls + rescans (ms)",
            format!(
                "{:.1} / {:.1}",
                percentile(&mut busy, 0.5),
                percentile(&mut busy, 0.99)
            ),
        );

        let direct_dir = dir.join("direct");
        std::fs::create_dir_all(&direct_dir).unwrap();
        let next = AtomicU64::new(10_000_000);
        let dnext = AtomicU64::new(10_000_000);
        for clients in [1u64, 16, 64] {
            let b = broker_throughput(&broker.url, clients, secs, &next);
            let d = direct_throughput(&direct_dir, clients, secs, &dnext);
            let label: &'static str = match clients {
                1 => "PUT/s, 1 client: broker / direct (ratio)",
                16 => "PUT/s, 16 clients: broker / direct (ratio)",
                _ => "PUT/s, 64 clients: broker / direct (ratio)",
            };
            row(&mut rows, label, format!("{b:.0} / {d:.0} ({:.2}×)", b / d));
        }
        let written = next.load(Ordering::Relaxed) - 10_000_000 + 600;
        if written < 10_000 {
            broker_throughput(&broker.url, 16, 0.0, &next); // warm
            let agent_next = &next;
            let target = 10_000_000 + 10_000 - 600;
            std::thread::scope(|s| {
                for _ in 0..16 {
                    s.spawn(|| {
                        let agent = agent();
                        loop {
                            let i = agent_next.fetch_add(1, Ordering::Relaxed);
                            if i >= target {
                                break;
                            }
                            put_host(&agent, &broker.url, i, "tp");
                        }
                    });
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        row(
            &mut rows,
            "RSS after 10,000 writes (MiB)",
            format!("{:.0}", broker.rss_mib()),
        );

        // Two brokers on one directory.
        let second = Broker::start(&hosts, &opts);
        second.wait_ready();
        std::thread::sleep(Duration::from_millis(1500));
        let agent1 = agent();
        let first = next.fetch_add(100, Ordering::Relaxed);
        for i in first..first + 100 {
            put_host(&agent1, &broker.url, i, "catch");
        }
        let t = Instant::now();
        let last = format!("{}/v1/hosts/ironic-{}.conf", second.url, mac(first + 99));
        let agent2 = agent();
        loop {
            let r = agent2.get(&last).call().unwrap();
            if r.status() == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        row(
            &mut rows,
            "2nd broker serves 100 writes of the 1st after (ms)",
            format!("{:.0}", t.elapsed().as_secs_f64() * 1e3),
        );
        drop(second);
        drop(broker);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut out = String::new();
    out.push_str("| measure |");
    for n in &sizes {
        out.push_str(&format!(" {n} hosts + {} options |", n / 2));
    }
    out.push_str("\n|---|");
    for _ in &sizes {
        out.push_str("---|");
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} | {} |\n", r.label, r.values.join(" | ")));
    }
    print!("{out}");
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn nix_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
