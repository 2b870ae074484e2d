//! The `contactd` binary: parse the command line and run it.

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    contactd::cli::run(contactd::cli::Cli::parse())
}
