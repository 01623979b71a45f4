//! Method `command`: run an operator-supplied shell command (for setups
//! where dnsmasq is reloaded some other way, e.g. `kubectl exec … kill -HUP`).

use std::process::Command;

use super::reloader::Reloader;

/// Runs `sh -c CMD` per reload; a non-zero exit is a failed reload.
pub struct CommandReloader {
    /// The command line given to `sh -c`.
    command: String,
}

impl CommandReloader {
    /// A reloader running `command`.
    pub fn new(command: String) -> CommandReloader {
        CommandReloader { command }
    }
}

impl Reloader for CommandReloader {
    fn method(&self) -> &'static str {
        "command"
    }

    fn reload(&self, _risky: bool) -> Result<String, String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .output()
            .map_err(|e| format!("cannot run reload command `{}`: {e}", self.command))?;
        if out.status.success() {
            Ok(format!("ran `{}`", self.command))
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "reload command `{}` failed ({}): {}",
                self.command,
                out.status,
                stderr.trim()
            ))
        }
    }
}
