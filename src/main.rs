//! The `contactd` binary: parse the command line and run it.

use clap::Parser;

/// mimalloc instead of the system allocator: the store writer, the sync worker and
/// tantivy's indexing threads allocate and free small buffers for every row, and glibc's
/// malloc took about a seventh of a load's CPU (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    contactd::cli::run(contactd::cli::Cli::parse())
}
