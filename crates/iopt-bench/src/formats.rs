//! The iopt formats the benchmarks measure: data over the library's format catalogue
//! ([`FormatSpec`]), not a list of format types.
//!
//! A subject ([`IoptFormat`]) is a spec plus what the benchmarks add to it: a display
//! name (`arm64-s1-contig`) and the peer it is compared with. Everything else is read
//! from the built format and an empty table of it ([`Props`]): the table memory (from
//! the table address width), how much of `--size` fits (aperture and output width), the
//! span of a leaf table, the page sizes, the page size of a one-call map. So any spec
//! the catalogue parses can be benchmarked (`iopt bench --format riscv:levels=3`), and
//! a format added to the library needs no change here.
//!
//! A run ([`crate::run`]) dispatches once per run with [`iopt::with_format!`]; the
//! workload inside is monomorphised for the format and memory types.

use std::borrow::Cow;
use std::sync::OnceLock;

use iopt::mem::{ArenaMemory, HeapMemory, TableMemory};
use iopt::spec::{CatalogueEntry, FormatSpec, SpecError};
use iopt::{Aperture, Format, NoFlush, PageTable};

use crate::iopt_runs::{self, BenchMemory};
use crate::units::size as human;
use crate::{IOVA_BASE, PA_BASE, PAGE, Params, Sample, Subject, Workload};

/// The peers, which build the same tables as some iopt configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The `aarch64-paging` crate: ARM64 stage 1, 4K granule, 48-bit, TTBR0.
    Aarch64Paging,
    /// The `x86_64` crate: x86-64 4-level paging.
    #[cfg(target_pointer_width = "64")]
    X86_64Crate,
}

impl Peer {
    /// The peer as a subject.
    pub fn subject(self) -> Subject {
        match self {
            Peer::Aarch64Paging => Subject::Aarch64Paging,
            #[cfg(target_pointer_width = "64")]
            Peer::X86_64Crate => Subject::X86_64Crate,
        }
    }
}

/// One of the default subjects: a name, a spec text, and the peer.
struct DefaultSubject {
    name: &'static str,
    spec: &'static str,
    peer: Option<Peer>,
    /// For `--format` help: what the benchmarks use it for (the spec's own description
    /// follows).
    why: &'static str,
}

/// The default subjects, in report order: the configurations a driver would use, and
/// the ones with a peer. `docs/benchmarks.md` reports these names.
const DEFAULTS: [DefaultSubject; 5] = [
    DefaultSubject {
        name: "x86-64",
        spec: "x86-64",
        #[cfg(target_pointer_width = "64")]
        peer: Some(Peer::X86_64Crate),
        #[cfg(not(target_pointer_width = "64"))]
        peer: None,
        why: "x86-64 4-level (VT-d first stage)",
    },
    DefaultSubject {
        name: "arm64-s1",
        spec: "arm64-s1:no-contig",
        peer: Some(Peer::Aarch64Paging),
        why: "ARM64 stage 1 without contiguous hints, as aarch64-paging",
    },
    DefaultSubject {
        name: "arm64-s1-contig",
        spec: "arm64-s1",
        peer: Some(Peer::Aarch64Paging),
        why: "ARM64 stage 1 with contiguous hints (one-call maps pass 64K pages)",
    },
    DefaultSubject {
        name: "amdv1",
        spec: "amdv1",
        peer: None,
        why: "AMD IOMMU v1, 3 levels, dynamic top",
    },
    DefaultSubject {
        name: "armv7s",
        spec: "armv7s",
        peer: None,
        why: "ARMv7 short descriptors (32-bit IOVA and PA)",
    },
];

/// Table memory on the heap has physical address = virtual address, which is below
/// 2^47 in a 64-bit Linux process (2^48 on AArch64): formats whose table pointers hold
/// fewer bits take their tables from an [`ArenaMemory`] at [`ARENA_BASE`] instead.
pub const HEAP_PA_BITS: u32 = 48;

/// Physical address of the arena of formats with narrow table pointers: below 4 GiB,
/// the narrowest (32-bit) reach.
pub const ARENA_BASE: u64 = 0x1000_0000;

/// Arena bytes for probing a format (an empty table; the largest top tables are 64K).
const PROBE_ARENA: u64 = 1 << 20;

/// What the benchmarks need to know about a format, read from an empty table of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Props {
    /// The table's page sizes.
    pub pgsize_bitmap: u64,
    /// The IOVAs it maps.
    pub aperture: Aperture,
    /// Output address width.
    pub oa_bits: u32,
    /// Physical address width its tables may live in.
    pub table_pa_bits: u32,
    /// Bytes of IOVA one table of the smallest pages spans (2 MiB for 512 4K entries,
    /// 1 MiB for armv7s's 256).
    pub leaf_table_span: u64,
}

impl Props {
    /// The smallest page.
    pub fn min_page(&self) -> u64 {
        1 << self.pgsize_bitmap.trailing_zeros()
    }

    /// The page size W3 maps a 2 MiB block with: the largest page of at most 2 MiB that
    /// needs no leaf table (a block or section), if any (armv7s: 1 MiB sections, two per
    /// block).
    pub fn block_pgsize(&self) -> Option<u64> {
        let largest = iopt_runs::iopt_block_pgsize(self.pgsize_bitmap);
        (largest >= self.leaf_table_span).then_some(largest)
    }

    /// The most bytes from [`IOVA_BASE`] a workload may use, and why: the aperture, or
    /// the output width (the benchmarks map IOVA `i` to physical address `PA_BASE + i`).
    pub fn limit(&self) -> (u64, String) {
        let Aperture { start, last, .. } = self.aperture;
        let from_base = start.checked_sub(IOVA_BASE).is_none_or(|d| d == 0);
        let by_aperture = if from_base {
            last.saturating_sub(IOVA_BASE).saturating_add(1)
        } else {
            0
        };
        let by_oa = (1u64 << self.oa_bits.min(63)).saturating_sub(PA_BASE + IOVA_BASE);
        if by_oa < by_aperture {
            (
                by_oa,
                format!(
                    "its output addresses are {}-bit, and the benchmarks map IOVA i to physical \
                     address {} + i",
                    self.oa_bits,
                    human(PA_BASE)
                ),
            )
        } else if !from_base {
            (
                0,
                format!("its aperture starts at {start:#x}, and the benchmarks map from IOVA 0"),
            )
        } else {
            (by_aperture, format!("its aperture ends at IOVA {last:#x}"))
        }
    }
}

/// How a subject was named: a default name, a catalogue label, or its spec's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Static(&'static str),
    Spec,
}

/// An iopt format as a benchmark subject: a spec, the name reports give it, the peer it
/// is compared with, and the properties of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoptFormat {
    name: Name,
    spec: FormatSpec,
    peer: Option<Peer>,
    props: Props,
}

impl IoptFormat {
    /// The five default subjects (`--format all`), in report order.
    pub fn defaults() -> &'static [IoptFormat] {
        static DEFAULT_FORMATS: OnceLock<Vec<IoptFormat>> = OnceLock::new();
        DEFAULT_FORMATS.get_or_init(|| {
            DEFAULTS
                .iter()
                .map(|d| {
                    let spec: FormatSpec = d.spec.parse().expect("a default spec parses");
                    IoptFormat::with(Name::Static(d.name), spec, d.peer)
                        .expect("a default spec builds")
                })
                .collect()
        })
    }

    /// Every demonstration entry of the library's catalogue ([`CatalogueEntry::demo`]),
    /// named by its label.
    pub fn catalogue() -> Vec<IoptFormat> {
        FormatSpec::catalogue()
            .iter()
            .filter(|e| e.demo)
            .map(IoptFormat::from_entry)
            .collect()
    }

    /// A catalogue entry, named by its label.
    ///
    /// # Panics
    /// If the entry does not build (the library's tests check that every one does).
    pub fn from_entry(e: &CatalogueEntry) -> IoptFormat {
        IoptFormat::with(Name::Static(e.label), e.spec(), None)
            .unwrap_or_else(|err| panic!("catalogue entry {}: {err}", e.label))
    }

    /// The subject of a spec: a default subject if the spec is one's (same name and
    /// peer), else one named by the spec's canonical text, without a peer.
    ///
    /// # Errors
    /// The library's error if the spec does not build.
    pub fn from_spec(spec: FormatSpec) -> Result<IoptFormat, SpecError> {
        match IoptFormat::defaults().iter().find(|d| d.spec == spec) {
            Some(&d) => Ok(d),
            None => IoptFormat::with(Name::Spec, spec, None),
        }
    }

    /// The default subject called `name`, or else the subject of the spec `name` parses
    /// to. (`arm64-s1` is the default subject, without contiguous hints; the spec text
    /// `arm64-s1:contig` is `arm64-s1-contig`.)
    ///
    /// # Errors
    /// The library's error naming the format, the option or the limit.
    pub fn parse(text: &str) -> Result<IoptFormat, SpecError> {
        let text = text.trim();
        if let Some(&d) = IoptFormat::defaults().iter().find(|d| d.name() == text) {
            return Ok(d);
        }
        IoptFormat::from_spec(text.parse()?)
    }

    /// The default subject called `name`.
    pub fn from_name(name: &str) -> Option<IoptFormat> {
        IoptFormat::defaults()
            .iter()
            .copied()
            .find(|d| d.name() == name)
    }

    fn with(name: Name, spec: FormatSpec, peer: Option<Peer>) -> Result<IoptFormat, SpecError> {
        let any = spec.build()?;
        let props = iopt::with_format!(any, f => probe(f));
        Ok(IoptFormat {
            name,
            spec,
            peer,
            props,
        })
    }

    /// The name on the command line and in reports.
    pub fn name(&self) -> Cow<'static, str> {
        match self.name {
            Name::Static(s) => Cow::Borrowed(s),
            Name::Spec => Cow::Owned(self.spec.to_string()),
        }
    }

    /// The spec.
    pub fn spec(&self) -> FormatSpec {
        self.spec
    }

    /// The properties of its table.
    pub fn props(&self) -> &Props {
        &self.props
    }

    /// One line on the configuration measured (the catalogue's description).
    pub fn describe(&self) -> String {
        let what = DEFAULTS
            .iter()
            .find(|d| Name::Static(d.name) == self.name)
            .map_or_else(
                || self.spec.family().help().to_owned(),
                |d| d.why.to_owned(),
            );
        format!("{what}: {} ({})", self.spec.describe(), self.spec)
    }

    /// The peer that does the same work with the same table layout, if any.
    pub fn peer(&self) -> Option<Subject> {
        self.peer.map(Peer::subject)
    }

    /// The page size of a "4K pages in one call" map: 4 KiB, or, where the spec turns
    /// on contiguous hints (`contig`), the smallest contiguous run of 4K entries (64 KiB
    /// on ARM64 4K: the same leaf tables).
    pub fn bulk_pgsize(&self) -> u64 {
        let runs = self.props.pgsize_bitmap & (self.props.leaf_table_span - 1) & !(2 * PAGE - 1);
        if option_on(&self.spec, "contig") == Some(true) && runs != 0 {
            1 << runs.trailing_zeros()
        } else {
            PAGE
        }
    }

    /// The largest `--size` the format takes, and why, if it has a limit below the
    /// benchmarks' own (64 GiB).
    pub fn max_size(&self) -> Option<(u64, String)> {
        let (max, why) = self.props.limit();
        (max < crate::MAX_SIZE).then_some((max, why))
    }

    /// Whether `size` bytes at [`IOVA_BASE`] fit.
    pub fn fits(&self, size: u64) -> bool {
        size <= self.props.limit().0
    }

    /// Why this format cannot do `w` at `size` bytes, or `None` if it can.
    pub fn why_not(&self, w: Workload, size: u64) -> Option<String> {
        let name = self.name();
        let props = &self.props;
        if !self.fits(size) {
            let (max, why) = props.limit();
            return Some(format!(
                "{name} takes at most --size {}, as {why}",
                human(max)
            ));
        }
        let extent = w.extent(&Params::new(size));
        if extent > props.limit().0 {
            let (max, why) = props.limit();
            return Some(format!(
                "{name} does not run {}: it uses {} of IOVA space from 0, and {name} takes at \
                 most {}, as {why}",
                w.name(),
                human(extent),
                human(max)
            ));
        }
        if w.maps_4k() && props.pgsize_bitmap & PAGE == 0 {
            return Some(format!(
                "{name} does not run {}: its smallest page is {}, and the workload maps 4K \
                 pages",
                w.name(),
                human(props.min_page()),
            ));
        }
        if matches!(w, Workload::W3 | Workload::W3u) && props.block_pgsize().is_none() {
            return Some(format!(
                "{name} does not run {}: it has no page of at most 2M mapped without a leaf \
                 table (its leaf tables span {})",
                w.name(),
                human(props.leaf_table_span)
            ));
        }
        // W7's premise is that unmapping a buffer leaves its leaf table in place: not so
        // where one buffer is a whole leaf table (armv7s), which the unmap frees.
        if matches!(w, Workload::W7 | Workload::W7u) && props.leaf_table_span <= crate::W7_BUFFER {
            return Some(format!(
                "{name} does not run {}: its leaf tables span {}, so the unmap of every {} \
                 buffer frees its table",
                w.name(),
                human(props.leaf_table_span),
                human(crate::W7_BUFFER)
            ));
        }
        None
    }

    /// Runs `w` once on a new table: one dispatch on the format type and the memory type
    /// (from [`Props::table_pa_bits`]), the workload monomorphised inside.
    pub(crate) fn run(&self, w: Workload, p: &Params) -> Sample {
        let bulk = self.bulk_pgsize();
        let any = self.spec.build().expect("a subject's spec builds");
        iopt::with_format!(any, f => {
            if f.table_pa_bits() >= HEAP_PA_BITS {
                iopt_runs::run::<_, HeapMemory>(f, bulk, w, p)
            } else {
                iopt_runs::run::<_, ArenaMemory>(f, bulk, w, p)
            }
        })
    }
}

/// Whether the on/off option `name` is on in `spec` (`None`: the family has no such
/// option), read from the spec's full text form.
fn option_on(spec: &FormatSpec, name: &str) -> Option<bool> {
    let full = format!("{spec:#}");
    let (_, options) = full.split_once(':')?;
    options.split(',').find_map(|o| {
        if o == name {
            Some(true)
        } else {
            o.strip_prefix("no-").filter(|o| *o == name).map(|_| false)
        }
    })
}

/// The properties of `fmt`, from an empty table of it.
fn probe<F: Format>(fmt: F) -> Props {
    let leaf_table_span = 1u64 << (fmt.item_lg2(0) + fmt.table_lg2(0));
    let table_pa_bits = fmt.table_pa_bits();
    let info = if table_pa_bits >= HEAP_PA_BITS {
        empty_info(fmt, HeapMemory::new())
    } else {
        empty_info(fmt, ArenaMemory::new(ARENA_BASE, PROBE_ARENA as usize))
    };
    Props {
        pgsize_bitmap: info.pgsize_bitmap,
        aperture: info.aperture,
        oa_bits: info.oa_bits,
        table_pa_bits,
        leaf_table_span,
    }
}

fn empty_info<F: Format, M: TableMemory>(fmt: F, mem: M) -> iopt::Info {
    PageTable::new(fmt, mem, NoFlush)
        .expect("an empty table of a format that builds")
        .info()
}

/// Arena bytes for the tables of a workload at `p` on `fmt`: for every level below the
/// top, a table per span the workloads' IOVAs touch (and one more at each end), plus the
/// top table and 1 MiB.
pub(crate) fn arena_bytes<F: Format>(fmt: &F, p: &Params) -> u64 {
    let extent = Workload::ALL
        .iter()
        .map(|w| w.extent(p))
        .max()
        .unwrap_or(p.size);
    let top = fmt.max_levels() - 1;
    let mut bytes = 1 << 20;
    for level in 0..top {
        let span_lg2 = fmt.item_lg2(level) + fmt.table_lg2(level);
        let table = 1u64 << (fmt.table_lg2(level) + F::ENTRY_LG2).max(fmt.min_table_bytes_lg2());
        bytes += ((extent >> span_lg2) + 2) * table;
    }
    let top_entries_lg2 = fmt.va_bits(top).saturating_sub(fmt.item_lg2(top));
    bytes + (1u64 << (top_entries_lg2 + F::ENTRY_LG2)) * 16
}

impl BenchMemory for ArenaMemory {
    fn for_format<F: Format>(fmt: &F, p: &Params) -> Self {
        let bytes = arena_bytes(fmt, p).next_multiple_of(64 << 10);
        let room = (1u64 << fmt.table_pa_bits().min(63)).saturating_sub(ARENA_BASE);
        ArenaMemory::new(ARENA_BASE, bytes.min(room) as usize)
    }
}

impl BenchMemory for HeapMemory {
    fn for_format<F: Format>(_: &F, _: &Params) -> Self {
        HeapMemory::new()
    }
}
