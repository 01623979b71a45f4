//! The `hostsdir-broker` binary: parse the command line, run, map the result
//! to an exit status (2 for bad flags or unusable directories).

use clap::Parser;
use hostsdir_broker::config::{Cli, Command};
use hostsdir_broker::server;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => server::main(*args),
        Command::Check(args) => hostsdir_broker::check::main(args),
        Command::Ctl(args) => hostsdir_broker::ctl::main(args),
    };
    std::process::exit(code);
}
