//! The `hostsdir-broker` binary: parse the command line, run, map the result
//! to an exit status (2 for bad flags or unusable directories).

use clap::Parser;
use hostsdir_broker::config::{Cli, Command};
use hostsdir_broker::server;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => {
            limit_malloc_arenas();
            server::main(*args)
        }
        Command::Check(args) => hostsdir_broker::check::main(args),
        Command::Ctl(args) => hostsdir_broker::ctl::main(args),
    };
    std::process::exit(code);
}

/// Runs the server with glibc's malloc limited to two arenas, by executing
/// itself again with `MALLOC_ARENA_MAX=2` unless the environment already
/// says how many (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`).
///
/// Why: glibc gives each thread that allocates an arena of its own (up to
/// 8 per core), and the index's entries are made on many threads (the scan's
/// and catch-up's readers, the HTTP workers, the writer). Every arena then
/// keeps freed memory between long-lived entries that it cannot return.
/// Measured by `scripts/bench.sh` at 100,000 hosts + 50,000 options: RSS
/// after 10,000 writes 104 MiB with the default, 83 MiB with two arenas,
/// and no slower. The setting must be in the environment when the process
/// starts (glibc reads it at its first allocation), and the crate forbids
/// the `unsafe` a `mallopt` call would need: hence the `exec`, which keeps
/// the pid, arguments and everything else.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let tuned = std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|t| t.to_string_lossy().contains("arena_max"));
        if tuned || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let err = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env("MALLOC_ARENA_MAX", "2")
            .exec();
        // Only returns on failure: run as we are.
        eprintln!("note: could not re-execute with MALLOC_ARENA_MAX=2 ({err}); running with glibc's default malloc arenas");
    }
}
