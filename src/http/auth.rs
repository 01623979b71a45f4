//! Bearer-token authentication: roles `read` and `write` from a token file.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time.
//! Logs name a token by its label `<role>:<first 8 hex of its SHA-256>`,
//! never by its value. The file is re-read when it changes (checked every
//! few seconds) or when the broker gets SIGHUP, so tokens rotate without a
//! restart; a file that fails to parse keeps the previous tokens.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::Actor;
use crate::sync::RwLockOrRecover;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// GET only.
    Read,
    /// Everything.
    Write,
}

#[derive(Debug, Clone)]
struct Token {
    role: Role,
    digest: [u8; 32],
}

impl Token {
    fn label(&self) -> String {
        let role = match self.role {
            Role::Read => "read",
            Role::Write => "write",
        };
        format!("{role}:{}", &hex::encode(self.digest)[..8])
    }
}

/// The tokens in force, re-read from their file.
pub struct Tokens {
    /// The file re-read on change; `None` for tokens from the environment.
    path: Option<PathBuf>,
    tokens: RwLock<Vec<Token>>,
    mtime: RwLock<Option<SystemTime>>,
}

/// Parses a token file: `<role> <token>` per line, `#` comments.
fn parse(text: &str, path: &Path) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "line {} of `{}` is not `<role> <token>`",
                i + 1,
                path.display()
            ));
        };
        let role = match role {
            "read" => Role::Read,
            "write" => Role::Write,
            other => {
                return Err(format!(
                    "line {} of `{}`: role `{other}` is not `read` or `write`",
                    i + 1,
                    path.display()
                ))
            }
        };
        if token.len() < 16 {
            return Err(format!(
                "line {} of `{}`: tokens must be at least 16 characters",
                i + 1,
                path.display()
            ));
        }
        out.push(Token {
            role,
            digest: Sha256::digest(token.as_bytes()).into(),
        });
    }
    if out.is_empty() {
        return Err(format!("`{}` holds no tokens", path.display()));
    }
    Ok(out)
}

/// Parses token-file text as [`Tokens::load`] would and counts the tokens
/// (for the fuzzer and the `check`-style tools; nothing is kept).
#[doc(hidden)]
pub fn parse_token_text(text: &str) -> Result<usize, String> {
    parse(text, Path::new("<text>")).map(|t| t.len())
}

fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Loads the token file; fails if it is unreadable, malformed or empty.
    pub fn load(path: PathBuf) -> Result<Arc<Tokens>, String> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read token file `{}`: {e}", path.display()))?;
        let tokens = parse(&text, &path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Arc::new(Tokens {
            path: Some(path),
            tokens: RwLock::new(tokens),
            mtime: RwLock::new(mtime),
        }))
    }

    /// Tokens given in the environment: the file's format, with `;` also
    /// accepted between entries (environment values are often one line).
    pub fn from_env_text(text: &str) -> Result<Arc<Tokens>, String> {
        let tokens = parse(
            &text.replace(';', "\n"),
            Path::new("$HOSTSDIR_BROKER_TOKENS"),
        )?;
        Ok(Arc::new(Tokens {
            path: None,
            tokens: RwLock::new(tokens),
            mtime: RwLock::new(None),
        }))
    }

    /// Re-reads the file; keeps the old tokens if the new file is bad.
    pub fn reload(&self) {
        let Some(path) = &self.path else { return };
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse(&t, path))
        {
            Ok(t) => {
                tracing::info!(count = t.len(), "reloaded API tokens");
                *self.tokens.write_or_recover() = t;
            }
            Err(e) => tracing::error!("keeping the previous API tokens: {e}"),
        }
        *self.mtime.write_or_recover() = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    }

    /// Re-reads the file whenever its mtime changes or SIGHUP arrives.
    pub fn spawn_reloader(self: &Arc<Self>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = hup_recv => me.reload(),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {
                        let now = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                        if now != *me.mtime.read_or_recover() {
                            me.reload();
                        }
                    }
                }
            }
        });
    }

    fn find(&self, presented: &str) -> Option<Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let tokens = self.tokens.read_or_recover();
        // Compare against every token so timing does not reveal which matched.
        let mut found = None;
        for t in tokens.iter() {
            if digest_eq(&t.digest, &digest) {
                found = Some(t.clone());
            }
        }
        found
    }
}

/// Paths anyone may call (probes and metrics scrapes).
fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/metrics" | "/openapi.json"
    )
}

/// The middleware: 401 without a valid token, 403 when a `read` token asks
/// for a change; otherwise records the caller as the request's [`Actor`].
pub async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = presented.and_then(|p| tokens.find(p)) else {
        let msg = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "this route needs `Authorization: Bearer <token>`"
        };
        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    };
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reading && token.role != Role::Write {
        tracing::warn!(who = %token.label(), method = %req.method(), path = %req.uri().path(), "refused: read-only token");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {} has role `read`; changes need a `write` token",
                token.label()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(Actor(token.label()));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_labels() {
        let t = parse(
            "# comment\nread  aaaaaaaaaaaaaaaa\nwrite bbbbbbbbbbbbbbbb\n",
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].role, Role::Read);
        assert!(t[1].label().starts_with("write:") && t[1].label().len() == 14);
        assert!(parse("admin cccccccccccccccc", Path::new("f"))
            .unwrap_err()
            .contains("admin"));
        assert!(parse("read short", Path::new("f")).is_err());
        assert!(parse("# nothing\n", Path::new("f")).is_err());
    }
}
