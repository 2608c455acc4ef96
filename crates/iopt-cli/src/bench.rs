//! `iopt bench`: the benchmark workloads of the `iopt-bench` crate from the command line
//! (this file is the clap and report layer over it).
//!
//! Every measurement is the median of several repetitions, each with its setup (table
//! creation, population, op lists) excluded from the time. The subjects of one workload
//! are measured round-robin, one repetition of each in turn, so that the peers are
//! measured in the same run and under the same machine noise as iopt; a ratio is iopt's
//! median divided by the peer's.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iopt::spec::{FormatSpec, SpecError};
use iopt_bench::{self as workloads, GIB, IoptFormat, KIB, Params, Sample, Subject, Workload};
use serde::Serialize;

use crate::AppError;
use crate::plot;
use crate::units;

/// Smallest and largest `--size`.
const MIN_SIZE: u64 = 64 * KIB;
const MAX_SIZE: u64 = workloads::MAX_SIZE;
/// The mapping sizes of the plot (those up to `--size`).
const PLOT_SIZES: [u64; 8] = [
    64 * KIB,
    256 * KIB,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
    GIB,
];
/// Small plot points are repeated more (up to this many times) so that their medians are
/// as steady as the large ones'.
const PLOT_MAX_REPS: u32 = 101;
/// The progress bar appears once a run has taken this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// The value of `--format` and `--workload` that selects everything.
const ALL: &str = "all";
/// The value of `--format` that selects the catalogue's demonstration entries.
const CATALOGUE: &str = "catalogue";

/// The long help of `--format`: the default names, from `iopt_bench::formats`.
fn format_help() -> String {
    let mut s = String::from(
        "Formats to measure (comma-separated or repeated): a default name below, `all` (the \
         defaults), `catalogue` (every demonstration entry of the library's format catalogue, \
         `iopt info --catalogue`), or any format spec (`riscv:levels=3,no-svnapot`, \
         `vtd-ss`; `iopt info --list`). Peers run alongside the formats they compare with: \
         aarch64-paging with arm64-s1*, the x86_64 crate with x86-64.\n\nDefault names:",
    );
    for f in IoptFormat::defaults() {
        s.push_str(&format!("\n  {:<16} {}", f.name(), f.describe()));
    }
    s
}

/// One item of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    /// `all`: the default subjects.
    All,
    /// `catalogue`: the catalogue's demonstration entries.
    Catalogue,
    /// A default name or a spec.
    One(IoptFormat),
}

/// Whether `piece` of a comma-separated `--format` value starts a new item (a keyword, a
/// default name, a format family, or a spec with options); otherwise it is an option of
/// the spec before it (`riscv:levels=3,no-svnapot`).
fn starts_item(piece: &str) -> bool {
    let name = piece.split_once(':').map_or(piece, |(n, _)| n).trim();
    piece.contains(':')
        || name == ALL
        || name == CATALOGUE
        || IoptFormat::from_name(name).is_some()
        || FormatSpec::family_named(name).is_some()
}

/// The items of `--format` values: split at commas, except the commas between a spec's
/// options.
fn format_items(values: &[String]) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for v in values {
        let mut first = true;
        for piece in v.split(',') {
            match items.last_mut() {
                Some(last) if !first && last.contains(':') && !starts_item(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => items.push(piece.trim().to_owned()),
            }
            first = false;
        }
    }
    items
}

/// A refused `--format` item: the catalogue's error, naming the option.
fn spec_error(item: &str, e: SpecError) -> AppError {
    let msg = format!("--format {item}: {e}");
    match e {
        SpecError::Config { .. } => AppError::Config(msg),
        _ => AppError::Usage(msg),
    }
}

/// One `--format` item.
fn select(item: &str) -> Result<Selected, AppError> {
    match item {
        ALL => Ok(Selected::All),
        CATALOGUE => Ok(Selected::Catalogue),
        _ => IoptFormat::parse(item)
            .map(Selected::One)
            .map_err(|e| spec_error(item, e)),
    }
}

/// `--workload` values: the workload groups (a map and the unmap of what it mapped go
/// together), and `all`.
fn workload_values() -> PossibleValuesParser {
    let mut v: Vec<PossibleValue> = Workload::groups()
        .into_iter()
        .map(|g| {
            let names: Vec<&str> = Workload::ALL
                .iter()
                .filter(|w| w.group() == g)
                .map(|w| w.name())
                .collect();
            PossibleValue::new(g).help(names.join(", "))
        })
        .collect();
    v.push(PossibleValue::new(ALL).help("every workload"));
    PossibleValuesParser::new(v)
}

/// Arguments of `iopt bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Formats to measure (comma-separated or repeated): a default name (x86-64,
    /// arm64-s1, arm64-s1-contig, amdv1, armv7s), `all`, `catalogue` or any format spec
    /// (`riscv:levels=3`); --help for more.
    #[arg(long, value_name = "FORMAT", default_value = ALL, long_help = format_help())]
    pub format: Vec<String>,
    /// Workloads to run (comma-separated or repeated): W1/W1u, W2/W2u, W2e (W2 into the
    /// tables W1u emptied), W3/W3u, W4, W5, W6 and W7/W7u (1 MiB buffers at warm slots).
    #[arg(long, value_delimiter = ',', default_value = ALL, value_parser = workload_values())]
    pub workload: Vec<String>,
    /// Bytes mapped by W1/W2 and looked up by W4 (64K..64G, a multiple of 64K; units
    /// K, M, G). W3 maps size/2M blocks, W5 does size/8K ops, W6 size/16K page ops, W7
    /// size/1M buffers (at least 64).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub size: u64,
    /// Repetitions per measurement; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,
    /// Seed of the pseudo-random workloads (W4, W5).
    #[arg(long, default_value_t = workloads::DEFAULT_SEED)]
    pub seed: u64,
    /// One JSON object per result and line, instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// The results as a Markdown table (for docs/benchmarks.md).
    #[arg(long)]
    pub markdown: bool,
    /// Instead of the workloads: measure ns per page of one-call maps of 64K..--size and
    /// write the plot to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// `--size`: bytes with an optional binary unit, in range and 64 KiB-aligned.
fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = units::parse_size(s)?;
    if !(MIN_SIZE..=MAX_SIZE).contains(&bytes) || !bytes.is_multiple_of(MIN_SIZE) {
        return Err(format!(
            "{s}: the size must be a multiple of 64K between 64K and 64G"
        ));
    }
    Ok(bytes)
}

impl BenchArgs {
    /// Whether `--workload` names everything.
    fn all(values: &[String]) -> bool {
        values.iter().any(|v| v == ALL)
    }

    /// The selected formats, in command-line order (`all` and `catalogue` in theirs),
    /// each once, with whether it was named on its own.
    ///
    /// # Errors
    /// The catalogue's error for a spec it refuses, naming `--format` and the option.
    fn formats(&self) -> Result<Vec<(IoptFormat, bool)>, AppError> {
        let mut out: Vec<(IoptFormat, bool)> = Vec::new();
        let mut add = |f: IoptFormat, named: bool| {
            if let Some(seen) = out.iter_mut().find(|(g, _)| g.spec() == f.spec()) {
                seen.1 |= named;
            } else {
                out.push((f, named));
            }
        };
        for item in format_items(&self.format) {
            match select(&item)? {
                Selected::All => IoptFormat::defaults().iter().for_each(|&f| add(f, false)),
                Selected::Catalogue => IoptFormat::catalogue()
                    .into_iter()
                    .for_each(|f| add(f, false)),
                Selected::One(f) => add(f, true),
            }
        }
        Ok(out)
    }

    /// The selected workloads, in report order.
    fn workloads(&self) -> Vec<Workload> {
        let all = Self::all(&self.workload);
        Workload::ALL
            .into_iter()
            .filter(|w| all || self.workload.iter().any(|g| g == w.group()))
            .collect()
    }

    /// The formats that take `size`: an error for a format named on the command line
    /// that does not, a note for one that `all` or `catalogue` selected. One of those that
    /// runs none of the selected workloads is left out with a note too (one named on its
    /// own stays: the workloads it skips are left out of the report, and if nothing runs
    /// at all, the error says why).
    fn formats_at(&self, size: u64) -> Result<(Vec<IoptFormat>, Vec<String>), AppError> {
        let mut notes = Vec::new();
        let mut formats = Vec::new();
        let selected = self.workloads();
        for (f, named) in self.formats()? {
            let msg = match f.max_size().filter(|_| !f.fits(size)) {
                Some((max, why)) => Some(format!(
                    "--size {} is more than {} takes: at most {}, as {why}",
                    units::size(size),
                    f.name(),
                    units::size(max)
                )),
                None if !named && selected.iter().all(|&w| !Subject::Iopt(f).can_run(w, size)) => {
                    // One reason per kind, with the workloads it stops: the reasons
                    // name their workload, written once for all of them.
                    let mut why: Vec<(String, Vec<&str>)> = Vec::new();
                    for &w in &selected {
                        let Some(reason) = f.why_not(w, size) else {
                            continue;
                        };
                        let kind = reason.replace(w.name(), "\u{0}");
                        match why.iter_mut().find(|(k, _)| *k == kind) {
                            Some((_, ws)) => ws.push(w.name()),
                            None => why.push((kind, vec![w.name()])),
                        }
                    }
                    let why: Vec<String> = why
                        .iter()
                        .map(|(kind, ws)| kind.replace('\u{0}', &ws.join(", ")))
                        .collect();
                    Some(format!("nothing to run: {}", why.join("; ")))
                }
                None => None,
            };
            match msg {
                None => formats.push(f),
                Some(msg) if named => return Err(AppError::Usage(msg)),
                Some(msg) => notes.push(format!("{} skipped: {msg}", f.name())),
            }
        }
        Ok((formats, notes))
    }

    fn params(&self) -> Params {
        Params {
            seed: self.seed,
            ..Params::new(self.size)
        }
    }
}

/// One result: an iopt format on a workload, with its peer measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `W1` ... `W6`.
    pub workload: &'static str,
    /// What the workload did.
    pub what: String,
    /// What one operation is.
    pub op: &'static str,
    /// The iopt format (a default name, a catalogue label or a spec).
    pub format: String,
    /// Operations per run.
    pub ops: u64,
    /// Median nanoseconds per operation.
    pub ns_per_op: f64,
    /// Operations per second at the median.
    pub ops_per_s: f64,
    /// Most table pages in use at once (setup included).
    pub table_pages: u64,
    /// Table pages in use at the end.
    pub table_pages_end: u64,
    /// The peer (W6: the same format with one thread).
    pub peer: Option<String>,
    /// The peer's median nanoseconds per operation.
    pub peer_ns_per_op: Option<f64>,
    /// The peer's most table pages at once.
    pub peer_table_pages: Option<u64>,
    /// How the peer did the work differently, if it did.
    pub peer_note: Option<&'static str>,
    /// `ns_per_op / peer_ns_per_op`: below 1, iopt is faster (W6: below 1, two threads
    /// have more throughput than one).
    pub ratio: Option<f64>,
    /// W1-W3: the plain-fill baseline's ns per entry written.
    pub fill_ns_per_entry: Option<f64>,
}

/// The medians of one workload, per subject.
struct Medians(Vec<(Subject, Sample)>);

impl Medians {
    fn get(&self, s: Subject) -> Option<&Sample> {
        self.0.iter().find(|(x, _)| *x == s).map(|(_, m)| m)
    }
}

/// The median of `samples` by elapsed time (the upper one of an even count).
fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by_key(|s| s.elapsed);
    samples[samples.len() / 2]
}

/// A progress bar on stderr that shows itself only after [`PROGRESS_AFTER`], and only
/// when stderr is a terminal.
struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    shown: bool,
}

impl Progress {
    fn new(total: u64, enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
        }
    }

    /// About to measure `what`.
    fn at(&mut self, what: &str) {
        if let Some(bar) = &self.bar {
            if !self.shown && self.start.elapsed() >= PROGRESS_AFTER {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                self.shown = true;
            }
            bar.set_message(what.to_owned());
        }
    }

    fn done_one(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Measures `subjects` on `w`, `reps` times round-robin; the median of each.
fn measure(
    w: Workload,
    subjects: &[Subject],
    p: &Params,
    reps: u32,
    progress: &mut Progress,
) -> Medians {
    let mut samples: Vec<Vec<Sample>> = subjects.iter().map(|_| Vec::new()).collect();
    for _ in 0..reps {
        for (s, out) in subjects.iter().zip(&mut samples) {
            progress.at(&format!("{} {}", w.name(), s.name()));
            out.push(workloads::run(*s, w, p));
            progress.done_one();
        }
    }
    Medians(
        subjects
            .iter()
            .copied()
            .zip(samples.into_iter().map(median))
            .collect(),
    )
}

/// The subjects of `w` for these formats: the formats, their peers, the fill.
fn subjects_for(w: Workload, formats: &[IoptFormat], size: u64) -> Vec<Subject> {
    let mut v: Vec<Subject> = formats.iter().map(|&f| Subject::Iopt(f)).collect();
    v.extend(w.subjects().into_iter().filter(|&s| match s {
        Subject::Iopt(_) => false,
        Subject::Fill => true,
        peer => formats.iter().any(|f| f.peer() == Some(peer)),
    }));
    v.retain(|s| s.can_run(w, size));
    v
}

/// Runs the selected workloads and returns one row per (workload, format).
///
/// # Errors
/// A usage error when the selection runs nothing.
fn run_workloads(args: &BenchArgs, formats: &[IoptFormat]) -> Result<Vec<Row>, AppError> {
    let p = args.params();
    let plan: Vec<(Workload, Vec<Subject>)> = args
        .workloads()
        .into_iter()
        .filter(|&w| w != Workload::W6Single)
        // W6's subjects are iopt's formats only; its reference, the same formats with
        // one thread, is measured as W6-1 right after it.
        .map(|w| (w, subjects_for(w, formats, p.size)))
        .filter(|(_, s)| s.iter().any(|s| matches!(s, Subject::Iopt(_))))
        .collect();
    if plan.is_empty() {
        let mut why: Vec<String> = Vec::new();
        for w in args.workloads() {
            for &f in formats {
                if let Some(reason) = Subject::Iopt(f).why_not(w, p.size)
                    && !why.contains(&reason)
                {
                    why.push(reason);
                }
            }
        }
        return Err(AppError::Usage(format!(
            "nothing to run at --size {}: {}",
            units::size(p.size),
            why.join("; ")
        )));
    }
    let total = plan
        .iter()
        .map(|(w, s)| s.len() as u64 * if *w == Workload::W6 { 2 } else { 1 })
        .sum::<u64>()
        * u64::from(args.reps);
    let mut progress = Progress::new(total, !args.json);
    let mut rows = Vec::new();
    for (w, subjects) in &plan {
        let medians = measure(*w, subjects, &p, args.reps, &mut progress);
        let single = (*w == Workload::W6)
            .then(|| measure(Workload::W6Single, subjects, &p, args.reps, &mut progress));
        let fill = medians.get(Subject::Fill).map(Sample::ns_per_op);
        for &f in formats {
            let Some(m) = medians.get(Subject::Iopt(f)) else {
                continue;
            };
            let (peer, peer_sample) = match &single {
                Some(single) => (Some("1 thread".to_owned()), single.get(Subject::Iopt(f))),
                None => match f.peer().filter(|s| s.can_run(*w, p.size)) {
                    Some(s) => (Some(s.name().into_owned()), medians.get(s)),
                    None => (None, None),
                },
            };
            let peer_note = f
                .peer()
                .and_then(|s| s.note(*w))
                .filter(|_| single.is_none());
            rows.push(Row {
                workload: w.name(),
                what: w.describe(&p),
                op: w.op(),
                format: f.name().into_owned(),
                ops: m.ops,
                ns_per_op: m.ns_per_op(),
                ops_per_s: 1e9 / m.ns_per_op().max(1e-9),
                table_pages: m.table_pages,
                table_pages_end: m.table_pages_end,
                peer: peer.filter(|_| peer_sample.is_some()),
                peer_ns_per_op: peer_sample.map(Sample::ns_per_op),
                peer_table_pages: peer_sample.map(|s| s.table_pages),
                peer_note,
                ratio: peer_sample.map(|s| m.ns_per_op() / s.ns_per_op().max(1e-9)),
                fill_ns_per_entry: fill,
            });
        }
    }
    progress.finish();
    Ok(rows)
}

/// A number of nanoseconds with 3 significant digits (at most 2 decimals).
fn ns(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Operations per second in K/M/G.
fn rate(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}K", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

/// Pads cells into aligned columns: those in `left` left-aligned, the others
/// right-aligned.
fn columns(rows: &[Vec<String>], left: &[usize], indent: &str) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_owned();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if left.contains(&i) {
                let _ = write!(line, "{c:<w$}", w = widths[i]);
            } else {
                let _ = write!(line, "{c:>w$}", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human report: one block per workload (after the notes on skipped formats).
fn human(rows: &[Row], args: &BenchArgs, notes: &[String]) -> String {
    let mut out = format!(
        "iopt bench: --size {}, median of {} repetitions, setup excluded; \
         ratio = iopt / peer (< 1: iopt faster)\n",
        units::size(args.size),
        args.reps
    );
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    let mut i = 0;
    while i < rows.len() {
        let w = rows[i].workload;
        let block: Vec<&Row> = rows[i..].iter().take_while(|r| r.workload == w).collect();
        i += block.len();
        let first = block[0];
        let _ = write!(out, "\n{w}  {} (ns per {})", first.what, first.op);
        if let Some(f) = first.fill_ns_per_entry {
            let _ = write!(out, "; fill baseline {} ns/entry", ns(f));
        }
        out.push('\n');
        let mut cells = vec![
            [
                "format",
                "ns/op",
                "ops/s",
                "pages",
                "peer",
                "peer ns/op",
                "peer pages",
                "ratio",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        let mut notes = Vec::new();
        for r in &block {
            let mut peer = r.peer.clone().unwrap_or_else(|| "-".to_owned());
            if let Some(note) = r.peer_note {
                peer.push('*');
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            cells.push(vec![
                r.format.clone(),
                ns(r.ns_per_op),
                rate(r.ops_per_s),
                r.table_pages.to_string(),
                peer,
                opt(r.peer_ns_per_op, ns),
                opt(r.peer_table_pages, |p| p.to_string()),
                opt(r.ratio, |x| format!("{x:.2}")),
            ]);
        }
        out.push_str(&columns(&cells, &[0, 4], "  "));
        for note in notes {
            let _ = writeln!(out, "  * {note}");
        }
    }
    out
}

/// The machine, for reports: CPU model, cores, memory.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match mem {
        Some(kib) => format!(
            "{cpu}, {cores} cores, {:.0} GiB",
            kib as f64 / (1u64 << 20) as f64
        ),
        None => format!("{cpu}, {cores} cores"),
    }
}

/// The Markdown report: one table, rows in workload order (after the notes on skipped
/// formats).
fn markdown(rows: &[Row], args: &BenchArgs, notes: &[String]) -> String {
    let mut out = format!(
        "Machine: {}. `iopt bench --size {} --reps {}`: median of {} repetitions, setup \
         excluded; ratio = iopt / peer in the same run (< 1: iopt faster; W6: 2 threads / 1 \
         thread).\n\n",
        machine(),
        units::size(args.size),
        args.reps,
        args.reps
    );
    for note in notes {
        let _ = writeln!(out, "Note: {note}.\n");
    }
    out.push_str(
        "| workload | op | format | ns/op | table pages | peer | peer ns/op | peer pages | ratio | fill ns/entry |\n\
         |---|---|---|--:|--:|---|--:|--:|--:|--:|\n",
    );
    let mut notes: Vec<&str> = Vec::new();
    for r in rows {
        let mut peer = r.peer.clone().unwrap_or_else(|| "-".to_owned());
        if let Some(note) = r.peer_note {
            if !notes.contains(&note) {
                notes.push(note);
            }
            let _ = write!(peer, " ({note})");
        }
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.what,
            r.op,
            r.format,
            ns(r.ns_per_op),
            r.table_pages,
            peer,
            opt(r.peer_ns_per_op, ns),
            opt(r.peer_table_pages, |p| p.to_string()),
            opt(r.ratio, |x| format!("{x:.2}")),
            opt(r.fill_ns_per_entry, ns),
        );
    }
    out
}

/// Runs `iopt bench` and returns what to print.
///
/// # Errors
/// A usage error when the selection runs nothing, or when a format named with `--format`
/// does not take `--size` (the message names both and the limit); an I/O error naming
/// the path when the plot cannot be written (checked before measuring: a missing folder).
pub fn run(args: &BenchArgs) -> Result<String, AppError> {
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
        workloads::warm_allocator();
        return run_plot(args, path);
    }
    let (formats, notes) = args.formats_at(args.size)?;
    if formats.is_empty() {
        return Err(AppError::Usage(format!(
            "nothing to run: {}",
            notes.join("; ")
        )));
    }
    workloads::warm_allocator();
    let rows = run_workloads(args, &formats)?;
    Ok(if args.json {
        for note in &notes {
            eprintln!("iopt: note: {note}");
        }
        rows.iter()
            .map(|r| serde_json::to_string(r).expect("a row serialises") + "\n")
            .collect()
    } else if args.markdown {
        markdown(&rows, args, &notes)
    } else {
        human(&rows, args, &notes)
    })
}

/// An I/O error about the plot file `path`.
fn plot_error(path: &Path, kind: std::io::ErrorKind, why: impl fmt::Display) -> AppError {
    AppError::Io(std::io::Error::new(
        kind,
        format!("cannot write the plot to {}: {why}", path.display()),
    ))
}

/// Whether the plot can go to `path`: its folder must exist (it is not created).
fn check_plot_path(path: &Path) -> Result<(), AppError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(plot_error(
            path,
            std::io::ErrorKind::NotADirectory,
            format_args!("{} is not a folder", dir.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(plot_error(
            path,
            e.kind(),
            format_args!("the folder {} does not exist", dir.display()),
        )),
        Err(e) => Err(plot_error(
            path,
            e.kind(),
            format_args!("{}: {e}", dir.display()),
        )),
    }
}

/// One point of the plot.
#[derive(Debug, Clone, Serialize)]
struct Point {
    series: String,
    size: u64,
    ns_per_page: f64,
    table_pages: u64,
}

/// The plot: W2 (4K pages, one call) at every size of [`PLOT_SIZES`] up to `--size`,
/// per format and for aarch64-paging.
fn run_plot(args: &BenchArgs, path: &Path) -> Result<String, AppError> {
    let sizes: Vec<u64> = PLOT_SIZES.into_iter().filter(|&s| s <= args.size).collect();
    let largest = sizes.last().copied().unwrap_or(args.size);
    let (formats, _) = args.formats_at(largest)?;
    if formats.is_empty() || sizes.is_empty() {
        return Err(AppError::Usage(
            "nothing to plot at this --format and --size".into(),
        ));
    }
    let mut series: Vec<Subject> = formats.iter().map(|&f| Subject::Iopt(f)).collect();
    if formats
        .iter()
        .any(|f| f.peer() == Some(Subject::Aarch64Paging))
    {
        series.push(Subject::Aarch64Paging);
    }
    let reps_at = |size: u64| {
        args.reps
            .max((GIB / 16 / size).min(u64::from(PLOT_MAX_REPS)) as u32)
    };
    let total = sizes
        .iter()
        .map(|&s| u64::from(reps_at(s)) * series.len() as u64)
        .sum();
    let mut progress = Progress::new(total, !args.json);
    let mut points = Vec::new();
    for &size in &sizes {
        let subjects: Vec<Subject> = series
            .iter()
            .copied()
            .filter(|s| s.can_run(Workload::W2, size))
            .collect();
        let p = Params {
            size,
            seed: args.seed,
        };
        let medians = measure(Workload::W2, &subjects, &p, reps_at(size), &mut progress);
        for (s, m) in medians.0 {
            points.push(Point {
                series: s.name().into_owned(),
                size,
                ns_per_page: m.ns_per_op(),
                table_pages: m.table_pages,
            });
        }
    }
    progress.finish();
    let lines: Vec<plot::Series> = series
        .iter()
        .map(|s| plot::Series {
            name: s.name().into_owned(),
            points: points
                .iter()
                .filter(|p| p.series == s.name())
                .map(|p| (p.size, p.ns_per_page))
                .collect(),
        })
        .collect();
    let title = format!(
        "ns per 4K page, mapped in one call (median of {}+ runs)",
        args.reps
    );
    std::fs::write(path, plot::svg(&title, &lines)).map_err(|e| plot_error(path, e.kind(), &e))?;
    Ok(if args.json {
        points
            .iter()
            .map(|p| serde_json::to_string(p).expect("a point serialises") + "\n")
            .collect()
    } else {
        let mut cells = vec![{
            let mut h = vec!["series".to_owned()];
            h.extend(sizes.iter().map(|&s| units::size(s)));
            h
        }];
        for l in &lines {
            let mut r = vec![l.name.clone()];
            r.extend(
                sizes
                    .iter()
                    .map(|&s| opt(l.points.iter().find(|p| p.0 == s).map(|p| p.1), ns)),
            );
            cells.push(r);
        }
        format!(
            "ns per 4K page, mapped in one call; plot written to {}\n{}",
            path.display(),
            columns(&cells, &[0], "  ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parsing_and_limits() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("65536"), Ok(64 << 10));
        assert!(parse_size("4K").is_err());
        assert!(parse_size("100K").is_err());
        assert!(parse_size("128G").is_err());
    }

    #[test]
    fn median_of_odd_and_even() {
        let s = |ms| Sample {
            elapsed: Duration::from_millis(ms),
            ops: 1,
            table_pages: 0,
            table_pages_end: 0,
        };
        assert_eq!(
            median(vec![s(5), s(1), s(9)]).elapsed,
            Duration::from_millis(5)
        );
        assert_eq!(
            median(vec![s(4), s(1), s(9), s(2)]).elapsed,
            Duration::from_millis(4)
        );
    }

    #[test]
    fn subjects_follow_the_formats() {
        let f = |n: &str| IoptFormat::from_name(n).expect("a default");
        let s = subjects_for(Workload::W2, &[f("arm64-s1")], GIB);
        assert_eq!(
            s,
            [
                Subject::Iopt(f("arm64-s1")),
                Subject::Aarch64Paging,
                Subject::Fill
            ]
        );
        let s = subjects_for(Workload::W4, &[f("amdv1"), f("armv7s")], 4 * GIB);
        assert_eq!(s, [Subject::Iopt(f("amdv1"))]);
    }

    #[test]
    fn format_values_split_between_formats_only() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            format_items(&v(&[
                "x86-64,riscv:levels=3,no-svnapot,vtd-ss:levels=5,all"
            ])),
            [
                "x86-64",
                "riscv:levels=3,no-svnapot",
                "vtd-ss:levels=5",
                "all"
            ]
        );
        assert_eq!(
            format_items(&v(&["dart:version=2,regs=t8110", "catalogue"])),
            ["dart:version=2,regs=t8110", "catalogue"]
        );
        // Without options before it, a word that is no format stays an item (and is
        // refused by the catalogue, naming it).
        assert_eq!(format_items(&v(&["x86-64,svpbmt"])), ["x86-64", "svpbmt"]);
        assert!(select("svpbmt").is_err());
        assert_eq!(select("catalogue").ok(), Some(Selected::Catalogue));
    }

    #[test]
    fn columns_align() {
        let t = columns(
            &[
                vec!["a".into(), "1".into(), "x".into()],
                vec!["bbb".into(), "100".into(), "yy".into()],
            ],
            &[0, 2],
            "> ",
        );
        assert_eq!(t, "> a      1  x\n> bbb  100  yy\n");
    }
}
