//! The `iopt` command-line tool.
//!
//! - `iopt info --format SPEC [options]` builds an empty table of one format and prints
//!   what a driver needs to know about it: levels, page sizes, aperture, output address
//!   width, root address and the hardware configuration words. SPEC is the library's
//!   format text form (`arm64-s2:granule=16k,ias=40`, see `iopt::spec`); `iopt info
//!   --list` prints every format and option, `iopt info --catalogue` the configurations
//!   the tests cover.
//! - `iopt demo` (and `iopt` with no arguments) runs a short seeded workload over the
//!   catalogue's demonstration tables (every format type), checks every step against a
//!   model, and prints a summary table.
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
use iopt_bench::units;

use std::fmt;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use iopt::spec::SpecError;

use crate::formats::{BuildError, FormatOptions};
use crate::info::DescribeError;

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
    /// The table format and its options: NAME[:OPTION,...], e.g. `arm64-s1`,
    /// `arm64-s2:granule=16k,ias=40`, `riscv:levels=5,no-svnapot` (every format and
    /// option: --list).
    #[arg(
        long,
        value_name = "SPEC",
        required_unless_present_any = ["list", "catalogue"]
    )]
    format: Option<String>,
    /// Print every format and option with its help and default, and exit.
    #[arg(long, conflicts_with_all = ["format", "catalogue"])]
    list: bool,
    /// Print the configurations the library's tests cover (label and spec), and exit.
    #[arg(long, conflicts_with = "format")]
    catalogue: bool,
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
    /// The library refused the configuration, or could not create the table (exit
    /// status 1).
    Config(String),
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
            AppError::Config(e) => f.write_str(e),
            AppError::Check(e) => write!(f, "demo check failed: {e}"),
            AppError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<SpecError> for AppError {
    /// A refused configuration is an error of the values; anything else in a spec (an
    /// unknown name or option, a malformed value) is a usage error.
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Config { .. } => AppError::Config(e.to_string()),
            _ => AppError::Usage(e.to_string()),
        }
    }
}

impl From<BuildError> for AppError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::NotApplicable { option, format } => {
                AppError::Usage(format!("--{option} does not apply to --format {format}"))
            }
            BuildError::Spec(e) => e.into(),
        }
    }
}

impl From<DescribeError> for AppError {
    fn from(e: DescribeError) -> Self {
        match e {
            DescribeError::Spec(e) => e.into(),
            DescribeError::Table(e) => AppError::Config(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    // The format flags' help names the formats each applies to, from the library.
    let command = Cli::command().mut_subcommand("info", formats::annotate);
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
            if args.list {
                print!("{}", info::list());
                return Ok(());
            }
            if args.catalogue {
                print!("{}", info::catalogue());
                return Ok(());
            }
            let text = args.format.as_deref().unwrap_or_default();
            let spec = formats::spec(text, &args.options)?;
            let report = info::describe(&spec)?;
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

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
        Cli::command()
            .mut_subcommand("info", formats::annotate)
            .debug_assert();
    }
}
