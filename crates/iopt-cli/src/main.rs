//! The `iopt` command-line tool.
//!
//! - `iopt info --format F [options]` builds an empty table of one format and prints
//!   what a driver needs to know about it: levels, page sizes, aperture, output address
//!   width, root address and the hardware configuration words.
//! - `iopt demo` (and `iopt` with no arguments) runs a short seeded workload over every
//!   format, checks every step against a model, and prints a summary table.
//! - `iopt bench [--format F] [--workload W] [--size S] [--json | --markdown] [--plot
//!   FILE.svg]` times the benchmark workloads for iopt's formats and, in the same run,
//!   for the peer crates (aarch64-paging, x86_64) and a plain-fill baseline.

mod bench;
mod demo;
mod formats;
mod info;
mod model;
mod plot;
mod rng;
mod units;

use std::fmt;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::formats::{BuildError, FormatName, FormatOptions};

/// IOMMU page tables: inspect a format's configuration, or run the demonstration.
///
/// With no command, runs the demonstration (`iopt demo`).
#[derive(Debug, Parser)]
#[command(name = "iopt", version)]
struct Cli {
    /// What to do (default: `demo`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the geometry and hardware configuration words of a table format.
    Info(InfoArgs),
    /// Run a seeded map/unmap workload over every format, checked against a model.
    Demo(DemoArgs),
    /// Time the benchmark workloads against the peer crates (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

/// Arguments of `iopt info`.
#[derive(Debug, Args)]
struct InfoArgs {
    /// The table format.
    #[arg(long, value_enum)]
    format: FormatName,
    #[command(flatten)]
    options: FormatOptions,
}

/// Arguments of `iopt demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Seed of the pseudo-random workload.
    #[arg(long, default_value_t = demo::DEFAULT_SEED)]
    seed: u64,
    /// Operations (maps, unmaps, overlap attempts) per table.
    #[arg(long, default_value_t = demo::DEFAULT_OPS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ops: u32,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            seed: demo::DEFAULT_SEED,
            ops: demo::DEFAULT_OPS,
        }
    }
}

/// Why the tool failed; each kind has its own exit status.
#[derive(Debug)]
enum AppError {
    /// The command line asked for something that does not make sense (exit status 2,
    /// like clap's own usage errors).
    Usage(String),
    /// The library refused the configuration (exit status 1).
    Config(iopt::Error),
    /// A demonstration check failed (exit status 1).
    Check(demo::CheckFailed),
    /// A file could not be written (exit status 1).
    Io(std::io::Error),
}

impl AppError {
    fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Usage(_) => ExitCode::from(2),
            AppError::Config(_) | AppError::Check(_) | AppError::Io(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Usage(msg) => f.write_str(msg),
            AppError::Config(e) => write!(f, "{e}"),
            AppError::Check(e) => write!(f, "demo check failed: {e}"),
            AppError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<BuildError> for AppError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::NotApplicable { option, format } => AppError::Usage(format!(
                "--{option} does not apply to --format {}",
                format.as_str()
            )),
            BuildError::Config(e) => AppError::Config(e),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Demo(DemoArgs::default()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iopt: error: {e}");
            e.exit_code()
        }
    }
}

fn run(command: Command) -> Result<(), AppError> {
    match command {
        Command::Info(args) => {
            let selected = formats::build(args.format, &args.options)?;
            let report = info::describe_any(&selected).map_err(AppError::Config)?;
            print!("{report}");
            Ok(())
        }
        Command::Demo(args) => {
            let report = demo::run(args.seed, args.ops).map_err(AppError::Check)?;
            print!("{report}");
            Ok(())
        }
        Command::Bench(args) => {
            let report = bench::run(&args)?;
            print!("{report}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
