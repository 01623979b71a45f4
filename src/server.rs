//! Wiring: configuration → store, reloader, scheduler, HTTP; start-up
//! checks; graceful shutdown.
//!
//! Shutdown order matters: the HTTP server stops accepting and lets
//! in-flight requests finish (some wait for a reload), the watcher stops,
//! the store's writer finishes what was queued and stops, and only then
//! does the scheduler send the pending reload (which then covers every
//! change the writer made).
//!
//! If the store's writer thread dies (a bug, or a fault it could not
//! survive), the broker shuts down the same way and exits with status 1,
//! so that its supervisor (kubelet) restarts it: answering every write
//! with an error forever would help nobody.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::config::{LogFormat, ReloadMethod, ServeArgs};
use crate::http::{self, AppState, Limits};
use crate::reload::{
    self, CommandReloader, NoReload, ReloadScheduler, Reloader, SchedulerConfig, SignalReloader,
    Target,
};
use crate::store::{Kind, Store, StoreConfig};
use crate::sync::LockOrRecover;

/// Connection limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A request head must be complete this long after the connection
    /// opened or went idle (hyper starts its timer at both), so this is
    /// also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// After `shutdown` resolves, how long in-flight requests may take
    /// before every connection left is dropped.
    pub shutdown_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on an already-bound listener (plain TCP or
/// [`crate::tls::TlsListener`]) until `shutdown` resolves, then lets
/// in-flight requests finish for at most `limits.shutdown_timeout` and
/// drops every connection left (stalled or slow clients cannot hold the
/// process).
///
/// Each connection is HTTP/1.1 with hyper's header read timeout; at most
/// `limits.max_connections` are open at once: at the cap the broker stops
/// accepting (new clients wait in the backlog) but keeps serving the open
/// ones.
pub async fn serve<L>(
    mut listener: L,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnLimits,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        if slots.available_permits() == 0 {
            tracing::warn!(
                max = limits.max_connections,
                "connection cap reached; new connections wait until one closes"
            );
        }
        let (io, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            c = listener.accept() => c,
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(?peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            timeout_ms = limits.shutdown_timeout.as_millis() as u64,
            "waiting for in-flight requests"
        );
    }
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "shutdown timeout: dropping the connections still open"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A start-up failure: a one-line reason, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl StartError {
    /// The process exit status for it: 2 for what stopped the start (bad
    /// flags, unusable directories), 1 for a broker that started and then
    /// failed.
    pub fn exit_code(&self) -> i32 {
        if self.0.starts_with(FAILED) {
            1
        } else {
            2
        }
    }
}

/// How the reason of a failure after start-up begins.
const FAILED: &str = "stopped: ";

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `hostsdir-broker serve`: returns the process exit status.
pub fn main(args: ServeArgs) -> i32 {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hostsdir-broker: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hostsdir-broker: {e}");
            e.exit_code()
        }
    }
}

/// Builds the reloader the flags ask for.
fn reloader(args: &ServeArgs) -> Result<Arc<dyn Reloader>, StartError> {
    let method = args.reload_method();
    if method != ReloadMethod::Supervise && !args.dnsmasq.is_empty() {
        return Err(StartError(format!(
            "a dnsmasq command line after `--` needs `--reload supervise`, not `{method:?}`"
        )));
    }
    Ok(match method {
        ReloadMethod::None => Arc::new(NoReload),
        ReloadMethod::Pidfile => {
            let path = args.dnsmasq_pidfile.clone().ok_or_else(|| {
                StartError("--reload pidfile needs --dnsmasq-pidfile FILE".into())
            })?;
            Arc::new(SignalReloader::new(Target::Pidfile(path)))
        }
        ReloadMethod::Process => Arc::new(SignalReloader::new(Target::Process(
            args.dnsmasq_process.clone(),
        ))),
        ReloadMethod::Command => {
            let cmd = args
                .reload_command
                .clone()
                .ok_or_else(|| StartError("--reload command needs --reload-command CMD".into()))?;
            Arc::new(CommandReloader::new(cmd))
        }
        ReloadMethod::Supervise => {
            if args.dnsmasq.is_empty() {
                return Err(StartError(
                    "--reload supervise needs a dnsmasq command line after `--`".into(),
                ));
            }
            reload::supervise::Supervisor::start(args.dnsmasq.clone()).map_err(StartError)?
        }
    })
}

/// The reload model starts from "dnsmasq holds the files on disk". For a
/// dnsmasq this broker did not start, that is only known to be true when no
/// broker changed the directories since dnsmasq started: otherwise a broker
/// may have been stopped with a reload pending (a delete acknowledged but not
/// yet in effect), so one reload is sent now.
fn startup_reload(store: &Store, scheduler: &ReloadScheduler) {
    let Some(dnsmasq_start) = scheduler.reloader().started_at() else {
        return;
    };
    if store.last_commit().is_some_and(|c| c > dnsmasq_start) {
        tracing::info!(
            "the directories changed since dnsmasq started; one reload brings it up to date"
        );
        scheduler.request(reload::Reason::Startup, store.read(|i| i.any_set_tags()));
    }
}

fn check_directories(args: &ServeArgs) -> Result<(), StartError> {
    for (flag, dir) in [
        ("--hosts-dir", &args.hosts_dir),
        ("--opts-dir", &args.opts_dir),
    ] {
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError(format!("{flag} `{}` is unusable: {e}", dir.display())))?;
        if !dir.is_dir() {
            return Err(StartError(format!(
                "{flag} `{}` is not a directory",
                dir.display()
            )));
        }
        if let Some(w) = reload::dnsmasq::unreadable_dir_warning(dir) {
            tracing::warn!("{w}");
        }
    }
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(&args.hosts_dir, &args.opts_dir) {
        return Err(StartError(format!(
            "--hosts-dir and --opts-dir are both `{}`; dnsmasq would read every file as both kinds",
            args.hosts_dir.display()
        )));
    }
    Ok(())
}

fn check_exposure(args: &ServeArgs) -> Result<(), StartError> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(StartError("--tls-cert and --tls-key go together".into()))
        }
        (None, None) if args.tls_client_ca.is_some() => {
            return Err(StartError(
                "--tls-client-ca needs --tls-cert and --tls-key".into(),
            ))
        }
        _ => {}
    }
    if !args.listen.ip().is_loopback()
        && args.token_file.is_none()
        && args.tokens.is_none()
        && !args.insecure_no_auth
    {
        return Err(StartError(format!(
            "refusing to listen on non-loopback {} without tokens; give --token-file, or --insecure-no-auth to accept anyone who can reach it",
            args.listen
        )));
    }
    Ok(())
}

/// Runs the broker until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    // SIGHUP re-reads the token file and the TLS files (their own tasks
    // listen for it). Listened for here in any case, before anything else:
    // a SIGHUP's default action ends the process, and an operator sending
    // one to re-read a file the broker does not use must not stop it.
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: re-reading the token and TLS files, if any");
                }
            });
        }
        Err(e) => tracing::warn!("cannot listen for SIGHUP (it would end the broker): {e}"),
    }
    check_exposure(&args)?;
    check_directories(&args)?;
    let reloader = reloader(&args)?;
    let request_timeout = Duration::from_millis(args.request_timeout_ms);
    let mut reload_config = SchedulerConfig::new(
        Duration::from_millis(args.reload_quiet_ms),
        Duration::from_millis(args.reload_max_delay_ms),
    );
    reload_config.policy = args.reload_policy;
    reload_config.budget = args.reload_budget_percent / 100.0;
    reload_config.cleanup_ghosts = args.cleanup_ghosts;
    reload_config.cleanup_max_age = Duration::from_millis(args.cleanup_max_age_ms);
    reload_config.cleanup_quiet = Duration::from_millis(args.cleanup_quiet_ms);
    reload_config.restart = args.restart_instead_of_sighup;
    reload_config.churn_warn_factor = args.churn_warn_factor;
    // Answer a waiting request before the request timeout cuts it off.
    reload_config.wait_limit =
        request_timeout.saturating_sub((request_timeout / 4).min(Duration::from_secs(1)));
    let scheduler = ReloadScheduler::with_config(reloader, reload_config);
    let mut config = StoreConfig::new(args.hosts_dir.clone(), args.opts_dir.clone());
    config.file_mode = args.file_mode;
    config.lock_timeout = Duration::from_millis(args.lock_timeout_ms);
    config.nudge = args.mds_nudge;
    // Tests only (see StoreConfig::kill_writer_on).
    config.kill_writer_on = std::env::var("HOSTSDIR_BROKER_TEST_KILL_WRITER_ON").ok();
    let store = Store::open(config, scheduler.clone()).map_err(|e| StartError(e.to_string()))?;
    startup_reload(&store, &scheduler);
    // dnsmasq's list of file names starts from the directories as they are
    // now: exactly so when the broker just started it.
    scheduler.start_ledger(
        [Kind::Host, Kind::Option]
            .map(|k| store.read(|i| i.iter(k).map(|e| e.name.clone()).collect())),
        args.reload_method() == ReloadMethod::Supervise,
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler_task = {
        let mut rx = stop_rx.clone();
        tokio::spawn(scheduler.clone().run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let (watcher_stop, watcher_stop_rx) = tokio::sync::watch::channel(false);
    let watcher = crate::watch::spawn(
        store.clone(),
        Duration::from_millis(args.poll_interval_ms),
        args.full_pass_every,
        watcher_stop_rx,
    );

    let tokens = match &args.token_file {
        Some(path) => {
            let t = http::auth::Tokens::load(path.clone()).map_err(StartError)?;
            t.spawn_reloader();
            Some(t)
        }
        None => match &args.tokens {
            Some(text) => Some(http::auth::Tokens::from_env_text(text).map_err(StartError)?),
            None => None,
        },
    };
    let state = AppState {
        tokens,
        store: store.clone(),
        reloads: scheduler.clone(),
        lease_file: args.lease_file.clone(),
        started: Instant::now(),
    };
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::ServerTls::load(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })
            .map_err(StartError)?;
            tls.spawn_watcher();
            Some(tls)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, hosts = %args.hosts_dir.display(), opts = %args.opts_dir.display(), reload = ?args.reload_method(), "hostsdir-broker started");
    println!("listening on {scheme}://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let app = http::app(state, limits);
    let conn_limits = ConnLimits {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
    };
    let died = Arc::new(std::sync::Mutex::new(None));
    let stopping = {
        let (store, died) = (store.clone(), died.clone());
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                why = store.writer_died() => {
                    tracing::error!("shutting down: {why}");
                    *died.lock_or_recover() = Some(why);
                }
            }
        }
    };
    let result = match tls {
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls)
                .map_err(|e| StartError(e.to_string()))?;
            serve(listener, app, stopping, conn_limits).await
        }
        None => serve(listener, app, stopping, conn_limits).await,
    };
    tracing::info!("HTTP server stopped; draining the writer, then flushing the pending reload");
    let _ = watcher_stop.send(true);
    if let Some(w) = watcher {
        let _ = w.await;
    }
    if !store.shutdown(conn_limits.shutdown_timeout).await {
        tracing::warn!("the store's writer did not finish within the shutdown timeout");
    }
    let _ = stop_tx.send(true);
    let _ = scheduler_task.await;
    scheduler.reloader().shutdown();
    if let Some(why) = died.lock_or_recover().take() {
        return Err(StartError(format!("{FAILED}{why}")));
    }
    result.map_err(|e| StartError(format!("{FAILED}the server failed: {e}")))
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
    }
}
