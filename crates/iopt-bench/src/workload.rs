//! The workloads, and which subject takes part in which.

use std::borrow::Cow;

use crate::formats::IoptFormat;
use crate::ops::{w5_end, w5_ops};
use crate::units::size as human;
use crate::{BLOCK, IOVA_BASE, PAGE, Params, W7_BUFFER, W7_SLOTS};

/// Something that builds page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// iopt with one of its formats (raw API; W6: the concurrent handle).
    Iopt(IoptFormat),
    /// The `aarch64-paging` crate: `RootTable` with a 48-bit (level 0) root, stage 1,
    /// no contiguous hints; `NO_BLOCK_MAPPINGS` where the workload maps 4K pages.
    Aarch64Paging,
    /// The `x86_64` crate: `OffsetPageTable` with `Mapper::map_to` / `unmap`.
    #[cfg(target_pointer_width = "64")]
    X86_64Crate,
    /// Plain fill of the same entry bytes: the entry values written with a loop into
    /// preallocated, pre-touched 4 KiB-aligned pages (a lower bound, not a page table).
    Fill,
}

impl Subject {
    /// Every default subject: iopt's default formats, then the peers and the fill.
    pub fn all() -> Vec<Subject> {
        let mut v: Vec<Subject> = IoptFormat::defaults()
            .iter()
            .map(|&f| Subject::Iopt(f))
            .collect();
        v.push(Subject::Aarch64Paging);
        #[cfg(target_pointer_width = "64")]
        v.push(Subject::X86_64Crate);
        v.push(Subject::Fill);
        v
    }

    /// The name in reports.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            Subject::Iopt(f) => f.name(),
            Subject::Aarch64Paging => "aarch64-paging".into(),
            #[cfg(target_pointer_width = "64")]
            Subject::X86_64Crate => "x86_64 crate".into(),
            Subject::Fill => "fill".into(),
        }
    }

    /// The default subject with this [`name`](Self::name) (`-` accepted for a space).
    pub fn from_name(name: &str) -> Option<Subject> {
        Subject::all()
            .into_iter()
            .find(|s| s.name() == name || s.name().replace(' ', "-") == name)
    }

    /// Whether this subject can do `workload` at `size` bytes.
    pub fn can_run(self, workload: Workload, size: u64) -> bool {
        use Workload::*;
        match self {
            Subject::Iopt(f) => f.why_not(workload, size).is_none(),
            Subject::Aarch64Paging => !matches!(workload, W6 | W6Single),
            #[cfg(target_pointer_width = "64")]
            Subject::X86_64Crate => !matches!(workload, W6 | W6Single),
            Subject::Fill => matches!(workload, W1 | W2 | W2e | W3 | W7 | W7u),
        }
    }

    /// Why this subject cannot do `workload` at `size` bytes, or `None` if it can.
    pub fn why_not(self, workload: Workload, size: u64) -> Option<String> {
        match self {
            Subject::Iopt(f) => f.why_not(workload, size),
            _ if self.can_run(workload, size) => None,
            _ => Some(format!("{} does not run {}", self.name(), workload.name())),
        }
    }

    /// How this subject does `workload` differently from the others, if it does.
    pub fn note(self, workload: Workload) -> Option<&'static str> {
        match (self, workload) {
            #[cfg(target_pointer_width = "64")]
            (Subject::X86_64Crate, Workload::W2 | Workload::W2e | Workload::W7) => {
                Some("per-page map_to: no range API")
            }
            #[cfg(target_pointer_width = "64")]
            (Subject::X86_64Crate, Workload::W2u | Workload::W7u) => {
                Some("per-page unmap: no range API")
            }
            _ => None,
        }
    }
}

/// A benchmark workload. `u` variants unmap what the workload before them mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Map `size` bytes of 4K pages, one page per call.
    W1,
    /// Unmap the W1 table, one page per call.
    W1u,
    /// Map `size` bytes of 4K pages in one call.
    W2,
    /// Unmap the W2 table in one call (and free the tables it empties).
    W2u,
    /// W2 after W1u: the one-call map of W2 into the empty leaf tables that a page-by-page
    /// unmap leaves behind.
    W2e,
    /// Map `size / 2M` 2 MiB blocks, one per call.
    W3,
    /// Unmap them, one per call.
    W3u,
    /// Translate pseudo-random IOVAs in the W2 table.
    W4,
    /// A mixed driver workload: streaming map/unmap pairs of 1-16 pages at recycled
    /// IOVAs, interleaved with 64 KiB and 2 MiB buffers.
    W5,
    /// Two threads mapping and unmapping 4K pages in disjoint ranges of one
    /// [`SharedTable`](iopt::SharedTable), one range guard per 64 KiB window of 16 pages.
    W6,
    /// The same operations as W6 done by one thread (W6's reference).
    W6Single,
    /// A driver's streaming DMA path: 1 MiB buffers (256 4K pages) mapped in one call
    /// each, at 64 recycled 1 MiB-aligned slots whose leaf tables are already there.
    W7,
    /// The unmaps of W7: one call (and a `sync`) per 1 MiB buffer.
    W7u,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 13] = [
        Workload::W1,
        Workload::W1u,
        Workload::W2,
        Workload::W2u,
        Workload::W2e,
        Workload::W3,
        Workload::W3u,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W6Single,
        Workload::W7,
        Workload::W7u,
    ];

    /// The short name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W1u => "W1u",
            Workload::W2 => "W2",
            Workload::W2u => "W2u",
            Workload::W2e => "W2e",
            Workload::W3 => "W3",
            Workload::W3u => "W3u",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W6Single => "W6-1",
            Workload::W7 => "W7",
            Workload::W7u => "W7u",
        }
    }

    /// The workload with this [`name`](Self::name) (any case).
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(name))
    }

    /// The group it is selected by on the command line (`iopt bench --workload`): a map
    /// workload and the unmap of what it mapped go together.
    pub fn group(self) -> &'static str {
        match self {
            Workload::W1 | Workload::W1u => "w1",
            Workload::W2 | Workload::W2u => "w2",
            Workload::W2e => "w2e",
            Workload::W3 | Workload::W3u => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
            Workload::W6 | Workload::W6Single => "w6",
            Workload::W7 | Workload::W7u => "w7",
        }
    }

    /// Every [`group`](Self::group), in report order.
    pub fn groups() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Workload::ALL.iter().map(|w| w.group()).collect();
        v.dedup();
        v
    }

    /// What one operation is, for "ns per op".
    pub fn op(self) -> &'static str {
        match self {
            Workload::W1
            | Workload::W1u
            | Workload::W2
            | Workload::W2u
            | Workload::W2e
            | Workload::W7
            | Workload::W7u => "4K page",
            Workload::W3 | Workload::W3u => "2M block",
            Workload::W4 => "lookup",
            Workload::W5 => "map or unmap call",
            Workload::W6 | Workload::W6Single => "4K page map or unmap",
        }
    }

    /// One line on what it does at `p`.
    pub fn describe(self, p: &Params) -> String {
        let size = human(p.size);
        let buffers = p.w7_rounds() * W7_SLOTS;
        let buffer = human(W7_BUFFER);
        match self {
            Workload::W1 => format!("map {size} of 4K pages, 1 page per call"),
            Workload::W1u => format!("unmap {size} of 4K pages, 1 page per call"),
            Workload::W2 => format!("map {size} of 4K pages in 1 call"),
            Workload::W2u => format!("unmap {size} of 4K pages in 1 call"),
            Workload::W2e => format!("map {size} of 4K pages in 1 call into emptied tables"),
            Workload::W3 => format!("map {} 2M blocks, 1 per call", p.blocks()),
            Workload::W3u => format!("unmap {} 2M blocks, 1 per call", p.blocks()),
            Workload::W4 => format!("{} random lookups in {size}", p.lookups()),
            Workload::W5 => format!("mixed driver ops ({} ops)", w5_ops(p).len()),
            Workload::W6 => format!("2 threads, {} 4K map+unmap", p.w6_pages()),
            Workload::W6Single => format!("1 thread, {} 4K map+unmap", p.w6_pages()),
            Workload::W7 => {
                format!("map {buffers} {buffer} buffers, 1 call each, at {W7_SLOTS} warm slots")
            }
            Workload::W7u => format!(
                "unmap {buffers} {buffer} buffers, 1 call + sync each, at {W7_SLOTS} warm slots"
            ),
        }
    }

    /// Whether it maps 4K pages (W4: looks up in a table of them); W3 maps 2 MiB blocks.
    pub fn maps_4k(self) -> bool {
        !matches!(self, Workload::W3 | Workload::W3u)
    }

    /// Bytes of IOVA space from [`IOVA_BASE`] it uses at `p`.
    pub fn extent(self, p: &Params) -> u64 {
        match self {
            Workload::W1
            | Workload::W1u
            | Workload::W2
            | Workload::W2u
            | Workload::W2e
            | Workload::W4 => p.size,
            Workload::W3 | Workload::W3u => p.blocks() * BLOCK,
            Workload::W5 => w5_end() - IOVA_BASE,
            Workload::W6 | Workload::W6Single => p.w6_pages() * PAGE,
            Workload::W7 | Workload::W7u => W7_SLOTS * W7_BUFFER,
        }
    }

    /// The default subjects that take part, in report order (iopt first).
    pub fn subjects(self) -> Vec<Subject> {
        let mut v = Subject::all();
        v.retain(|s| s.can_run(self, 0));
        v
    }
}
