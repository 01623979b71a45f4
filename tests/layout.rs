//! The code's layout: no two modules import each other.
//!
//! Why: "one home per mechanism" (STYLE.md) means a reader opens one file to
//! change one thing; two files that import each other have to be read
//! together (it was so with `store/fsio.rs` and `store/journal.rs`, each
//! parsing the lock file's header). A child module using its parent's
//! types is how Rust modules work and is not counted; sibling and cousin
//! files must depend one way only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["crate", "store", "lock", "file"]`) of a source file.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = vec!["crate".into()];
    parts.extend(rel.iter().map(|p| p.to_string_lossy().into_owned()));
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without `//` comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` / `super::a` / `self::a` path in the code, with the
/// items of `use x::{a, b::c}` groups expanded (one level deep is enough
/// for module resolution).
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let starts = ["crate::", "super::", "self::"];
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if at_word_start {
            if let Some(s) = starts.iter().find(|s| rest.starts_with(**s)) {
                let mut end = s.len();
                let rb = rest.as_bytes();
                while end < rb.len()
                    && (rb[end].is_ascii_alphanumeric()
                        || rb[end] == b'_'
                        || rest[end..].starts_with("::"))
                {
                    end += if rest[end..].starts_with("::") { 2 } else { 1 };
                }
                let base = rest[..end].trim_end_matches("::").to_string();
                if rest[end..].starts_with('{') {
                    for item in top_level_items(&rest[end..]) {
                        let item = item.trim().split([' ', ':', '{']).next().unwrap_or("");
                        if !item.is_empty() && item != "self" {
                            out.push(format!("{base}::{item}"));
                        }
                    }
                }
                out.push(base);
                i += end.max(1);
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The comma-separated items of the `{…}` group `group` starts with, split
/// at its own level only.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 1, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(&group[start..i]);
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// The deepest known module a path names, from the module `current`.
fn resolve(current: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut parts = path.split("::");
    let mut at: Vec<String> = match parts.next()? {
        "crate" => vec!["crate".into()],
        "self" => current.to_vec(),
        "super" => current[..current.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    let mut i = 0;
    while i < rest.len() && rest[i] == "super" {
        at.pop();
        i += 1;
    }
    let mut best = None;
    for p in &rest[i..] {
        at.push((*p).to_string());
        if modules.contains(&at) {
            best = Some(at.clone());
        }
    }
    best
}

#[test]
fn no_two_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&root, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let current = module_of(&root, file);
        let text = code(&std::fs::read_to_string(file).unwrap());
        for path in paths_in(&text) {
            let Some(target) = resolve(&current, &path, &modules) else {
                continue;
            };
            // Itself, or one of its ancestors (a child uses its parent's
            // types: the module tree, not a cycle).
            if target == current || current.starts_with(&target) {
                continue;
            }
            edges.entry(current.clone()).or_default().insert(target);
        }
    }
    let mut both_ways = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            let back = edges.get(to).is_some_and(|t| t.contains(from));
            if back && from < to && !to.starts_with(from) {
                both_ways.push(format!("{} <-> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        both_ways.is_empty(),
        "modules that import each other: {both_ways:#?}"
    );
}

#[test]
fn the_import_scan_finds_paths_and_groups() {
    let found = paths_in(
        "use super::{fsio::{self, X}, lock};\nlet a = crate::store::Kind::Host; // super::doc\n",
    );
    assert!(found.contains(&"super::fsio".to_string()), "{found:?}");
    assert!(found.contains(&"super::lock".to_string()), "{found:?}");
    assert!(
        found.contains(&"crate::store::Kind::Host".to_string()),
        "{found:?}"
    );
    assert_eq!(code("a // super::x"), "a ");
}
