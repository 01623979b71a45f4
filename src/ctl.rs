//! `hostsdir-broker ctl`: the command-line client, for operators and scripts.
//!
//! A thin layer over the HTTP API: every subcommand is one request. Output is
//! a short table for people, or the server's JSON with `--json`. Errors print
//! the server's message and exit non-zero (1 for an API error, 2 for a usage
//! or connection problem).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// `hostsdir-broker ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The broker's base URL.
    #[arg(
        long,
        env = "HOSTSDIR_BROKER_URL",
        default_value = "http://127.0.0.1:8787"
    )]
    pub url: String,
    /// Token file (`<role> <token>` lines); the `write` token is used if
    /// present, else the first one.
    #[arg(long, env = "HOSTSDIR_BROKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The client's subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Host entries (the dhcp-hostsdir).
    Hosts {
        /// What to do with them.
        #[command(subcommand)]
        action: EntryAction,
    },
    /// Option entries (the dhcp-optsdir).
    Options {
        /// What to do with them.
        #[command(subcommand)]
        action: EntryAction,
    },
    /// Apply a batch file (`{"ops": [...]}`, or `-` for stdin).
    Batch {
        /// The file.
        file: PathBuf,
        /// Answer only after the reload covering it.
        #[arg(long)]
        wait: bool,
    },
    /// Make the entries named PREFIX… of a kind exactly those in FILE
    /// (`{"items": {name: spec}}`).
    Sync {
        /// `hosts` or `options`.
        kind: String,
        /// The name prefix.
        prefix: String,
        /// The file (`-` for stdin).
        file: PathBuf,
    },
    /// dnsmasq's leases.
    Leases {
        /// Only this MAC.
        #[arg(long)]
        mac: Option<String>,
    },
    /// Schedule a reload of dnsmasq.
    Reload {
        /// Answer only after it was delivered.
        #[arg(long)]
        wait: bool,
    },
    /// The broker's status.
    Status,
}

/// What to do with entries of one kind.
#[derive(Debug, Subcommand)]
pub enum EntryAction {
    /// List entries.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only hosts with this MAC.
        #[arg(long)]
        mac: Option<String>,
        /// Only entries with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Show one entry.
    Get {
        /// The entry name.
        name: String,
    },
    /// Create or replace an entry from a JSON spec or, with --line, from
    /// dnsmasq lines.
    Put {
        /// The entry name.
        name: String,
        /// The spec as JSON (`-` reads stdin).
        #[arg(conflicts_with = "line")]
        spec: Option<String>,
        /// A dnsmasq line instead of a spec (repeat for several option lines).
        #[arg(long)]
        line: Vec<String>,
        /// Only if the current ETag is this.
        #[arg(long)]
        if_match: Option<String>,
        /// Answer only after the reload covering it.
        #[arg(long)]
        wait: bool,
    },
    /// Delete an entry.
    Delete {
        /// The entry name.
        name: String,
        /// Only if the current ETag is this.
        #[arg(long)]
        if_match: Option<String>,
        /// Answer only after the reload covering it.
        #[arg(long)]
        wait: bool,
    },
}

struct Client {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
}

/// A failed call: the message to print and the exit status.
struct Failure(String, i32);

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(u16, Value), Failure> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(e) = if_match {
            let quoted = if e.starts_with('"') {
                e.to_string()
            } else {
                format!("\"{e}\"")
            };
            req = req.header("if-match", quoted);
        }
        let result = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(b.to_string())
                    .map_err(|e| Failure(e.to_string(), 2))?,
            ),
            None => self
                .agent
                .run(req.body(()).map_err(|e| Failure(e.to_string(), 2))?),
        };
        let resp = result
            .map_err(|e| Failure(format!("cannot reach the broker at {}: {e}", self.url), 2))?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            let msg = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let field = value["error"]["field"]
                .as_str()
                .map(|f| format!(" (field {f})"))
                .unwrap_or_default();
            return Err(Failure(format!("error {status}: {msg}{field}"), 1));
        }
        Ok((status, value))
    }
}

fn token_from(path: &std::path::Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure(
            format!("cannot read token file `{}`: {e}", path.display()),
            2,
        )
    })?;
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(char::is_whitespace)
                .map(|(r, t)| (r, t.trim()))
        })
        .collect();
    pairs
        .iter()
        .find(|(r, _)| *r == "write")
        .or(pairs.first())
        .map(|(_, t)| t.to_string())
        .ok_or_else(|| {
            Failure(
                format!(
                    "token file `{}` holds no `<role> <token>` line",
                    path.display()
                ),
                2,
            )
        })
}

fn read_json(arg: &str) -> Result<Value, Failure> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure(format!("cannot read stdin: {e}"), 2))?
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| Failure(format!("cannot read `{path}`: {e}"), 2))?
    } else {
        arg.to_string()
    };
    serde_json::from_str(&text).map_err(|e| Failure(format!("not valid JSON: {e}"), 2))
}

fn read_file_json(path: &std::path::Path) -> Result<Value, Failure> {
    read_json(&if path.as_os_str() == "-" {
        "-".to_string()
    } else {
        format!("@{}", path.display())
    })
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes a query or path component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn wait_q(wait: bool) -> &'static str {
    if wait {
        "?wait=reload"
    } else {
        ""
    }
}

/// A people-readable rendering of an answer.
fn table(v: &Value) -> String {
    if let Some(items) = v["items"].as_array() {
        let mut out: Vec<String> = items
            .iter()
            .map(|i| {
                match (
                    i["name"].as_str(),
                    i["line"].as_str(),
                    i["lines"].as_array(),
                ) {
                    (Some(n), Some(l), _) => format!("{n}\t{l}"),
                    (Some(n), None, Some(ls)) => format!(
                        "{n}\t{}",
                        ls.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ),
                    _ => format!(
                        "{}\t{}\t{}\t{}",
                        i["mac"].as_str().unwrap_or("-"),
                        i["ip"].as_str().unwrap_or("-"),
                        i["hostname"].as_str().unwrap_or("-"),
                        i["expires"]
                    ),
                }
            })
            .collect();
        if let Some(n) = v["next"].as_str() {
            out.push(format!("(more: --after {n})"));
        }
        return out.join("\n");
    }
    if let Some(results) = v["results"].as_array() {
        return results
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}\t{}",
                    r["status"],
                    r["kind"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    if let Some(name) = v["name"].as_str() {
        let body = v["line"].as_str().map(str::to_string).unwrap_or_else(|| {
            v["lines"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        });
        return format!("{name}\tetag {}\n{body}", v["etag"].as_str().unwrap_or(""));
    }
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn run(args: CtlArgs) -> Result<Value, Failure> {
    let token = args.token_file.as_deref().map(token_from).transpose()?;
    let client = Client {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        url: args.url.clone(),
        token,
    };
    let (_, value) = match args.command {
        CtlCommand::Hosts { action } => entry(&client, "hosts", action)?,
        CtlCommand::Options { action } => entry(&client, "options", action)?,
        CtlCommand::Batch { file, wait } => client.call(
            "POST",
            &format!("/v1/batch{}", wait_q(wait)),
            Some(&read_file_json(&file)?),
            None,
        )?,
        CtlCommand::Sync { kind, prefix, file } => {
            let kind = match kind.as_str() {
                "hosts" | "host" => "hosts",
                "options" | "option" => "options",
                other => {
                    return Err(Failure(
                        format!("kind `{other}` is not `hosts` or `options`"),
                        2,
                    ))
                }
            };
            client.call(
                "PUT",
                &format!("/v1/{kind}?prefix={}", encode(&prefix)),
                Some(&read_file_json(&file)?),
                None,
            )?
        }
        CtlCommand::Leases { mac } => client.call(
            "GET",
            &format!("/v1/leases{}", query(&[("mac", &mac)])),
            None,
            None,
        )?,
        CtlCommand::Reload { wait } => {
            client.call("POST", &format!("/v1/reload{}", wait_q(wait)), None, None)?
        }
        CtlCommand::Status => client.call("GET", "/v1/status", None, None)?,
    };
    Ok(value)
}

fn entry(client: &Client, kind: &str, action: EntryAction) -> Result<(u16, Value), Failure> {
    match action {
        EntryAction::List { prefix, mac, tag } => client.call(
            "GET",
            &format!(
                "/v1/{kind}{}",
                query(&[("prefix", &prefix), ("mac", &mac), ("tag", &tag)])
            ),
            None,
            None,
        ),
        EntryAction::Get { name } => {
            client.call("GET", &format!("/v1/{kind}/{}", encode(&name)), None, None)
        }
        EntryAction::Put {
            name,
            spec,
            line,
            if_match,
            wait,
        } => {
            let body = match (spec, line.as_slice()) {
                (Some(s), _) => read_json(&s)?,
                (None, []) => return Err(Failure("give a JSON spec or --line".into(), 2)),
                (None, [one]) if kind == "hosts" => json!({"line": one}),
                (None, lines) if kind == "options" => json!({"lines": lines}),
                (None, _) => return Err(Failure("a host entry takes one --line".into(), 2)),
            };
            client.call(
                "PUT",
                &format!("/v1/{kind}/{}{}", encode(&name), wait_q(wait)),
                Some(&body),
                if_match.as_deref(),
            )
        }
        EntryAction::Delete {
            name,
            if_match,
            wait,
        } => client.call(
            "DELETE",
            &format!("/v1/{kind}/{}{}", encode(&name), wait_q(wait)),
            None,
            if_match.as_deref(),
        ),
    }
}

/// Runs the client; returns the exit status.
pub fn main(args: CtlArgs) -> i32 {
    let json_out = args.json;
    match run(args) {
        Ok(v) => {
            if json_out {
                println!("{v}");
            } else if !v.is_null() {
                println!("{}", table(&v));
            }
            0
        }
        Err(Failure(msg, code)) => {
            eprintln!("hostsdir-broker ctl: {msg}");
            code
        }
    }
}
