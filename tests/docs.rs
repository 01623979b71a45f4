//! The documentation stays whole. README.md, the pages under `docs/` and
//! the examples' READMEs link to each other: every relative link must point
//! at a file of this repository that exists and, with `#anchor`, at a
//! heading that exists (GitHub's slugs); absolute `http(s)://` links are
//! not fetched (the suite runs without network) but must be well-formed.
//! README.md's first screen shows exactly the two commands a newcomer runs,
//! and the flag table of `docs/configuration.md` names exactly the flags
//! `hostsdir-broker serve --help` has, with the same defaults.
//!
//! Why: the README was split into pages by reader (issue 21). A renamed
//! heading or a moved page would otherwise leave a dead link that nobody
//! notices until a reader follows it, and a flag added to the code would
//! be missing from the page operators read.
//!
//! The Markdown reading here is deliberately small (fenced code blocks,
//! code spans, HTML comments, ATX headings, inline links, reference
//! definitions and `<…>` autolinks): the checks at the bottom prove it
//! finds what it must and ignores code.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The repository's root: where README.md is.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
}

/// Every document whose links are checked: README.md, docs/*.md and every
/// README.md under examples/.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md")];
    let dir = root.join("docs");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "no pages in `{}`", dir.display());
    docs.extend(pages);
    let mut readmes = Vec::new();
    find_readmes(&root.join("examples"), &mut readmes);
    readmes.sort();
    assert!(!readmes.is_empty(), "no README.md under `examples/`");
    docs.extend(readmes);
    docs
}

fn find_readmes(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()));
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Build output and virtualenvs hold other projects' READMEs.
        if name.starts_with('.') || name == "target" || name == "__pycache__" {
            continue;
        }
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("cannot stat `{}`: {e}", entry.path().display()));
        if kind.is_dir() {
            find_readmes(&entry.path(), out);
        } else if name == "README.md" {
            out.push(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------
// Reading Markdown
// ---------------------------------------------------------------------------

/// The text with fenced code blocks and HTML comments blanked out (newlines
/// kept, so line numbers stay right): where headings can be.
fn without_fences(text: &str) -> String {
    let mut out = Vec::new();
    // The fence that is open: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for line in text.split('\n') {
        let t = line.trim_start();
        let c = t.chars().next().unwrap_or(' ');
        let run = if c == '`' || c == '~' {
            t.chars().take_while(|&x| x == c).count()
        } else {
            0
        };
        match fence {
            None if run >= 3 => {
                fence = Some((c, run));
                out.push(String::new());
            }
            Some((fc, flen)) => {
                if c == fc && run >= flen && t[run..].trim().is_empty() {
                    fence = None;
                }
                out.push(String::new());
            }
            None => out.push(line.to_string()),
        }
    }
    blank_between(&out.join("\n"), "<!--", "-->")
}

/// Blanks every `open … close` span (keeping newlines).
fn blank_between(text: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find(close).map_or(after.len(), |e| e + close.len());
        out.extend(
            after[..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The text with code blocks, comments and code spans blanked out: where
/// links can be. A code span closes at the next run of as many backticks
/// within its paragraph; an unmatched run is literal text.
fn without_code(text: &str) -> String {
    let chars: Vec<char> = without_fences(text).chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '\n'
                && chars[j + 1..]
                    .iter()
                    .take_while(|c| **c != '\n')
                    .all(|c| c.is_whitespace())
            {
                break; // a blank line ends the paragraph
            }
            if chars[j] == '`' {
                let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                for c in &mut out[i..j + n] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = j + n;
            }
            None => i += n,
        }
    }
    out.into_iter().collect()
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, every other
/// character that is not a letter, a digit, `-` or `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// A heading's text as GitHub renders it: a link shows its text only.
fn heading_text(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find("](") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = after.find(')').map_or("", |e| &after[e + 1..]);
    }
    out.push_str(rest);
    out.replace('[', "")
}

/// Every anchor a document has: its headings' slugs (a repeated slug gets
/// `-1`, `-2`, … as on GitHub) and `<a id=…>`/`<a name=…>` anchors.
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut count: HashMap<String, usize> = HashMap::new();
    for line in without_fences(text).lines() {
        let t = line.trim_start();
        let hashes = t.chars().take_while(|&c| c == '#').count();
        let heading = line.len() - t.len() <= 3
            && (1..=6).contains(&hashes)
            && (t.len() == hashes || t[hashes..].starts_with([' ', '\t']));
        if heading {
            let mut title = t[hashes..].trim();
            // An optional closing sequence of `#`s, after a space.
            let closed = title.trim_end_matches('#');
            if closed.len() < title.len() && (closed.is_empty() || closed.ends_with([' ', '\t'])) {
                title = closed.trim_end();
            }
            let base = slug(&heading_text(title));
            let n = count.entry(base.clone()).or_insert(0);
            found.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find("<a ") {
                let tag = &rest[at..rest[at..].find('>').map_or(rest.len(), |e| at + e)];
                if let Some(v) = tag.find(attr) {
                    let value = &tag[v + attr.len()..];
                    if let Some(end) = value.find('"') {
                        found.insert(value[..end].to_string());
                    }
                }
                rest = &rest[at + 3..];
            }
        }
    }
    found
}

/// A link found in a document: its line (1-based) and destination.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    dest: String,
}

/// Every link destination outside code: `[text](dest)`, `![alt](dest)`,
/// `[label]: dest` and `<scheme://…>`.
fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (i, line) in without_code(text).lines().enumerate() {
        let line_no = i + 1;
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let (dest, used) = destination(&rest[at + 2..]);
            if !dest.is_empty() {
                found.push(Link {
                    line: line_no,
                    dest,
                });
            }
            rest = &rest[at + 2 + used..];
        }
        let t = line.trim_start();
        if line.len() - t.len() <= 3 && t.starts_with('[') && !t.starts_with("[^") {
            // `[label]: dest`: the label's closing bracket, then a colon.
            if let Some(end) = t.find(']').filter(|&e| t[e + 1..].starts_with(':')) {
                if let Some(dest) = t[end + 2..].split_whitespace().next() {
                    let dest = dest.trim_start_matches('<').trim_end_matches('>');
                    found.push(Link {
                        line: line_no,
                        dest: dest.to_string(),
                    });
                }
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find('<') {
            let after = &rest[at + 1..];
            match after.find('>') {
                Some(end) if after.starts_with("http://") || after.starts_with("https://") => {
                    found.push(Link {
                        line: line_no,
                        dest: after[..end].to_string(),
                    });
                    rest = &after[end + 1..];
                }
                _ => rest = after,
            }
        }
    }
    found
}

/// The destination of an inline link, from just after its `(`: `<…>` or up
/// to the first space or unbalanced `)` (a title after a space is
/// dropped). Returns it and the characters it used.
fn destination(s: &str) -> (String, usize) {
    let s_trim = s.trim_start();
    let skipped = s.len() - s_trim.len();
    if let Some(inner) = s_trim.strip_prefix('<') {
        let end = inner.find('>').unwrap_or(inner.len());
        return (inner[..end].to_string(), skipped + 1 + end);
    }
    let mut depth = 0usize;
    for (i, c) in s_trim.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return (s_trim[..i].to_string(), skipped + i),
            ')' => depth -= 1,
            c if c.is_whitespace() => return (s_trim[..i].to_string(), skipped + i),
            _ => {}
        }
    }
    (s_trim.to_string(), s.len())
}

// ---------------------------------------------------------------------------
// Checking links
// ---------------------------------------------------------------------------

/// A path with `.` and `..` resolved without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why an absolute link is not well-formed, if it is not: `http(s)://`, a
/// host of letters, digits, `-` and `.` (or `[IPv6]`), an optional port, and
/// no character a URL may not hold unescaped.
fn url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(*c))
    {
        return Some(format!("the URL holds {c:?}, which must be escaped"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Some("the URL holds credentials".into());
    }
    // The host is None for a bracketed IPv6 address (checked here).
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, tail)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                (None, tail.strip_prefix(':'))
            }
            _ => return Some(format!("`{authority}` is not a bracketed IPv6 address")),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(authority), None),
        },
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Some(format!("`{p}` is not a port"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    match host {
        Some(host) if !host.split('.').all(label_ok) => {
            Some(format!("`{host}` is not a host name"))
        }
        _ => None,
    }
}

/// What is wrong with one link of `doc`, if anything. `cache` holds the
/// anchors of documents already read.
fn link_problem(
    root: &Path,
    doc: &Path,
    text: &str,
    dest: &str,
    cache: &mut HashMap<PathBuf, HashSet<String>>,
) -> Option<String> {
    if dest.starts_with("http://") || dest.starts_with("https://") {
        return url_problem(dest);
    }
    if let Some(addr) = dest.strip_prefix("mailto:") {
        return (!addr.contains('@')).then(|| "not a mail address".into());
    }
    let scheme = dest.split(['/', '#', '?']).next().unwrap_or("");
    if scheme.contains(':') {
        return Some("a scheme other than http, https or mailto".into());
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        doc.to_path_buf()
    } else if path.starts_with('/') {
        return Some("an absolute path (GitHub resolves it against the site, not the repository): write it relative to this file".into());
    } else {
        let dir = doc.parent().unwrap_or(root);
        normalize(&dir.join(path))
    };
    if !target.starts_with(root) {
        return Some(
            "it leaves the repository (it would break in any other checkout and on GitHub)".into(),
        );
    }
    if !target.exists() {
        return Some(format!(
            "`{}` does not exist",
            target.strip_prefix(root).unwrap_or(&target).display()
        ));
    }
    let anchor = anchor?;
    let shown = target
        .strip_prefix(root)
        .unwrap_or(&target)
        .display()
        .to_string();
    if target.extension().is_none_or(|x| x != "md") {
        return Some(format!(
            "an anchor into `{shown}`, which is not a Markdown page"
        ));
    }
    let known = cache.entry(target.clone()).or_insert_with(|| {
        if target == doc {
            anchors(text)
        } else {
            anchors(&read(&target))
        }
    });
    (!known.contains(anchor))
        .then(|| format!("`{shown}` has no heading whose anchor is `#{anchor}`"))
}

/// Every broken link of one document, as `path:line: `dest`: why`, and how
/// many links it has.
fn check_document(
    root: &Path,
    doc: &Path,
    cache: &mut HashMap<PathBuf, HashSet<String>>,
) -> (Vec<String>, usize) {
    let text = read(doc);
    let found = links(&text);
    let shown = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
    let problems = found
        .iter()
        .filter_map(|l| {
            link_problem(root, doc, &text, &l.dest, cache)
                .map(|why| format!("{shown}:{}: `{}`: {why}", l.line, l.dest))
        })
        .collect();
    (problems, found.len())
}

#[test]
fn every_link_in_the_documentation_resolves() {
    let root = root();
    let mut cache = HashMap::new();
    let mut problems = Vec::new();
    let mut total = 0;
    let docs = documents(&root);
    for doc in &docs {
        let (p, n) = check_document(&root, doc, &mut cache);
        problems.extend(p);
        total += n;
    }
    assert!(
        problems.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The pages link to each other: far fewer links means the reading broke.
    assert!(
        total >= 100,
        "only {total} links found in {} documents",
        docs.len()
    );
    println!("{total} links in {} documents, all resolve", docs.len());
}

/// Every page under docs/ says who it is for and links back to the index,
/// and the index links every page.
#[test]
fn every_page_says_who_it_is_for_and_is_in_the_index() {
    let root = root();
    let index = read(&root.join("docs/README.md"));
    let listed: HashSet<String> = links(&index).into_iter().map(|l| l.dest).collect();
    let mut problems = Vec::new();
    for doc in documents(&root) {
        let Ok(rel) = doc.strip_prefix(root.join("docs")) else {
            continue;
        };
        let name = rel.display().to_string();
        let text = read(&doc);
        let opening: Vec<&str> = text.lines().take(12).collect();
        // The who-line: an italic sentence right under the title.
        if !opening.iter().any(|l| l.starts_with("*For ")) {
            problems.push(format!(
                "docs/{name}: no `*For …*` line under its title says who it is for"
            ));
        }
        if name == "README.md" {
            continue;
        }
        let opening = opening.join("\n");
        if !links(&opening).iter().any(|l| l.dest == "README.md") {
            problems.push(format!(
                "docs/{name}: its opening does not link back to the index (README.md)"
            ));
        }
        if !listed
            .iter()
            .any(|d| d == &name || d.starts_with(&format!("{name}#")))
        {
            problems.push(format!(
                "docs/{name}: not linked from the index, docs/README.md"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// README.md's first screen
// ---------------------------------------------------------------------------

/// How many lines after the title a newcomer sees first.
const FIRST_SCREEN: usize = 25;

/// Words that start a command a reader would type.
const RUNNABLE: &[&str] = &[
    "cargo",
    "curl",
    "sudo",
    "hostsdir-broker",
    "apt-get",
    "apt",
    "pip",
    "kubectl",
    "docker",
    "podman",
    "make",
    "sh",
    "bash",
];

fn is_command(s: &str) -> bool {
    let first = s.split_whitespace().next().unwrap_or("");
    first.starts_with("scripts/")
        || first.starts_with("./")
        || (s.contains(' ') && RUNNABLE.contains(&first))
}

/// The commands the first screen shows: each line of a code block (not a
/// comment, not a continuation), and each code span that reads as a
/// command.
fn first_screen_commands(readme: &str) -> Vec<String> {
    let lines: Vec<&str> = readme.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("# ")),
        "README.md must open with its title"
    );
    let screen = &lines[1..lines.len().min(1 + FIRST_SCREEN)];
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut continued = false;
    for line in screen {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let code = t.split(" #").next().unwrap_or("").trim();
            if !code.is_empty() && !code.starts_with('#') {
                if !continued {
                    commands.push(code.to_string());
                }
                continued = code.ends_with('\\');
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && is_command(span) {
                commands.push(span.to_string());
            }
        }
    }
    commands
}

#[test]
fn readme_first_screen_shows_exactly_the_two_commands() {
    let root = root();
    let commands = first_screen_commands(&read(&root.join("README.md")));
    assert_eq!(
        commands,
        ["scripts/run-local.sh", "scripts/test-all.sh"],
        "README.md's first {FIRST_SCREEN} lines after the title must show exactly these two commands"
    );
    for script in &commands {
        let path = root.join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
                .permissions(),
        );
        assert!(mode & 0o111 != 0, "`{}` is not executable", path.display());
    }
}

// ---------------------------------------------------------------------------
// docs/configuration.md against `serve --help`
// ---------------------------------------------------------------------------

/// From `serve --help`: each flag's name, its default (when clap prints one
/// on a line of its own) and its environment variable.
fn help_flags() -> Vec<(String, Option<String>, Option<String>)> {
    let bin = env!("CARGO_BIN_EXE_hostsdir-broker");
    let out = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{bin} serve --help`: {e}"));
    assert!(
        out.status.success(),
        "`serve --help` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8(out.stdout).expect("--help is UTF-8");
    let mut flags: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for line in help.lines() {
        let t = line.trim();
        if let Some(rest) = t
            .strip_prefix("--")
            .filter(|_| line.starts_with("      --"))
        {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            flags.push((name, None, None));
        } else if let Some(last) = flags.last_mut() {
            if let Some(v) = t
                .strip_prefix("[default: ")
                .and_then(|v| v.strip_suffix(']'))
            {
                last.1 = Some(v.to_string());
            } else if let Some(v) = t.strip_prefix("[env: ").and_then(|v| v.strip_suffix("=]")) {
                last.2 = Some(v.to_string());
            }
        }
    }
    flags.retain(|(name, ..)| name != "help");
    assert!(
        flags.len() >= 20,
        "only {} flags read from `serve --help`",
        flags.len()
    );
    flags
}

/// From docs/configuration.md's "Flags" table: each `--flag` of the first
/// column, with the row's last cell (its default).
fn documented_flags(page: &str) -> Vec<(String, String)> {
    let section = page
        .split("\n## Flags\n")
        .nth(1)
        .expect("docs/configuration.md has a `## Flags` section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    let mut flags = Vec::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else {
            continue;
        };
        for (i, span) in first.split('`').enumerate() {
            if let Some(rest) = span.strip_prefix("--").filter(|_| i % 2 == 1) {
                let name = rest.split([' ', '=']).next().unwrap_or("");
                flags.push((name.to_string(), last.trim().to_string()));
            }
        }
    }
    flags
}

#[test]
fn configuration_page_lists_every_serve_flag_with_its_default() {
    let page = read(&root().join("docs/configuration.md"));
    let documented = documented_flags(&page);
    let help = help_flags();
    let in_help: BTreeSet<&str> = help.iter().map(|(n, ..)| n.as_str()).collect();
    let in_docs: BTreeSet<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
    let mut problems = Vec::new();
    for missing in in_help.difference(&in_docs) {
        problems.push(format!(
            "--{missing} is in `serve --help` but not in docs/configuration.md's table"
        ));
    }
    for extra in in_docs.difference(&in_help) {
        problems.push(format!(
            "--{extra} is in docs/configuration.md's table but not in `serve --help`"
        ));
    }
    for (name, default, env) in &help {
        if let (Some(default), Some((_, cell))) =
            (default, documented.iter().find(|(n, _)| n == name))
        {
            if !cell.contains(&format!("`{default}`")) {
                problems.push(format!("--{name}: `serve --help` says the default is `{default}`, the page says {cell}"));
            }
        }
        let expected = format!("HOSTSDIR_BROKER_{}", name.to_uppercase().replace('-', "_"));
        if env.as_deref() != Some(expected.as_str()) {
            problems.push(format!(
                "--{name}: the page says it reads {expected}, `serve --help` says {env:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The checker itself finds what it must
// ---------------------------------------------------------------------------

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Running on CephFS"), "running-on-cephfs");
    assert_eq!(
        slug("Security: read this first"),
        "security-read-this-first"
    );
    assert_eq!(
        slug("dnsmasq must be 2.91 or later"),
        "dnsmasq-must-be-291-or-later"
    );
    assert_eq!(
        slug("`--conf-poll` and the broker's reload rules"),
        "--conf-poll-and-the-brokers-reload-rules"
    );
    assert_eq!(
        slug("Legacy writers (stock Ironic conductors not migrated yet)"),
        "legacy-writers-stock-ironic-conductors-not-migrated-yet"
    );
    assert_eq!(
        slug("API extensions beyond API.md"),
        "api-extensions-beyond-apimd"
    );
    assert_eq!(slug("snake_case × 2 → kept"), "snake_case--2--kept");
    let text = "# A\n## Same\n```\n## Not a heading\n```\n## Same\n### [Link](x.md) text ##\n<a id=\"old-name\"></a>\n";
    let found = anchors(text);
    for a in ["a", "same", "same-1", "link-text", "old-name"] {
        assert!(found.contains(a), "{a} missing from {found:?}");
    }
    assert!(
        !found.contains("not-a-heading"),
        "a heading in a code block: {found:?}"
    );
}

#[test]
fn links_are_read_outside_code_only() {
    let text = "See [a](a.md#x) and ![i](img.png \"t\").\n\
                `[code](no.md)` and\n\
                ```sh\n[block](no2.md)\n```\n\
                <!-- [comment](no3.md) -->\n\
                [ref]: ref.md\n\
                <https://example.org/x> and [p](b_(c).md)\n";
    let found = links(text);
    let found: Vec<(usize, &str)> = found.iter().map(|l| (l.line, l.dest.as_str())).collect();
    assert_eq!(
        found,
        [
            (1, "a.md#x"),
            (1, "img.png"),
            (7, "ref.md"),
            (8, "b_(c).md"),
            (8, "https://example.org/x")
        ]
    );
}

#[test]
fn broken_links_are_named() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(
        root.join("docs/other.md"),
        "# Other page\n## Real heading\n",
    )
    .unwrap();
    let page = root.join("docs/page.md");
    std::fs::write(
        &page,
        "# Page\n\
         [ok](other.md#real-heading) [ok](#page) [ok](../docs/) [ok](https://github.com/x/y#z) [ok](http://[::1]:8787/v1)\n\
         [missing](gone.md)\n\
         [bad anchor](other.md#no-such-heading)\n\
         [self](#nowhere)\n\
         [outside](../../etc/passwd)\n\
         [absolute](/docs/other.md)\n\
         [url](https://exa_mple.org) [url](http://-bad-.org) [url](https://h:99999/)\n\
         [scheme](ftp://example.org)\n\
         ```\n[in code](gone-too.md)\n```\n",
    )
    .unwrap();
    let (problems, total) = check_document(root, &page, &mut HashMap::new());
    assert_eq!(total, 14, "{problems:#?}");
    let expect = [
        "docs/page.md:3: `gone.md`: `docs/gone.md` does not exist",
        "docs/page.md:4: `other.md#no-such-heading`: `docs/other.md` has no heading whose anchor is `#no-such-heading`",
        "docs/page.md:5: `#nowhere`: `docs/page.md` has no heading whose anchor is `#nowhere`",
        "docs/page.md:6: `../../etc/passwd`: it leaves the repository",
        "docs/page.md:7: `/docs/other.md`: an absolute path",
        "docs/page.md:8: `https://exa_mple.org`: `exa_mple.org` is not a host name",
        "docs/page.md:8: `http://-bad-.org`: `-bad-.org` is not a host name",
        "docs/page.md:8: `https://h:99999/`: `99999` is not a port",
        "docs/page.md:9: `ftp://example.org`: a scheme other than http, https or mailto",
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(expect) {
        assert!(got.starts_with(want), "got {got}\nwant {want}…");
    }
}

#[test]
fn a_third_command_on_the_first_screen_is_seen() {
    let readme = "# Title\n\nIntro.\n\n```sh\nscripts/run-local.sh   # run\nscripts/test-all.sh    # test\n  # more comment\n```\n\
                  Also `cargo test --lib` and `apt-get`, `test-all.sh`.\n";
    assert_eq!(
        first_screen_commands(readme),
        [
            "scripts/run-local.sh",
            "scripts/test-all.sh",
            "cargo test --lib"
        ]
    );
    let continued = "# T\n```\ncurl -s \\\n  http://x\nscripts/a.sh\n```\n";
    assert_eq!(
        first_screen_commands(continued),
        ["curl -s \\", "scripts/a.sh"]
    );
}
