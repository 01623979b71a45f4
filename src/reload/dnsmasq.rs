//! What the broker knows about dnsmasq versions: one table of rule sets
//! ([`RULE_SETS`]), read by every decision that depends on the version.
//!
//! The version is learned by running the binary with `--version` (the one
//! the broker supervises, or `/proc/PID/exe` of the one it signals), and
//! its patches by `--help` and its command line ([`build_of`]). Each proven
//! version has a row, and so has the one patched build that changes a rule:
//!
//! - **2.90** (Debian bookworm): SIGHUP kills it once a host with a `set:`
//!   tag has done a DHCP exchange (fixed in 2.91), so while such hosts are
//!   loaded the broker never signals it: a supervised one is restarted
//!   instead, an unsupervised one keeps its stale records (the reload fails
//!   and says why). A SIGHUP costs (files) × (names ever seen): its
//!   `inotify.c` is 2.91's.
//! - **2.91** (trixie): SIGHUP is safe. A SIGHUP costs (files) × (names ever
//!   seen) — `set_dynamic_inotify` passes every file of a DHCP directory
//!   through `dyndir_addhosts`, a `strcmp` walk over every name the
//!   directory ever held — so a restart pays off after enough name churn.
//! - **2.93** (forky, sid; what understack runs): SIGHUP is safe. Only
//!   `--hostsdir` keeps a name list; `--dhcp-hostsdir`/`--dhcp-optsdir`
//!   keep none, so a SIGHUP costs about the same per file however many
//!   names came and went, and a restart (which reads the same files, plus
//!   exiting and starting) never pays off.
//!
//! - **2.93 with understack's `--conf-poll` patch** (the row
//!   `2.93+conf-poll`): as 2.93, except the cost. To track modification
//!   times the patch makes `--dhcp-hostsdir` and `--dhcp-optsdir` keep the
//!   list of every file name seen again (never pruned, walked by
//!   `dyndir_addhosts` once per file at each SIGHUP and each poll pass),
//!   whether or not `--conf-poll` is given: so a SIGHUP costs (files) ×
//!   (names ever seen) as on 2.91, and the row carries 2.91's cost facts
//!   (reasoned from the patch, `examples/understack/README.md`; no patched
//!   build is measured here). `--version` says 2.93 all the same, so the
//!   broker tells the build by its options ([`Build::learn`]): the patched
//!   binary's `--help` lists `--conf-poll`, and a command line holding
//!   `--conf-poll` (or `--conf-poll-interval`) proves it too, since stock
//!   dnsmasq refuses an option it does not know ("bad command line
//!   options"). `--help` decides because the name list comes with the
//!   patch, not with the flag; the command line is the fallback when
//!   `--help` cannot be run or read.
//!
//! The shadowing rules (`reload::shadow`) hold on all three: `find_config`,
//! `option_filter`, `dhcp_update_configs` and the `dhcp-host` parser are the
//! same code in 2.90, 2.91 and 2.93, and `tests/shadow_e2e.rs` proves them
//! on each with a DHCP client.
//!
//! A version without a row uses the rules of the newest proven version not
//! newer than it (a version older than 2.90 uses 2.90's, which signal
//! least), and a version newer than every row uses the newest row's; both
//! come with a warning in the log and `/v1/status`. When the version cannot
//! be learned (no `--version` banner, `/proc/PID/exe` unreadable, a reload
//! `command`) the broker uses 2.91's rules and says so: it sends SIGHUP,
//! and a dnsmasq found dead after one is counted, reported, and (when
//! supervised) restarted at once. A `--conf-poll` build of a version whose
//! stock row already counts names (2.90, 2.91) keeps that row; one of a
//! version that borrows 2.93's row (a newer one) gets `2.93+conf-poll`.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// A dnsmasq version as `(major, minor)`, e.g. `(2, 90)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Version {
    /// Parses the first line of `dnsmasq --version`
    /// (`Dnsmasq version 2.90  Copyright …`).
    pub fn parse_banner(text: &str) -> Option<Version> {
        let rest = text.split("version").nth(1)?.trim_start();
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version(major, minor))
    }
}

/// A dnsmasq binary as far as the rules care: its version, and whether it
/// carries understack's `--conf-poll` patch (which `--version` does not
/// show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build {
    /// What `--version` says.
    pub version: Version,
    /// The binary knows `--conf-poll`: its DHCP directories keep the list
    /// of every file name seen, as 2.91's do.
    pub conf_poll: bool,
}

impl Build {
    /// A build without patches the rules know of.
    pub fn stock(version: Version) -> Build {
        Build {
            version,
            conf_poll: false,
        }
    }

    /// The build from the output of `--version` and `--help` (`None`: not
    /// run or not readable) and the command line it runs with (`argv`,
    /// empty when not known). `None` without a version banner.
    pub fn learn(version_text: &str, help_text: Option<&str>, argv: &[String]) -> Option<Build> {
        let version = Version::parse_banner(version_text)?;
        let in_help = help_text.is_some_and(lists_conf_poll);
        let in_argv = argv.iter().skip(1).any(|a| {
            a.split('=')
                .next()
                .is_some_and(|o| o == "--conf-poll" || o == "--conf-poll-interval")
        });
        Some(Build {
            version,
            conf_poll: in_help || in_argv,
        })
    }
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.conf_poll {
            write!(f, "{} (with --conf-poll)", self.version)
        } else {
            write!(f, "{}", self.version)
        }
    }
}

/// Whether dnsmasq's `--help` text lists the option `--conf-poll` (as an
/// option of its own: `--conf-poll-interval` alone, or `--conf-polling`,
/// is not it).
pub fn lists_conf_poll(help: &str) -> bool {
    help.match_indices("--conf-poll").any(|(at, m)| {
        !help[at + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// A patch a row of the table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Patch {
    /// understack's `--conf-poll`.
    ConfPoll,
}

/// What SIGHUP does to a dnsmasq holding `set:` hosts that have leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaggedSighup {
    /// It dies (SIGSEGV or abort, no log line).
    Crashes,
    /// It re-reads the files and carries on.
    Survives,
}

/// How a SIGHUP's stall grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    /// With (files) × (names the directory ever held): churn makes it
    /// grow, and only a restart resets it.
    FilesTimesNamesSeen,
    /// With the files alone: churn costs nothing.
    Files,
}

/// The cost facts of a version, for the cost model (`reload::cost`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostFacts {
    /// How a SIGHUP's stall grows.
    pub growth: Growth,
    /// Seconds per unit (file × name, or file) assumed before any reload
    /// was timed.
    pub prior_per_unit: f64,
    /// Below this many units a stall is mostly fixed costs (waking up,
    /// the lease file) and says nothing about the cost per unit.
    pub min_units: f64,
}

/// One row of the table.
#[derive(Debug, PartialEq)]
pub struct RuleSet {
    /// The version the rules were proven on, and the row's name.
    pub version: Version,
    /// The patched build the row is for (`None`: the stock release). Its
    /// name is then `<version>+<patch>`.
    pub patch: Option<Patch>,
    /// What SIGHUP does once `set:` hosts have leased.
    pub tagged_sighup: TaggedSighup,
    /// What a SIGHUP costs.
    pub cost: CostFacts,
}

impl RuleSet {
    /// The row's name: `2.93`, `2.93+conf-poll`.
    pub fn name(&self) -> String {
        match self.patch {
            None => self.version.to_string(),
            Some(Patch::ConfPoll) => format!("{}+conf-poll", self.version),
        }
    }

    /// Whether a restart instead of a SIGHUP can ever cost less.
    pub fn restart_can_pay_off(&self) -> bool {
        self.cost.growth == Growth::FilesTimesNamesSeen
    }
}

/// The name-list cost, per name walked (`reload::cost`), measured on 2.91
/// (`../shared/DNSMASQ-FACTS.md`): 1.07–1.14 s for a SIGHUP over 10,000
/// Ironic host files with no churn (10,000 × 10,001 / 2 names walked).
const NAMES_COST: CostFacts = CostFacts {
    growth: Growth::FilesTimesNamesSeen,
    prior_per_unit: 2.2e-8,
    min_units: 125_000.0,
};

/// The proven versions, oldest first, then the patched builds.
pub static RULE_SETS: [RuleSet; 4] = [
    RuleSet {
        version: Version(2, 90),
        patch: None,
        tagged_sighup: TaggedSighup::Crashes,
        // inotify.c is 2.91's, byte for byte.
        cost: NAMES_COST,
    },
    RuleSet {
        version: Version(2, 91),
        patch: None,
        tagged_sighup: TaggedSighup::Survives,
        cost: NAMES_COST,
    },
    RuleSet {
        version: Version(2, 93),
        patch: None,
        tagged_sighup: TaggedSighup::Survives,
        // 0.25–0.30 s for a SIGHUP over 10,000 Ironic host files, the same
        // after any amount of name churn.
        cost: CostFacts {
            growth: Growth::Files,
            prior_per_unit: 2.8e-5,
            min_units: 1000.0,
        },
    },
    RuleSet {
        version: Version(2, 93),
        patch: Some(Patch::ConfPoll),
        tagged_sighup: TaggedSighup::Survives,
        // The name list is back: 2.91's facts (reasoned, not measured).
        cost: NAMES_COST,
    },
];

/// The stock rows, oldest first.
fn stock_rows() -> impl DoubleEndedIterator<Item = &'static RuleSet> {
    RULE_SETS.iter().filter(|r| r.patch.is_none())
}

/// How the version in force relates to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// The version has a row.
    Proven,
    /// Newer than every row: the newest row's rules.
    Newer,
    /// Between two rows, or older than every row: the rules of the row
    /// before it (or of the oldest).
    Unproven,
    /// The version could not be learned: 2.91's rules.
    Unknown,
}

/// The rules in force for a dnsmasq.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The row applied.
    pub set: &'static RuleSet,
    /// The version seen, when known.
    pub version: Option<Version>,
    /// How that version relates to the row.
    pub fit: Fit,
    /// The binary carries understack's `--conf-poll` patch.
    pub conf_poll: bool,
}

impl Rules {
    /// The rules for a stock dnsmasq of `version` (`None`: not known).
    pub fn for_version(version: Option<Version>) -> Rules {
        Rules::for_build(version.map(Build::stock))
    }

    /// The rules for a dnsmasq `build` (`None`: not known): the row of its
    /// version (or the one it borrows), or that row's `--conf-poll` row
    /// when the build has the patch and the table has one.
    pub fn for_build(build: Option<Build>) -> Rules {
        let version = build.map(|b| b.version);
        let conf_poll = build.is_some_and(|b| b.conf_poll);
        let newest = stock_rows().next_back().expect("the table has stock rows");
        let oldest = stock_rows().next().expect("the table has stock rows");
        let (set, fit) = match version {
            None => (row(Version(2, 91)), Fit::Unknown),
            Some(v) => match stock_rows().find(|r| r.version == v) {
                Some(r) => (r, Fit::Proven),
                None if v > newest.version => (newest, Fit::Newer),
                None => (
                    stock_rows().rev().find(|r| r.version < v).unwrap_or(oldest),
                    Fit::Unproven,
                ),
            },
        };
        let patched = RULE_SETS
            .iter()
            .find(|r| r.patch == Some(Patch::ConfPoll) && r.version == set.version);
        let set = if conf_poll {
            patched.unwrap_or(set)
        } else {
            set
        };
        Rules {
            set,
            version,
            fit,
            conf_poll,
        }
    }

    /// Whether a SIGHUP would kill this dnsmasq once `set:` hosts leased.
    pub fn crashes_on_tagged_sighup(&self) -> bool {
        self.set.tagged_sighup == TaggedSighup::Crashes
    }

    /// What to tell the operator when the version is not a proven one.
    pub fn warning(&self) -> Option<String> {
        let proven = RULE_SETS
            .iter()
            .map(|r| r.version.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let set = self.set.version;
        match (self.fit, self.version) {
            (Fit::Proven, _) => None,
            (Fit::Unknown, _) => Some(format!(
                "the dnsmasq version is not known, so the broker applies the rules proven on {set}: a reload is sent whenever one is due (dnsmasq 2.90 crashes on SIGHUP once a `set:` host has leased; a dnsmasq found dead after a SIGHUP is reported and, when supervised, restarted at once), and a SIGHUP is assumed to cost (files) × (names seen)"
            )),
            (_, Some(v)) => Some(format!(
                "dnsmasq {v} is not a version the reload rules were proven on ({proven}); the broker applies {set}'s rules. Check its changelog against docs/reload-rules.md, or run the real-dnsmasq suites against it"
            )),
            (_, None) => None,
        }
    }

    /// What to tell the operator about a patched build (the log line when
    /// the rules come into force, and `/v1/status`).
    pub fn note(&self) -> Option<String> {
        if !self.conf_poll {
            return None;
        }
        let v = self
            .version
            .map_or_else(|| "of an unknown version".to_owned(), |v| v.to_string());
        Some(match self.set.patch {
            Some(Patch::ConfPoll) => format!(
                "dnsmasq {v} has understack's --conf-poll patch, which makes --dhcp-hostsdir and --dhcp-optsdir keep every file name ever seen (stock {} keeps none), so a SIGHUP's cost grows with file-name churn as on 2.91: the broker applies 2.91's name-cost facts (reasoned from the patch, not measured) and, when it supervises dnsmasq, may restart it instead of a SIGHUP once that is predicted cheaper",
                self.set.version
            ),
            None => format!(
                "dnsmasq {v} has understack's --conf-poll patch; the rules of {} already count every file name seen",
                self.set.name()
            ),
        })
    }

    /// The status object: the row, how the version fits it, and its facts.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "set": self.set.name(),
            "dnsmasq_version": self.version.map(|v| v.to_string()),
            "conf_poll": self.conf_poll,
            "fit": self.fit,
            "warning": self.warning(),
            "note": self.note(),
            "sighup_with_set_tags": self.set.tagged_sighup,
            "sighup_cost": self.set.cost.growth,
            "restart_can_pay_off": self.set.restart_can_pay_off(),
        })
    }
}

fn row(v: Version) -> &'static RuleSet {
    stock_rows()
        .find(|r| r.version == v)
        .expect("the table has this row")
}

/// The build of `binary`, run with `argv` (its whole command line, binary
/// first; empty when not known): runs `binary --version` and `binary
/// --help` (see [`Build::learn`]). `None` without a version banner.
pub fn build_of(binary: &Path, argv: &[String]) -> Option<Build> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let help = Command::new(binary).arg("--help").output().ok();
    Build::learn(
        &String::from_utf8_lossy(&out.stdout),
        help.as_ref()
            .map(|h| String::from_utf8_lossy(&h.stdout))
            .as_deref(),
        argv,
    )
}

/// The build of a running process: its binary through `/proc/PID/exe`, its
/// command line from `/proc/PID/cmdline`.
pub fn build_of_pid(pid: i32) -> Option<Build> {
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    build_of(Path::new(&format!("/proc/{pid}/exe")), &argv)
}

/// Why dnsmasq, once it has dropped privileges to `nobody` (`-k` and daemon
/// mode do), could not watch or read `dir`, if it could not: it creates the
/// inotify watch and lists the directory after the drop (2.90, 2.91 and
/// 2.93 alike, measured), so the directory needs read and search permission
/// for others and every parent search permission. A dnsmasq running as
/// root, or as a user the directory's group grants, is not affected, so
/// this is a warning.
pub fn unreadable_dir_warning(dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode());
    let why = match mode(dir) {
        Some(m) if m & 0o005 != 0o005 => format!("`{}` has mode {:o}", dir.display(), m & 0o777),
        _ => {
            let parent = dir
                .canonicalize()
                .ok()?
                .ancestors()
                .skip(1)
                .find(|p| mode(p).is_some_and(|m| m & 0o001 == 0))?
                .to_path_buf();
            format!(
                "its parent `{}` is not searchable by others",
                parent.display()
            )
        }
    };
    Some(format!(
        "dnsmasq will not see the files in `{}` if it runs as `nobody` (with -k or as a daemon): {why}; it then logs \"failed to create inotify for …: Permission denied\" and serves none of them. Give others read and search permission (chmod o+rx), or run dnsmasq as a user the directory admits",
        dir.display()
    ))
}

/// The start-up warning for a version that crashes on SIGHUP, naming the fix.
pub fn crash_warning(v: Version, supervised: bool) -> String {
    let action = if supervised {
        "the broker restarts it instead of sending SIGHUP while hosts with `set:` tags are loaded (a restart costs more than a reload)"
    } else {
        "the broker refuses to send SIGHUP while hosts with `set:` tags are loaded, so removed or changed entries stay live until dnsmasq restarts"
    };
    format!("dnsmasq {v} crashes on SIGHUP once a host with a `set:` tag (every Ironic entry) has done a DHCP exchange; {action}. Fix: upgrade dnsmasq to 2.91 or later.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_banners() {
        assert_eq!(
            Version::parse_banner("Dnsmasq version 2.90  Copyright (c) 2000-2024 Simon Kelley\n"),
            Some(Version(2, 90))
        );
        assert_eq!(
            Version::parse_banner("Dnsmasq version 2.91rc3  Copyright"),
            Some(Version(2, 91))
        );
        assert_eq!(Version::parse_banner("nothing here"), None);
    }

    fn rules(v: Option<(u32, u32)>) -> Rules {
        Rules::for_version(v.map(|(a, b)| Version(a, b)))
    }

    #[test]
    fn proven_versions_have_their_own_row() {
        for (v, crashes, growth) in [
            ((2, 90), true, Growth::FilesTimesNamesSeen),
            ((2, 91), false, Growth::FilesTimesNamesSeen),
            ((2, 93), false, Growth::Files),
        ] {
            let r = rules(Some(v));
            assert_eq!((r.fit, r.set.version), (Fit::Proven, Version(v.0, v.1)));
            assert_eq!(r.crashes_on_tagged_sighup(), crashes, "{v:?}");
            assert_eq!(r.set.cost.growth, growth, "{v:?}");
            assert_eq!(r.warning(), None);
        }
        assert!(rules(Some((2, 91))).set.restart_can_pay_off());
        assert!(!rules(Some((2, 93))).set.restart_can_pay_off());
    }

    #[test]
    fn other_versions_borrow_a_row_and_say_so() {
        // Newer than every row: the newest row's rules.
        let r = rules(Some((2, 94)));
        assert_eq!((r.fit, r.set.version), (Fit::Newer, Version(2, 93)));
        let w = r.warning().unwrap();
        assert!(
            w.contains("dnsmasq 2.94") && w.contains("2.93's rules"),
            "{w}"
        );
        assert_eq!(rules(Some((3, 0))).set.version, Version(2, 93));
        // Between two rows: the older neighbour's.
        let r = rules(Some((2, 92)));
        assert_eq!((r.fit, r.set.version), (Fit::Unproven, Version(2, 91)));
        assert!(!r.crashes_on_tagged_sighup());
        // Older than every row: the oldest's (never signal tagged hosts).
        let r = rules(Some((2, 85)));
        assert_eq!((r.fit, r.set.version), (Fit::Unproven, Version(2, 90)));
        assert!(r.crashes_on_tagged_sighup());
        // Unknown: 2.91's, and the warning says what the broker does.
        let r = rules(None);
        assert_eq!((r.fit, r.set.version), (Fit::Unknown, Version(2, 91)));
        assert!(r
            .warning()
            .unwrap()
            .contains("a reload is sent whenever one is due"));
    }

    /// The help text of a dnsmasq 2.93 with understack's patch, as far as
    /// it matters (the patch adds both options; the wording is made up).
    const PATCHED_HELP: &str = "Usage: dnsmasq [options]\n\nValid options are:\n\
        -7, --conf-dir=<path>             Read configuration from all the files in this directory.\n\
            --conf-poll                   Poll the dynamic directories for changes.\n\
            --conf-poll-interval=<secs>   Seconds between polls.\n";
    const STOCK_HELP: &str = "Usage: dnsmasq [options]\n\nValid options are:\n\
        -7, --conf-dir=<path>             Read configuration from all the files in this directory.\n\
            --dhcp-hostsdir=<path>        Read DHCP host specs from a directory.\n";
    const BANNER: &str = "Dnsmasq version 2.93  Copyright (c) 2000-2025 Simon Kelley\n";

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn conf_poll_is_learned_from_help_or_the_command_line() {
        let b = Build::learn(BANNER, Some(PATCHED_HELP), &[]).unwrap();
        assert_eq!(
            b,
            Build {
                version: Version(2, 93),
                conf_poll: true
            }
        );
        assert_eq!(b.to_string(), "2.93 (with --conf-poll)");
        // Stock help, understack's command line without the flag.
        let dnsmasq = argv(&["/usr/sbin/dnsmasq", "--no-daemon"]);
        let b = Build::learn(BANNER, Some(STOCK_HELP), &dnsmasq).unwrap();
        assert_eq!(b, Build::stock(Version(2, 93)));
        assert_eq!(b.to_string(), "2.93");
        // No help text, but the command line has the flag: stock dnsmasq
        // would have refused it.
        for flag in ["--conf-poll", "--conf-poll-interval=2"] {
            let cmd = argv(&["/usr/sbin/dnsmasq", "--no-daemon", flag]);
            assert!(
                Build::learn(BANNER, None, &cmd).unwrap().conf_poll,
                "{flag}"
            );
        }
        // Only as the program's own name, or as a longer option: no.
        let odd = argv(&["--conf-poll", "--conf-polling"]);
        assert!(!Build::learn(BANNER, None, &odd).unwrap().conf_poll);
        assert!(!lists_conf_poll("    --conf-polling   something else\n"));
        assert!(!lists_conf_poll("    --conf-poll-interval=<secs>\n"));
        assert!(lists_conf_poll("    --conf-poll"));
        // No banner, no build.
        assert_eq!(Build::learn("", Some(PATCHED_HELP), &[]), None);
    }

    /// A fake dnsmasq: prints `banner` for `--version`, `help` for
    /// `--help`.
    fn fake_dnsmasq(dir: &Path, banner: &str, help: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("dnsmasq");
        std::fs::write(dir.join("banner"), banner).unwrap();
        std::fs::write(dir.join("help"), help).unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n--version) exec cat '{0}/banner' ;;\n--help) exec cat '{0}/help' ;;\nesac\nexit 1\n",
            dir.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_binary_is_asked_for_its_version_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_dnsmasq(dir.path(), BANNER, PATCHED_HELP);
        let b = build_of(&bin, &[]).unwrap();
        assert_eq!((b.version, b.conf_poll), (Version(2, 93), true));
        let bin = fake_dnsmasq(dir.path(), BANNER, STOCK_HELP);
        assert_eq!(build_of(&bin, &[]), Some(Build::stock(Version(2, 93))));
        let cmd = argv(&[bin.to_str().unwrap(), "--keep-in-foreground", "--conf-poll"]);
        assert!(build_of(&bin, &cmd).unwrap().conf_poll);
        let bin = fake_dnsmasq(dir.path(), "no banner\n", PATCHED_HELP);
        assert_eq!(build_of(&bin, &[]), None);
        assert_eq!(build_of(&dir.path().join("missing"), &[]), None);
    }

    /// The real stock builds are not taken for patched ones. Needs them:
    /// `cargo test --lib -- --ignored`.
    #[test]
    #[ignore = "needs dnsmasq 2.90, 2.91 and 2.93 (scripts/install-test-deps.sh)"]
    fn stock_builds_are_stock() {
        let top = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (bin, minor) in [
            (Path::new("/usr/sbin/dnsmasq").to_path_buf(), 90),
            (top.join("target/dnsmasq-2.91/dnsmasq"), 91),
            (top.join("target/dnsmasq-2.93/dnsmasq"), 93),
        ] {
            let b = build_of(&bin, &[bin.display().to_string()]).unwrap_or_else(|| {
                panic!(
                    "{} is missing or gives no banner: run scripts/install-test-deps.sh",
                    bin.display()
                )
            });
            assert_eq!(b, Build::stock(Version(2, minor)), "{}", bin.display());
        }
    }

    /// understack's build: 2.93's rules but 2.91's name costs, and the
    /// status and the log say why.
    #[test]
    fn a_conf_poll_build_gets_the_name_costs_of_2_91() {
        let build = |minor, conf_poll| {
            Rules::for_build(Some(Build {
                version: Version(2, minor),
                conf_poll,
            }))
        };
        let r = build(93, true);
        assert_eq!(r.set.name(), "2.93+conf-poll");
        assert_eq!(r.set.version, Version(2, 93));
        assert_eq!(r.fit, Fit::Proven);
        assert_eq!(r.set.cost, rules(Some((2, 91))).set.cost);
        assert_eq!(r.set.cost.growth, Growth::FilesTimesNamesSeen);
        assert!(r.set.restart_can_pay_off());
        assert!(!r.crashes_on_tagged_sighup());
        assert_eq!(r.warning(), None);
        let note = r.note().unwrap();
        assert!(
            note.contains("--conf-poll") && note.contains("2.91's name-cost facts"),
            "{note}"
        );
        let s = r.status();
        assert_eq!(s["set"], "2.93+conf-poll");
        assert_eq!(s["dnsmasq_version"], "2.93");
        assert_eq!(s["conf_poll"], true);
        assert_eq!(s["sighup_cost"], "files_times_names_seen");
        assert_eq!(s["restart_can_pay_off"], true);
        assert!(s["note"].is_string());
        // Stock 2.93 is unchanged.
        let r = build(93, false);
        assert_eq!(
            (r.set.name(), r.set.cost.growth),
            ("2.93".into(), Growth::Files)
        );
        assert_eq!(
            (r.note(), r.status()["conf_poll"].clone()),
            (None, false.into())
        );
        // A newer patched build borrows the patched row, with the warning.
        let r = build(94, true);
        assert_eq!((r.set.name(), r.fit), ("2.93+conf-poll".into(), Fit::Newer));
        assert!(r.warning().is_some() && r.note().is_some());
        // 2.91's own row already counts names: kept, and noted.
        let r = build(91, true);
        assert_eq!(r.set.name(), "2.91");
        assert!(r.note().unwrap().contains("already count"));
        // Unknown versions still get 2.91's row, patched or not.
        assert_eq!(Rules::for_build(None).set.name(), "2.91");
    }

    #[test]
    fn directories_nobody_cannot_read_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let set = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        set(root.path(), 0o755).unwrap();
        let dir = root.path().join("hosts");
        std::fs::create_dir(&dir).unwrap();
        set(&dir, 0o755).unwrap();
        assert_eq!(unreadable_dir_warning(&dir), None);
        for m in [0o700, 0o750, 0o711] {
            set(&dir, m).unwrap();
            let w = unreadable_dir_warning(&dir).unwrap();
            assert!(w.contains(&format!("mode {m:o}")), "{w}");
        }
        set(&dir, 0o755).unwrap();
        set(root.path(), 0o750).unwrap();
        let w = unreadable_dir_warning(&dir).unwrap();
        assert!(w.contains("parent") && w.contains("not searchable"), "{w}");
        set(root.path(), 0o755).unwrap();
    }

    #[test]
    fn status_names_the_rule_set() {
        let s = rules(Some((2, 94))).status();
        assert_eq!(s["set"], "2.93");
        assert_eq!(s["dnsmasq_version"], "2.94");
        assert_eq!(s["fit"], "newer");
        assert_eq!(s["sighup_with_set_tags"], "survives");
        assert_eq!(s["sighup_cost"], "files");
        assert_eq!(s["restart_can_pay_off"], false);
        assert!(s["warning"].is_string());
        let s = rules(Some((2, 90))).status();
        assert_eq!(s["sighup_with_set_tags"], "crashes");
        assert_eq!(s["sighup_cost"], "files_times_names_seen");
        assert!(s["warning"].is_null());
    }
}
