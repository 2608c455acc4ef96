//! `iopt info`: what a driver needs to know about an empty table of one format.

use std::fmt;

use iopt::mem::ArenaMemory;
use iopt::spec::{FormatSpec, SpecError};
use iopt::{Aperture, Format, Info, NoFlush, PageTable};

use crate::units;

/// Physical address of the simulated memory the table pages come from. Below 4 GiB, so
/// that formats with 32-bit table pointers can use it. The root table is the first
/// allocation, so it sits exactly here.
pub const ARENA_BASE: u64 = 0x8000_0000;
/// Size of that memory: room for any top table.
const ARENA_BYTES: usize = 1 << 20;

/// The description of an empty table, printed by `iopt info`: one `key: value` line per
/// property, then the hardware words as `name = value` lines.
#[derive(Debug, Clone)]
pub struct Report {
    /// The format's family name.
    name: &'static str,
    /// The spec in canonical form.
    spec: String,
    /// The library's name of the format type.
    format_name: &'static str,
    /// The configuration in words.
    summary: String,
    /// The top table's entries and size.
    top_table: String,
    /// What the library reports.
    info: Info,
}

/// Why a table could not be described.
#[derive(Debug)]
pub enum DescribeError {
    /// The library refused the spec.
    Spec(SpecError),
    /// Creating the table failed.
    Table(iopt::Error),
}

/// Creates an empty table of `spec` in simulated memory at [`ARENA_BASE`] and
/// describes it.
///
/// # Errors
/// The library's error if the format or the table cannot be created.
pub fn describe(spec: &FormatSpec) -> Result<Report, DescribeError> {
    let format = spec.build().map_err(DescribeError::Spec)?;
    iopt::with_format!(format, f => describe_table(f, spec)).map_err(DescribeError::Table)
}

fn describe_table<F: Format>(fmt: F, spec: &FormatSpec) -> Result<Report, iopt::Error> {
    let pt = PageTable::new(fmt, ArenaMemory::new(ARENA_BASE, ARENA_BYTES), NoFlush)?;
    let info = pt.info();
    Ok(Report {
        name: spec.name(),
        spec: spec.to_string(),
        format_name: F::NAME,
        summary: spec.describe().to_string(),
        top_table: top_table(pt.format(), info.levels - 1),
        info,
    })
}

/// `iopt info --list`: every format and every option, with their help.
pub fn list() -> String {
    let mut s = String::from(
        "Formats: --format NAME[:OPTION,...], e.g. arm64-s2:granule=16k,ias=40.\n\
         An on/off option is written OPTION (on) or no-OPTION (off), any other \
         OPTION=VALUE;\noptions left out take the defaults shown.\n",
    );
    for family in FormatSpec::families() {
        s += &format!("\n{}  {}\n", family.name(), family.help());
        for opt in family.options() {
            let written = if opt.is_flag() {
                format!("{0} | no-{0}", opt.name())
            } else {
                format!("{}=VALUE", opt.name())
            };
            let values = if opt.is_flag() {
                String::new()
            } else {
                format!(": {}", opt.values())
            };
            s += &format!(
                "  {written:<34} {}{values} [default: {}]\n",
                opt.help(),
                opt.default_text()
            );
        }
    }
    s
}

/// `iopt info --catalogue`: the configurations the library's tests cover.
pub fn catalogue() -> String {
    let entries = FormatSpec::catalogue();
    let width = entries.iter().map(|e| e.label.len()).max().unwrap_or(0);
    let mut s = String::from("Configurations worth testing (label, spec; * = in `iopt demo`):\n");
    for e in entries {
        let mark = if e.demo { '*' } else { ' ' };
        s += &format!("{mark} {:<width$}  {}\n", e.label, e.text);
    }
    s
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        writeln!(f, "format:     {} ({})", self.name, self.format_name)?;
        writeln!(f, "spec:       {}", self.spec)?;
        writeln!(f, "config:     {}", self.summary)?;
        if info.max_levels > info.levels {
            writeln!(
                f,
                "levels:     {} (grows up to {})",
                info.levels, info.max_levels
            )?;
        } else {
            writeln!(f, "levels:     {}", info.levels)?;
        }
        writeln!(f, "top table:  {}", self.top_table)?;
        writeln!(
            f,
            "page sizes: {} (bitmap {:#x})",
            units::page_size_list(info.pgsize_bitmap),
            info.pgsize_bitmap
        )?;
        writeln!(f, "aperture:   {}", Range(&info.aperture))?;
        writeln!(f, "oa bits:    {}", info.oa_bits)?;
        writeln!(f, "root pa:    {:#x}", info.root_pa)?;
        writeln!(f, "hw words:")?;
        for &(word, value) in info.hw.as_slice() {
            writeln!(f, "  {word} = {value:#x}")?;
        }
        Ok(())
    }
}

/// The top table's entry count and size, noting concatenated tables (a top with more
/// entries than a full table, as ARM stage 2 uses).
fn top_table<F: Format>(fmt: &F, top: u32) -> String {
    let entries_lg2 = fmt.va_bits(top) - fmt.item_lg2(top);
    let bytes_lg2 = (entries_lg2 + F::ENTRY_LG2).max(fmt.min_table_bytes_lg2());
    let mut s = format!(
        "{} entries, {}",
        1u64 << entries_lg2,
        units::size(1 << bytes_lg2)
    );
    let full_lg2 = fmt.table_lg2(top);
    if entries_lg2 > full_lg2 {
        s += &format!(
            " ({} concatenated tables)",
            1u64 << (entries_lg2 - full_lg2)
        );
    }
    s
}

/// Displays an aperture as inclusive hex ranges, both halves for sign-extended formats.
struct Range<'a>(&'a Aperture);

impl fmt::Display for Range<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ap = self.0;
        write!(f, "{:#x} ..= {:#x}", ap.start, ap.last)?;
        if let Some((start, last)) = ap.upper {
            write!(f, ", {start:#x} ..= {last:#x}")?;
        }
        Ok(())
    }
}
