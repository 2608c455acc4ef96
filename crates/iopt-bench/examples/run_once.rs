//! Runs one workload once with one subject and prints its operation count: what
//! `scripts/instr-counts.sh` runs under callgrind to count instructions per operation.
//!
//! ```sh
//! cargo run --release -p iopt-bench --example run_once -- W7 x86-64 64M
//! ```
//!
//! Arguments: the workload (`W1`, `W1u`, `W2`, `W2u`, `W2e`, `W3`, `W3u`, `W4`, `W5`,
//! `W6-1`, `W7`, `W7u`), the subject (an iopt format such as `x86-64` or `arm64-s1`, any
//! spec of the library's catalogue such as `riscv:levels=3`, or `aarch64-paging`,
//! `x86_64-crate`, `fill`) and the size (`--size` of `iopt bench`).
//! Prints `ops N pages P` on stdout. Every measured operation runs inside
//! `iopt_bench::measured`, so `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*iopt_bench::measured*'` counts exactly those instructions.

use std::process::ExitCode;

use iopt_bench::{IoptFormat, Params, Subject, Workload, units};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [w, s, size] = args.as_slice() else {
        eprintln!("usage: run_once WORKLOAD SUBJECT SIZE (e.g. W7 x86-64 64M)");
        return ExitCode::from(2);
    };
    let Some(w) = Workload::from_name(w) else {
        eprintln!("run_once: no workload {w:?}");
        return ExitCode::from(2);
    };
    let s = match Subject::from_name(s) {
        Some(s) => s,
        None => match IoptFormat::parse(s) {
            Ok(f) => Subject::Iopt(f),
            Err(e) => {
                eprintln!("run_once: no subject {s:?}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let size = match units::parse_size(size) {
        Ok(size) => size,
        Err(e) => {
            eprintln!("run_once: {e}");
            return ExitCode::from(2);
        }
    };
    if !s.can_run(w, size) {
        eprintln!(
            "run_once: {} does not run {} at {size} bytes",
            s.name(),
            w.name()
        );
        return ExitCode::from(2);
    }
    iopt_bench::warm_allocator();
    let r = iopt_bench::run(s, w, &Params::new(size));
    println!("ops {} pages {}", r.ops, r.table_pages);
    ExitCode::SUCCESS
}
