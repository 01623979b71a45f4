//! Serving the API over TLS (rustls), with optional client certificates,
//! and certificates that rotate without a restart.
//!
//! Handshakes run in their own tasks and only finished connections are
//! handed to the HTTP server, so a client that stalls its handshake cannot
//! hold up anyone else's (each handshake also has a 10 s limit).
//!
//! **Rotation.** cert-manager renews a certificate long before it expires,
//! and Kubernetes updates a mounted Secret by writing the new files into a
//! fresh hidden directory and swapping the `..data` symlink the file paths
//! go through: the paths the broker was given stay the same while what they
//! point at changes. So the certificate, key and client CA are read again
//! whenever their bytes change (checked every [`POLL`]: reading three small
//! files is simpler and surer than watching symlinked directories) and on
//! SIGHUP, as the API tokens are. They are read and built as one set; each
//! handshake takes the newest set that loaded, so new connections see the
//! new certificate and open ones keep the one they started with. A set that
//! does not load (unreadable, half-written, a key that does not fit its
//! certificate, a client CA that verifies nothing) leaves the previous one
//! serving and is reported in the log, in `/v1/status` (`tls`) and in the
//! metrics (`tls_reload_failures_total`, `tls_reload_failing`); the serving
//! certificate's expiry is the gauge `tls_certificate_expiry_timestamp_seconds`,
//! for an alert.
//!
//! Like the metrics, the TLS state is process-wide: a process serves one
//! listener, and `/v1/status` reads it with [`status`] rather than through
//! the HTTP state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sync::{LockOrRecover, RwLockOrRecover};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the files are compared with what was last read. Kubernetes
/// itself takes up to a minute (the kubelet's sync period) to update a
/// mounted Secret, so a few seconds more cost nothing.
pub const POLL: Duration = Duration::from_secs(2);

/// How many times a set whose files change while being read is read again
/// before its failure is reported.
const READ_TRIES: usize = 3;

/// The files TLS is configured from (`--tls-cert`, `--tls-key`,
/// `--tls-client-ca`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; `None`: no
    /// client certificates asked for.
    pub client_ca: Option<PathBuf>,
}

/// The bytes of one set of files, read one after the other.
struct FileSet {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl FileSet {
    fn read(files: &TlsFiles) -> Result<FileSet, String> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| format!("cannot read the TLS {what} `{}`: {e}", path.display()))
        };
        Ok(FileSet {
            cert: read("certificate", &files.cert)?,
            key: read("key", &files.key)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|p| read("client CA", p))
                .transpose()?,
        })
    }

    /// Identifies the contents, to tell whether anything changed.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part = part.map_or(&[][..], Vec::as_slice);
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

/// The certificate being served, for status and the expiry metric.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Serving {
    /// The leaf's subject.
    pub subject: String,
    /// The leaf's serial number (hex).
    pub serial: String,
    /// The leaf's notAfter, as the certificate states it.
    pub not_after: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after_unix_s: i64,
    /// SHA-256 of the leaf (DER), hex: what `openssl x509 -fingerprint
    /// -sha256` prints, without the colons.
    pub sha256: String,
    /// When this set was loaded, Unix milliseconds.
    pub loaded_at_unix_ms: u64,
}

/// What `/v1/status` shows under `tls`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsStatus {
    /// `--tls-cert`.
    pub cert_file: PathBuf,
    /// `--tls-key`.
    pub key_file: PathBuf,
    /// `--tls-client-ca`, if given.
    pub client_ca_file: Option<PathBuf>,
    /// The certificate new handshakes get.
    pub serving: Serving,
    /// Sets loaded, the first one at start-up included.
    pub loads: u64,
    /// New sets that could not be used.
    pub failures: u64,
    /// True while the files on disk are not the set being served because
    /// they failed to load.
    pub rejected: bool,
    /// Why the last failed set failed.
    pub last_error: Option<String>,
    /// When it failed, Unix milliseconds.
    pub last_error_at_unix_ms: Option<u64>,
}

/// What was last read, so an unchanged file is neither reloaded nor
/// reported again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Bytes([u8; 32]),
    Unreadable(String),
}

struct State {
    seen: Seen,
    status: TlsStatus,
}

/// TLS settings that follow their files.
pub struct ServerTls {
    files: TlsFiles,
    /// A std lock: only held to clone or replace the `Arc`, never across
    /// an `.await`.
    config: RwLock<Arc<ServerConfig>>,
    /// A std mutex, likewise.
    state: Mutex<State>,
}

/// The process's TLS set-up, for [`status`].
static ACTIVE: Mutex<Option<Weak<ServerTls>>> = Mutex::new(None);

/// The TLS part of `/v1/status`: `None` when the broker serves plain HTTP.
pub fn status() -> Option<TlsStatus> {
    let active = ACTIVE.lock_or_recover().clone()?;
    Some(active.upgrade()?.status())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Builds the server's TLS settings from one set of files; every error
/// names its file.
fn build(files: &TlsFiles, set: &FileSet) -> Result<(Arc<ServerConfig>, Serving), String> {
    let cert_path = files.cert.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&set.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read certificates from `{cert_path}`: {e}"))?;
    let Some(leaf) = certs.first() else {
        return Err(format!("`{cert_path}` holds no certificate"));
    };
    let serving =
        describe(leaf).map_err(|e| format!("the first certificate in `{cert_path}` {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&set.key).map_err(|e| {
        format!(
            "cannot read a private key from `{}`: {e}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let builder = match (&files.client_ca, &set.client_ca) {
        (Some(ca), Some(bytes)) => {
            let ca = ca.display();
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(bytes) {
                let c = c.map_err(|e| format!("cannot read `{ca}`: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("bad CA certificate in `{ca}`: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("cannot use `{ca}` to verify clients: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "the key in `{}` does not fit the certificate in `{cert_path}`: {e}",
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), serving))
}

/// Subject, serial, expiry and fingerprint of a leaf certificate.
fn describe(leaf: &CertificateDer<'_>) -> Result<Serving, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("is not a valid X.509 certificate: {e}"))?;
    let not_after = cert.validity().not_after;
    Ok(Serving {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_after: not_after.to_string(),
        not_after_unix_s: not_after.timestamp(),
        sha256: hex::encode(Sha256::digest(leaf.as_ref())),
        loaded_at_unix_ms: now_ms(),
    })
}

impl ServerTls {
    /// Loads the files at start-up; fails (naming the file) if they do not
    /// make a usable set. Becomes the process's TLS set-up for [`status`].
    pub fn load(files: TlsFiles) -> Result<Arc<ServerTls>, String> {
        let set = FileSet::read(&files)?;
        let (config, serving) = build(&files, &set)?;
        tracing::info!(
            subject = %serving.subject,
            serial = %serving.serial,
            not_after = %serving.not_after,
            "serving TLS with `{}`",
            files.cert.display()
        );
        record_serving(&serving);
        let tls = Arc::new(ServerTls {
            config: RwLock::new(config),
            state: Mutex::new(State {
                seen: Seen::Bytes(set.digest()),
                status: TlsStatus {
                    cert_file: files.cert.clone(),
                    key_file: files.key.clone(),
                    client_ca_file: files.client_ca.clone(),
                    serving,
                    loads: 1,
                    failures: 0,
                    rejected: false,
                    last_error: None,
                    last_error_at_unix_ms: None,
                },
            }),
            files,
        });
        *ACTIVE.lock_or_recover() = Some(Arc::downgrade(&tls));
        Ok(tls)
    }

    /// The settings a new handshake uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.read_or_recover().clone()
    }

    /// A snapshot for `/v1/status`.
    pub fn status(&self) -> TlsStatus {
        self.lock_state().status.clone()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock_or_recover()
    }

    /// Reads the files again and serves them if they changed and make a
    /// usable set; `force` (SIGHUP) loads them even if unchanged. Blocking
    /// (file reads): call it off the async workers.
    pub fn reload(&self, force: bool) {
        for attempt in 1..=READ_TRIES {
            let set = match FileSet::read(&self.files) {
                Ok(set) => set,
                Err(e) => return self.reject(Seen::Unreadable(e.clone()), e, force),
            };
            let digest = set.digest();
            if !force && self.lock_state().seen == Seen::Bytes(digest) {
                return;
            }
            match build(&self.files, &set) {
                Ok((config, serving)) => return self.accept(digest, config, serving),
                Err(e) => {
                    // Files replaced while being read (a copy in progress, a
                    // symlink swapped between the certificate and the key):
                    // read the new set rather than report the mix.
                    let moved = FileSet::read(&self.files).map(|s| s.digest()).ok();
                    if attempt < READ_TRIES && moved != Some(digest) {
                        continue;
                    }
                    return self.reject(Seen::Bytes(digest), e, force);
                }
            }
        }
    }

    fn accept(&self, digest: [u8; 32], config: Arc<ServerConfig>, serving: Serving) {
        *self.config.write_or_recover() = config;
        tracing::info!(
            subject = %serving.subject,
            serial = %serving.serial,
            not_after = %serving.not_after,
            "reloaded the TLS certificate from `{}`",
            self.files.cert.display()
        );
        record_serving(&serving);
        let mut state = self.lock_state();
        state.seen = Seen::Bytes(digest);
        state.status.serving = serving;
        state.status.loads += 1;
        state.status.rejected = false;
    }

    /// Keeps the previous set and reports why the new one is unusable, once
    /// per distinct content (or every time when forced).
    fn reject(&self, seen: Seen, error: String, force: bool) {
        let mut state = self.lock_state();
        if !force && state.seen == seen {
            return;
        }
        tracing::error!(
            serving = %state.status.serving.serial,
            "keeping the previous TLS certificate: {error}"
        );
        let metrics = crate::metrics::get();
        metrics.tls_reload_failures.inc();
        metrics.tls_reload_failing.set(1);
        state.seen = seen;
        state.status.failures += 1;
        state.status.rejected = true;
        state.status.last_error = Some(error);
        state.status.last_error_at_unix_ms = Some(now_ms());
    }

    /// Re-reads the files every [`POLL`] and on SIGHUP, until this set-up
    /// is dropped.
    pub fn spawn_watcher(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        // Installed before returning, so a SIGHUP right after start-up is
        // never the default action (exit).
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP; TLS files are still polled: {e}");
                None
            }
        };
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let force = tokio::select! {
                    _ = hup_recv => true,
                    _ = ticker.tick() => false,
                };
                let Some(tls) = me.upgrade() else { break };
                if force {
                    tracing::info!("SIGHUP: reloading the TLS files");
                }
                let _ = tokio::task::spawn_blocking(move || tls.reload(force)).await;
            }
        });
    }
}

fn record_serving(serving: &Serving) {
    let metrics = crate::metrics::get();
    metrics.tls_certificate_expiry.set(serving.not_after_unix_s);
    metrics.tls_reload_failing.set(0);
}

/// A listener yielding TLS connections whose handshake has completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp`; each handshake uses `tls`'s settings as they are
    /// when the connection arrives.
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, sender) = (TlsAcceptor::from(tls.current()), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
