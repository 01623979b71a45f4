//! `hostsdir-broker check`: an offline lint of existing directories, for
//! operators about to put the broker in front of them. It reports what
//! dnsmasq would misread or ignore and what the broker would refuse or list
//! as a problem, using the same grammar and scan as the broker itself.

use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::config::CheckArgs;
use crate::store::{Kind, Problem};

/// Everything wrong with one directory pair.
pub fn findings(hosts: &Path, opts: Option<&Path>) -> Result<Vec<Problem>, String> {
    let mut out = Vec::new();
    for (kind, dir) in [(Kind::Host, Some(hosts)), (Kind::Option, opts)] {
        let Some(dir) = dir else { continue };
        let rd = fs::read_dir(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for item in names {
            let name = item.file_name().to_string_lossy().into_owned();
            let mut add = |reason: String| {
                out.push(Problem {
                    kind,
                    file: name.clone(),
                    reason,
                })
            };
            let path = item.path();
            let Ok(meta) = fs::metadata(&path) else {
                add("cannot stat it (a dangling symlink?)".into());
                continue;
            };
            if meta.is_dir() {
                add("a subdirectory: dnsmasq does not read it".into());
                continue;
            }
            if name.starts_with('.') {
                if crate::store::is_temp_name(&name) || name.to_ascii_lowercase().contains("tmp") {
                    add("a temp file left behind: dnsmasq ignores it (a write that never finished?)".into());
                }
                continue;
            }
            if name.ends_with('~') || (name.starts_with('#') && name.ends_with('#')) {
                add("dnsmasq ignores names ending in `~` or of the form `#…#`".into());
                continue;
            }
        }
    }
    let index = crate::store::scan_readonly(hosts, opts).map_err(|e| e.to_string())?;
    out.extend(index.problems.iter().cloned());
    out.extend(index.duplicates().into_iter().map(|mut p| {
        p.reason = format!("{}: which one dnsmasq uses is arbitrary", p.reason);
        p
    }));
    Ok(out)
}

#[derive(Serialize)]
struct Report<'a> {
    clean: bool,
    problems: &'a [Problem],
}

/// Runs the lint; exit status 0 only when clean, 1 with findings, 2 when the
/// directories cannot be read.
pub fn main(args: CheckArgs) -> i32 {
    let found = match findings(&args.hosts_dir, args.opts_dir.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hostsdir-broker check: {e}");
            return 2;
        }
    };
    if args.json {
        println!(
            "{}",
            json!(Report {
                clean: found.is_empty(),
                problems: &found
            })
        );
    } else {
        for p in &found {
            println!("{} {}: {}", p.kind, p.file, p.reason);
        }
        println!("{} problem(s) found", found.len());
    }
    i32::from(!found.is_empty())
}
