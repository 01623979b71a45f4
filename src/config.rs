//! The command line (API.md "Command line"): every `serve` flag also reads
//! `HOSTSDIR_BROKER_<FLAG>` from the environment. A field's doc comment is
//! its `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lets many Ironic conductors safely manage one dnsmasq's dhcp-hostsdir and
/// dhcp-optsdir over HTTP.
#[derive(Debug, Parser)]
#[command(name = "hostsdir-broker", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (and, after `--`, supervise a dnsmasq command line).
    Serve(Box<ServeArgs>),
    /// Lint existing directories offline; exit 0 only when clean.
    Check(CheckArgs),
    /// Talk to a running broker.
    Ctl(crate::ctl::CtlArgs),
}

/// How dnsmasq is told to re-read the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReloadMethod {
    /// Never signal (no dnsmasq, or something else reloads it).
    None,
    /// SIGHUP the pid in `--dnsmasq-pidfile`.
    Pidfile,
    /// SIGHUP every process named `--dnsmasq-process` in /proc.
    Process,
    /// Run `--reload-command` with `sh -c`.
    Command,
    /// Run the dnsmasq command line given after `--` as a child.
    Supervise,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// `hostsdir-broker serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the API listens (port 0 picks a free port; the chosen address is
    /// printed on stdout as `listening on http://ADDR`).
    #[arg(long, env = "HOSTSDIR_BROKER_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// The dhcp-hostsdir (created if missing).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_HOSTS_DIR",
        default_value = "./hostsdir-broker-data/hosts"
    )]
    pub hosts_dir: PathBuf,
    /// The dhcp-optsdir (created if missing).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_OPTS_DIR",
        default_value = "./hostsdir-broker-data/opts"
    )]
    pub opts_dir: PathBuf,
    /// dnsmasq's lease file, served by GET /v1/leases.
    #[arg(long, env = "HOSTSDIR_BROKER_LEASE_FILE")]
    pub lease_file: Option<PathBuf>,
    /// How dnsmasq is reloaded [default: none, or supervise when a dnsmasq
    /// command line follows `--`].
    #[arg(long, env = "HOSTSDIR_BROKER_RELOAD", value_enum)]
    pub reload: Option<ReloadMethod>,
    /// dnsmasq's pid file, for `--reload pidfile`.
    #[arg(long, env = "HOSTSDIR_BROKER_DNSMASQ_PIDFILE")]
    pub dnsmasq_pidfile: Option<PathBuf>,
    /// Process name matched against /proc/*/comm, for `--reload process`.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_DNSMASQ_PROCESS",
        default_value = "dnsmasq"
    )]
    pub dnsmasq_process: String,
    /// Shell command run by `sh -c`, for `--reload command`.
    #[arg(long, env = "HOSTSDIR_BROKER_RELOAD_COMMAND")]
    pub reload_command: Option<String>,
    /// A pending reload is sent once no new change arrived for this long.
    #[arg(long, env = "HOSTSDIR_BROKER_RELOAD_QUIET_MS", default_value_t = 200)]
    pub reload_quiet_ms: u64,
    /// ...or at the latest this long after the first change it covers.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_RELOAD_MAX_DELAY_MS",
        default_value_t = 2000
    )]
    pub reload_max_delay_ms: u64,
    /// Which changes need a reload: `shadow` (only what dnsmasq does not
    /// already serve, spaced by the stall budget) or `coalesce` (every
    /// replace and removal, the old policy).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_RELOAD_POLICY",
        value_enum,
        default_value = "shadow"
    )]
    pub reload_policy: crate::reload::Policy,
    /// Reloads are spaced so dnsmasq spends at most this share of the time
    /// re-reading files (answering no DHCP or DNS), in percent; 100 turns
    /// spacing off.
    #[arg(long, env = "HOSTSDIR_BROKER_RELOAD_BUDGET_PERCENT", default_value_t = 5.0, value_parser = parse_percent)]
    pub reload_budget_percent: f64,
    /// A cleanup reload clears the ghosts (records dnsmasq still holds that
    /// no file has) once there are more than this many…
    #[arg(long, env = "HOSTSDIR_BROKER_CLEANUP_GHOSTS", default_value_t = 1000)]
    pub cleanup_ghosts: usize,
    /// …or once the oldest is this old (milliseconds)…
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_CLEANUP_MAX_AGE_MS",
        default_value_t = 1_800_000
    )]
    pub cleanup_max_age_ms: u64,
    /// …after this long without a change (milliseconds; not waited for
    /// beyond twice the ghost threshold).
    #[arg(long, env = "HOSTSDIR_BROKER_CLEANUP_QUIET_MS", default_value_t = 5000)]
    pub cleanup_quiet_ms: u64,
    /// Restart a supervised dnsmasq instead of SIGHUP: `auto` when the cost
    /// model predicts it is cheaper (dnsmasq's SIGHUP cost grows with every
    /// file name it has seen), `never`, or `always`.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_RESTART_INSTEAD_OF_SIGHUP",
        value_enum,
        default_value = "auto"
    )]
    pub restart_instead_of_sighup: crate::reload::RestartMode,
    /// Warn (log, status, metrics) once a SIGHUP costs this many times what
    /// it would with no file-name churn.
    #[arg(long, env = "HOSTSDIR_BROKER_CHURN_WARN_FACTOR", default_value_t = 2.0)]
    pub churn_warn_factor: f64,
    /// Mode of written files, in octal (dnsmasq runs as `nobody`: keep them
    /// world-readable).
    #[arg(long, env = "HOSTSDIR_BROKER_FILE_MODE", default_value = "0644", value_parser = parse_mode)]
    pub file_mode: u32,
    /// File of `<role> <token>` lines (roles `read`, `write`); `#` comments.
    #[arg(long, env = "HOSTSDIR_BROKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Tokens in the file's format (`;` or newlines between entries), from
    /// the environment only: a flag would show them in `ps`.
    #[arg(
        long = "tokens-from-env-only",
        env = "HOSTSDIR_BROKER_TOKENS",
        hide = true,
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub tokens: Option<String>,
    /// Allow a non-loopback `--listen` without tokens.
    #[arg(long, env = "HOSTSDIR_BROKER_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "HOSTSDIR_BROKER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "HOSTSDIR_BROKER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to.
    #[arg(long, env = "HOSTSDIR_BROKER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the directories are checked for changes made elsewhere
    /// (0 turns polling off).
    #[arg(long, env = "HOSTSDIR_BROKER_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Every this many polls, stat every file even when the directories'
    /// mtimes did not move (an in-place rewrite by a legacy writer moves
    /// only the file's); 0: never.
    #[arg(long, env = "HOSTSDIR_BROKER_FULL_PASS_EVERY", default_value_t = 60)]
    pub full_pass_every: u32,
    /// Log line format (to stderr).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HOSTSDIR_BROKER_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Longest a request may take, including `?wait=reload`, in milliseconds.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_REQUEST_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub request_timeout_ms: u64,
    /// Longest a mutation waits for the directory lock before answering 503.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_LOCK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub lock_timeout_ms: u64,
    /// On CephFS with Ceph's default MDS settings, a call on a file another
    /// node just wrote waits for the metadata server's next journal flush
    /// (up to 5 s); the broker asks for the flush when a call has waited
    /// 15 ms (`auto`: when the hosts directory is on CephFS).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_MDS_NUDGE",
        value_enum,
        default_value_t = crate::store::NudgeMode::Auto
    )]
    pub mds_nudge: crate::store::NudgeMode,
    /// A request's head (request line and headers) must arrive within this
    /// many milliseconds of the connection opening or going idle after a
    /// response; otherwise the connection is closed. This is also the
    /// keep-alive idle timeout.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_ms: u64,
    /// Most client connections open at once; further ones wait in the
    /// listen backlog until one closes (open ones keep being served).
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_MAX_CONNECTIONS",
        default_value_t = 512,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_connections: u64,
    /// On SIGTERM, how long in-flight requests may take to finish (in
    /// milliseconds) before every remaining connection is dropped; the
    /// pending reload is sent after that.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub shutdown_timeout_ms: u64,
    /// The dnsmasq command line to supervise (after `--`).
    #[arg(last = true)]
    pub dnsmasq: Vec<String>,
}

impl ServeArgs {
    /// The reload method in force, after defaults.
    pub fn reload_method(&self) -> ReloadMethod {
        self.reload.unwrap_or(if self.dnsmasq.is_empty() {
            ReloadMethod::None
        } else {
            ReloadMethod::Supervise
        })
    }
}

/// `hostsdir-broker check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The dhcp-hostsdir to lint.
    #[arg(long, env = "HOSTSDIR_BROKER_HOSTS_DIR")]
    pub hosts_dir: PathBuf,
    /// The dhcp-optsdir to lint.
    #[arg(long, env = "HOSTSDIR_BROKER_OPTS_DIR")]
    pub opts_dir: Option<PathBuf>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!("`{s}` is not a percentage above 0 and at most 100")),
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal file mode"))?;
    if mode > 0o777 {
        return Err(format!("`{s}` is not a file mode (0000–0777)"));
    }
    if mode & 0o444 != 0o444 {
        tracing::warn!("file mode {s:?} is not world-readable: dnsmasq running as `nobody` will not read the files");
    }
    Ok(mode)
}
