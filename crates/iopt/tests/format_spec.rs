//! The format catalogue (`iopt::spec`): the text form round-trips, every refused option
//! or limit is named, every catalogue entry builds a working table, and the catalogue
//! covers every format the library has.

use std::collections::BTreeSet;

use iopt::mem::ArenaMemory;
use iopt::spec::{AnyFormat, FormatSpec, FormatVisitor, SpecError};
use iopt::{Error, Format, Gather, NoFlush, PageTable, Prot, VaMode};

/// Simulated physical memory for table pages: below 4 GiB, for 32-bit table pointers.
const ARENA_BASE: u64 = 0x4000_0000;
const ARENA_BYTES: usize = 8 << 20;

fn parse(text: &str) -> FormatSpec {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
}

fn error_of(text: &str) -> SpecError {
    match text.parse::<FormatSpec>() {
        Ok(spec) => panic!("{text:?} parsed, as {spec}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Text form
// ---------------------------------------------------------------------------------------

#[test]
fn catalogue_texts_are_canonical_and_round_trip() {
    for entry in FormatSpec::catalogue() {
        let spec = parse(entry.text);
        assert_eq!(spec, entry.spec(), "{}", entry.label);
        let printed = spec.to_string();
        assert_eq!(printed, entry.text, "{}: not canonical", entry.label);
        assert_eq!(parse(&printed), spec, "{}", entry.label);
        // The full form names every option and means the same.
        let full = format!("{spec:#}");
        assert_eq!(parse(&full), spec, "{}: {full}", entry.label);
        assert_eq!(parse(&full).to_string(), printed, "{}", entry.label);
        let options = full
            .split_once(':')
            .map_or(0, |(_, o)| o.split(',').count());
        assert_eq!(
            options,
            spec.family().options().len(),
            "{}: {full}",
            entry.label
        );
        assert_eq!(spec.name(), entry.text.split(':').next().unwrap_or(""));
    }
}

#[test]
fn catalogue_labels_texts_and_specs_are_unique() {
    let cat = FormatSpec::catalogue();
    let labels: BTreeSet<&str> = cat.iter().map(|e| e.label).collect();
    assert_eq!(labels.len(), cat.len(), "duplicate label");
    let texts: BTreeSet<&str> = cat.iter().map(|e| e.text).collect();
    assert_eq!(texts.len(), cat.len(), "duplicate text");
    for (i, a) in cat.iter().enumerate() {
        for b in &cat[i + 1..] {
            assert_ne!(
                a.spec(),
                b.spec(),
                "{} and {} are one spec",
                a.label,
                b.label
            );
        }
    }
    for e in cat {
        assert!(e.label.starts_with(e.spec().name()), "{}", e.label);
    }
}

#[test]
fn family_defaults_print_as_the_bare_name() {
    for family in FormatSpec::families() {
        let spec = family.default_spec();
        assert_eq!(spec.to_string(), family.name());
        assert_eq!(parse(family.name()), spec);
        assert_eq!(parse(&format!("{spec:#}")), spec, "{}", family.name());
        assert!(std::ptr::eq(spec.family(), family));
    }
}

#[test]
fn non_canonical_texts_print_canonically() {
    for (text, canonical) in [
        // Defaults spelled out are dropped.
        ("arm64-s1:granule=4k,ias=48,oas=48", "arm64-s1"),
        ("arm64-s1:contig,coherent-walk,no-ttbr1,no-ns", "arm64-s1"),
        ("riscv:levels=5,svnapot", "riscv:levels=5"),
        ("amdv1:levels=3,max-levels=6", "amdv1"),
        // max-levels follows levels when the top is fixed.
        (
            "amdv1:levels=4,max-levels=4,no-dynamic-top",
            "amdv1:levels=4,no-dynamic-top",
        ),
        // oas follows the DART version.
        ("dart:version=2,oas=42", "dart:version=2"),
        ("dart:version=1,oas=36,regs=t8020", "dart"),
        ("amdv1:sme-c-bit=none", "amdv1"),
        // Options in the family's order, names and values in lower case.
        ("arm64-s2:ias=40,granule=16k", "arm64-s2:granule=16k,ias=40"),
        ("ARM64-S2:Granule=16K,IAS=40", "arm64-s2:granule=16k,ias=40"),
        ("dart:regs=T8110,version=v2", "dart:version=2,regs=t8110"),
        ("vtd-ss:no-1g,no-2m,levels=3", "vtd-ss:levels=3,no-2m,no-1g"),
        // Spaces and empty items are ignored.
        (
            "  x86-64 : levels = 5 , , no-sign-extend ",
            "x86-64:levels=5,no-sign-extend",
        ),
        ("mali:", "mali"),
        ("amdv1:oas=48,sme-c-bit=49", "amdv1:oas=48,sme-c-bit=49"),
    ] {
        let spec = parse(text);
        assert_eq!(spec.to_string(), canonical, "{text}");
        assert_eq!(parse(canonical), spec, "{text}");
    }
}

/// Every combination of a few values per option (or the option left out), for every
/// family: each accepted text prints a canonical form that is a fixed point and parses
/// back to the same spec, as does the full form.
#[test]
fn every_option_combination_round_trips() {
    fn candidates(option: &str) -> &'static [&'static str] {
        match option {
            "granule" => &["4k", "16k", "64k"],
            "ias" => &["32", "40", "48", "52"],
            "oas" => &["36", "40", "42", "48", "52"],
            "levels" => &["1", "3", "4", "5"],
            "max-levels" => &["4", "6"],
            "version" => &["1", "2"],
            "regs" => &["t8020", "t8110"],
            "sme-c-bit" => &["none", "51"],
            "bbml" => &["0", "2", "3"],
            other => panic!("no candidate values for option {other}"),
        }
    }
    for family in FormatSpec::families() {
        // The items each option may contribute; "" leaves it out.
        let choices: Vec<Vec<String>> = family
            .options()
            .iter()
            .map(|o| {
                let mut c = vec![String::new()];
                if o.is_flag() {
                    c.push(o.name().to_owned());
                    c.push(format!("no-{}", o.name()));
                } else {
                    c.extend(
                        candidates(o.name())
                            .iter()
                            .map(|v| format!("{}={v}", o.name())),
                    );
                }
                c
            })
            .collect();
        let mut index = vec![0usize; choices.len()];
        let (mut accepted, mut distinct) = (0, BTreeSet::new());
        loop {
            let items: Vec<&str> = index
                .iter()
                .zip(&choices)
                .map(|(&i, c)| c[i].as_str())
                .filter(|i| !i.is_empty())
                .collect();
            let text = format!("{}:{}", family.name(), items.join(","));
            if let Ok(spec) = text.parse::<FormatSpec>() {
                accepted += 1;
                let canonical = spec.to_string();
                assert_eq!(parse(&canonical), spec, "{text} -> {canonical}");
                assert_eq!(parse(&canonical).to_string(), canonical, "{text}");
                assert_eq!(parse(&format!("{spec:#}")), spec, "{text}");
                distinct.insert(canonical);
            }
            // Next combination (odometer order).
            let mut k = 0;
            while k < index.len() {
                index[k] += 1;
                if index[k] < choices[k].len() {
                    break;
                }
                index[k] = 0;
                k += 1;
            }
            if k == index.len() {
                break;
            }
        }
        assert!(accepted > 0 && distinct.len() > 1, "{}", family.name());
    }
}

/// Specs built from configurations (not parsed) print and parse back too.
#[test]
fn constructed_specs_round_trip() {
    use iopt::fmt::amdv1::AmdV1Config;
    use iopt::fmt::arm_lpae::{ArmLpaeConfig, Granule, Stage};
    use iopt::fmt::dart::{DartConfig, DartRegs};
    use iopt::fmt::x86_64::X86_64Config;
    let specs = [
        FormatSpec::Arm64(ArmLpaeConfig {
            stage: Stage::S2,
            granule: Granule::K16,
            ias: 42,
            oas: 44,
            contiguous: false,
            coherent_walk: false,
            ttbr1: false,
            ns: false,
            dirty_tracking: true,
            bbm_level: 2,
        }),
        FormatSpec::AmdV1(AmdV1Config {
            levels: 2,
            max_levels: 5,
            oa_bits: 44,
            sme_c_bit: Some(47),
            force_coherence: false,
            dirty_tracking: true,
            dynamic_top: true,
        }),
        FormatSpec::Dart(DartConfig {
            regs: DartRegs::T8110,
            ias: 36,
            ..DartConfig::t8103()
        }),
        FormatSpec::X86_64(X86_64Config {
            oa_bits: 46,
            sme_c_bit: Some(47),
            dirty_tracking: true,
            ..X86_64Config::default()
        }),
        FormatSpec::Arm32(iopt::fmt::arm32_lpae::Arm32LpaeConfig {
            dirty_tracking: true,
            ..Default::default()
        }),
    ];
    for spec in specs {
        let text = spec.to_string();
        assert_eq!(parse(&text), spec, "{text}");
        assert_eq!(parse(&format!("{spec:#}")), spec, "{text}");
        assert!(spec.build().is_ok(), "{text}");
    }
    assert_eq!(
        specs[0].to_string(),
        "arm64-s2:granule=16k,ias=42,oas=44,no-contig,no-coherent-walk,dirty-tracking,bbml=2"
    );
    assert_eq!(
        specs[3].to_string(),
        "x86-64:oas=46,sme-c-bit=47,dirty-tracking"
    );
    assert_eq!(specs[4].to_string(), "arm32-s1:dirty-tracking");
    assert_eq!(specs[2].to_string(), "dart:ias=36,regs=t8110");
}

/// What the option table says about defaults is what parsing does.
#[test]
fn option_table_defaults_match_the_formats() {
    for family in FormatSpec::families() {
        let default = family.default_spec();
        let mut names = BTreeSet::new();
        assert!(!family.help().is_empty());
        for opt in family.options() {
            assert!(
                names.insert(opt.name()),
                "{}: {} twice",
                family.name(),
                opt.name()
            );
            assert!(!opt.help().is_empty() && !opt.values().is_empty());
            assert!(std::ptr::eq(family.option(opt.name()).unwrap(), opt));
            let text = |s: &str| format!("{}:{s}", family.name());
            if opt.is_flag() {
                let on = opt.default_on().unwrap_or_else(|| {
                    panic!("{}: {} has no on/off default", family.name(), opt.name())
                });
                let same = if on {
                    opt.name().to_owned()
                } else {
                    format!("no-{}", opt.name())
                };
                let other = if on {
                    format!("no-{}", opt.name())
                } else {
                    opt.name().to_owned()
                };
                assert_eq!(parse(&text(&same)), default, "{}", text(&same));
                // The other value either changes the spec or is refused by the format.
                if let Ok(s) = text(&other).parse::<FormatSpec>() {
                    assert_ne!(s, default, "{}", text(&other));
                }
            } else {
                assert_eq!(opt.default_on(), None);
                // A plain default value parses to the default spec.
                if let Ok(s) =
                    text(&format!("{}={}", opt.name(), opt.default_text())).parse::<FormatSpec>()
                {
                    assert_eq!(s, default, "{}: {}", family.name(), opt.name());
                } else {
                    // Defaults in words: the family's default depends on other options.
                    assert!(
                        opt.default_text().contains(' '),
                        "{}: {}",
                        family.name(),
                        opt.name()
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Every option of every family: a bad value, a missing value or a value for an on/off
/// option, a duplicate, and the option under another family are refused by name.
#[test]
fn every_option_refuses_bad_input_by_name() {
    for family in FormatSpec::families() {
        let f = family.name();
        for opt in family.options() {
            let o = opt.name();
            if opt.is_flag() {
                let e = error_of(&format!("{f}:{o}=yes"));
                assert!(
                    matches!(e, SpecError::FlagWithValue { option, .. } if option == o),
                    "{f}:{o}: {e:?}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("`{o}=yes`")) && msg.contains(&format!("no-{o}")),
                    "{msg}"
                );
                let e = error_of(&format!("{f}:{o},no-{o}"));
                assert_eq!(
                    e,
                    SpecError::DuplicateOption {
                        format: f,
                        option: o
                    }
                );
                assert!(
                    e.to_string()
                        .contains(&format!("`{o}` is given more than once"))
                );
            } else {
                let e = error_of(&format!("{f}:{o}=zz9"));
                assert!(
                    matches!(e, SpecError::BadValue { option, expected, .. }
                        if option == o && expected == opt.values()),
                    "{f}:{o}: {e:?}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("`{o}=zz9`")) && msg.contains(opt.values()),
                    "{msg}"
                );
                let e = error_of(&format!("{f}:{o}"));
                assert!(
                    matches!(e, SpecError::MissingValue { option, .. } if option == o),
                    "{e:?}"
                );
                assert!(e.to_string().contains(&format!("{o}=VALUE")), "{e}");
                // Only on/off options have a `no-` form.
                let e = error_of(&format!("{f}:no-{o}"));
                assert!(matches!(e, SpecError::UnknownOption { .. }), "{e:?}");
                assert!(e.to_string().contains(&format!("`no-{o}`")), "{e}");
            }
            // An option of another family is refused here, naming both.
            for other in FormatSpec::families() {
                if other.option(o).is_none() {
                    let value = if opt.is_flag() {
                        String::new()
                    } else {
                        "=1".to_owned()
                    };
                    let e = error_of(&format!("{}:{o}{value}", other.name()));
                    assert!(
                        matches!(e, SpecError::UnknownOption { format, option } if format == other.name() && option.as_str() == o),
                        "{e:?}"
                    );
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!("{} has no option `{o}`", other.name())),
                        "{msg}"
                    );
                }
            }
        }
    }
}

/// Limits the formats' constructors enforce: the error names the option and the limit,
/// shows the spec as written and the whole configuration (the values of the defaults).
#[test]
fn limits_name_the_option_and_the_limit() {
    for (text, limit) in [
        ("arm64-s1:ias=52", "ias must be 32..=48"),
        ("arm64-s1:ias=31", "ias must be 32..=48"),
        ("arm64-s1:oas=39", "oas must be 32, 36, 40, 42, 44 or 48"),
        ("arm64-s1:oas=64", "oas must be 32..=48"),
        ("arm64-s1:oas=52", "oas 52 needs the 64K granule (FEAT_LPA)"),
        ("arm64-s1:granule=64k,ias=53,oas=52", "ias must be 32..=52"),
        ("arm64-s2:ttbr1", "ttbr1 is a stage 1 option"),
        ("arm64-s2:ns", "ns is a stage 1 option"),
        (
            "arm64-s2:granule=64k,oas=40",
            "concatenating would need more than 16 tables",
        ),
        ("arm32-s1:ias=40", "ias must be 25..=32 at stage 1"),
        ("arm32-s2:ias=41", "ias must be 25..=40 at stage 2"),
        ("arm32-s1:oas=48", "oas must be 32, 36 or 40"),
        ("mali:oas=48", "oas must be 32..=40"),
        ("amdv1:levels=0", "levels must be 1..=6"),
        ("amdv1:levels=7,max-levels=7", "levels must be 1..=6"),
        ("amdv1:max-levels=7", "max_levels must be 1..=6"),
        (
            "amdv1:levels=4,max-levels=3",
            "max_levels must be >= levels",
        ),
        (
            "amdv1:max-levels=6,no-dynamic-top",
            "max_levels must equal levels when dynamic_top is false",
        ),
        ("amdv1:oas=53", "oa_bits must be 32..=52"),
        (
            "amdv1:oas=48,sme-c-bit=47",
            "sme_c_bit must be oa_bits..=51",
        ),
        ("x86-64:levels=3", "levels must be 4 or 5"),
        ("x86-64:oas=31", "oa_bits must be 32..=52"),
        ("x86-64:sme-c-bit=63", "sme_c_bit must be oa_bits..=51"),
        ("armv7s:oas=40", "oa_bits must be 32"),
        ("vtd-ss:levels=2", "levels must be 3, 4 or 5"),
        ("vtd-ss:oas=53", "oa_bits must be 32..=52"),
        ("dart:granule=64k", "granule must be 4K or 16K"),
        ("dart:oas=40", "oas must be 36 or 42"),
        ("dart:oas=42", "DART v1 oas must be 36"),
        ("dart:version=2,granule=4k", "DART v2 needs the 16K granule"),
        (
            "dart:granule=4k,regs=t8110",
            "T8110 registers need the 16K granule",
        ),
        ("dart:ias=31", "ias must be 32..=oas (oas is 36 here)"),
        (
            "dart:regs=t8110,ias=42",
            "ias must be 32..=oas (oas is 36 here)",
        ),
        (
            "dart:version=2,ias=43,regs=t8110",
            "ias must be 32..=oas (oas is 42 here)",
        ),
        (
            "dart:version=2,ias=40",
            "T8020 registers have no 4-level mode",
        ),
        ("riscv:levels=6", "levels must be 3, 4 or 5"),
        ("riscv:oas=57", "oa_bits must be 32..=56"),
    ] {
        let e = error_of(text);
        let SpecError::Config {
            spec,
            error: Error::BadConfig(msg),
        } = e
        else {
            panic!("{text}: {e:?}");
        };
        assert!(msg.contains(limit), "{text}: {msg}");
        assert!(spec.build().is_err());
        let shown = e.to_string();
        assert!(shown.contains(limit), "{shown}");
        assert!(shown.starts_with(&format!("{spec}: ")), "{shown}");
        assert!(shown.contains(&format!("{spec:#}")), "{shown}");
    }
    // The case of the issue: T8110 registers on the default (v1, 36-bit) DART.
    let shown = error_of("dart:regs=t8110,ias=42").to_string();
    assert!(
        shown.contains("ias=42") && shown.contains("oas=36"),
        "{shown}"
    );
}

#[test]
fn names_and_syntax_are_checked() {
    assert_eq!(error_of(""), SpecError::Empty);
    assert_eq!(error_of("  "), SpecError::Empty);
    assert_eq!(error_of(":ias=40"), SpecError::Empty);
    let e = error_of("sparc:ias=40");
    assert!(matches!(e, SpecError::UnknownFormat { name } if name.as_str() == "sparc"));
    let msg = e.to_string();
    for family in FormatSpec::families() {
        assert!(msg.contains(family.name()), "{msg}");
    }
    let e = error_of("amdv1:granule=16k").to_string();
    assert!(e.contains("amdv1 has no option `granule`"), "{e}");
    assert!(e.contains("levels=..., max-levels=..."), "{e}");
    assert!(e.contains("dynamic-top / no-dynamic-top"), "{e}");
    // Duplicates, also as value options and across the two spellings of a flag.
    assert_eq!(
        error_of("arm64-s1:ias=40,ias=40"),
        SpecError::DuplicateOption {
            format: "arm64-s1",
            option: "ias"
        }
    );
    assert_eq!(
        error_of("riscv:no-svnapot,svnapot"),
        SpecError::DuplicateOption {
            format: "riscv",
            option: "svnapot"
        }
    );
    // Values out of the number range are bad values, not panics.
    let e = error_of("x86-64:levels=99999999999");
    assert!(
        matches!(
            e,
            SpecError::BadValue {
                option: "levels",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        error_of("x86-64:levels=-4"),
        SpecError::BadValue { .. }
    ));
    // Long or non-ASCII text is kept in part, never split inside a character.
    let long = "é".repeat(60);
    let e = error_of(&long);
    let SpecError::UnknownFormat { name } = e else {
        panic!("{e:?}");
    };
    assert!(long.starts_with(name.as_str()) && name.as_str().len() <= 40);
    assert!(
        e.to_string().contains(&format!("`{}...`", name.as_str())),
        "{e}"
    );
    let e = error_of(&format!("arm64-s1:granule={long}"));
    assert!(e.to_string().contains("..."), "{e}");
}

// ---------------------------------------------------------------------------------------
// Every entry builds a working table
// ---------------------------------------------------------------------------------------

/// Maps, translates and unmaps one smallest page at the bottom and one at the top of
/// the aperture (the upper half too for sign-extended formats).
fn one_page<F: Format>(label: &str, fmt: F, any: AnyFormat) {
    let mem = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    // The arena is reachable by every format's table pointers.
    assert!(
        ARENA_BASE + ARENA_BYTES as u64 <= 1 << any.table_pa_bits().min(63),
        "{label}"
    );
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap_or_else(|e| panic!("{label}: {e}"));
    let info = pt.info();
    assert_eq!(info.oa_bits, any.oa_bits(), "{label}");
    assert_eq!(info.levels, any.levels(), "{label}");
    assert_eq!(info.max_levels, any.max_levels(), "{label}");
    assert_eq!(
        info.aperture.upper.is_some(),
        any.va_mode() == VaMode::SignExtended,
        "{label}"
    );
    let pgsize = 1u64 << info.pgsize_bitmap.trailing_zeros();
    let pa = pgsize * 3;
    let ap = info.aperture;
    let mut iovas = vec![ap.start, ap.last - (pgsize - 1)];
    iovas.extend(ap.upper.map(|(start, _)| start));
    let mut g = Gather::new();
    for iova in iovas {
        // SAFETY: the table is used by this thread only and no hardware walks it.
        let mapped = unsafe { pt.map_pages(iova, pa, pgsize, 1, Prot::READ | Prot::WRITE) };
        assert_eq!(mapped, (pgsize, Ok(())), "{label}: map at {iova:#x}");
        // SAFETY: as above.
        let t = unsafe { pt.translate(iova + 1) }
            .unwrap_or_else(|| panic!("{label}: {iova:#x} not mapped"));
        assert_eq!(
            (t.pa, t.iova_base, t.size),
            (pa + 1, iova, pgsize),
            "{label}"
        );
        assert!(
            t.prot.contains(Prot::READ | Prot::WRITE),
            "{label}: {:?}",
            t.prot
        );
        // SAFETY: as above.
        let unmapped = unsafe { pt.unmap_pages(iova, pgsize, 1, &mut g) };
        pt.sync(&mut g);
        assert_eq!(unmapped, (pgsize, Ok(())), "{label}: unmap at {iova:#x}");
        // SAFETY: as above.
        assert_eq!(unsafe { pt.translate(iova) }, None, "{label}");
    }
}

struct OnePage<'a>(&'a str, AnyFormat);

impl FormatVisitor for OnePage<'_> {
    type Output = ();
    fn visit<F: Format>(self, fmt: F) {
        one_page(self.0, fmt, self.1);
    }
}

#[test]
fn every_catalogue_entry_maps_translates_and_unmaps() {
    for entry in FormatSpec::catalogue() {
        let any = entry
            .spec()
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.label));
        any.visit(OnePage(entry.label, any));
        let described = entry.spec().describe().to_string();
        assert!(
            !described.starts_with("refused"),
            "{}: {described}",
            entry.label
        );
    }
}

#[test]
fn any_format_reports_what_only_the_type_knows() {
    let any = |t: &str| parse(t).build().unwrap_or_else(|e| panic!("{t}: {e}"));
    assert_eq!(any("armv7s").table_pa_bits(), 32);
    assert_eq!(any("x86-64").table_pa_bits(), 52);
    assert_eq!(any("arm64-s1:ttbr1").va_mode(), VaMode::High);
    assert_eq!(any("riscv").va_mode(), VaMode::SignExtended);
    assert_eq!(any("riscv:no-sign-extend").va_mode(), VaMode::Low);
    assert!(any("vtd-ss:dirty-tracking").tracks_dirty());
    assert!(!any("vtd-ss").tracks_dirty());
    assert_eq!(
        (
            any("amdv1:levels=1").levels(),
            any("amdv1:levels=1").max_levels()
        ),
        (1, 6)
    );
    assert_eq!(any("arm64-s1").name(), "arm64-lpae");
    assert_eq!(any("arm64-s1:granule=64k,oas=52").name(), "arm64-lpae52");
    assert!(matches!(
        any("arm64-s2:granule=64k,oas=52,ias=44"),
        AnyFormat::ArmLpae52(_)
    ));
    assert!(matches!(any("arm32-s2:ias=40"), AnyFormat::Arm32Lpae(_)));
    // The visitor and the macro see the same concrete type.
    struct Name;
    impl FormatVisitor for Name {
        type Output = &'static str;
        fn visit<F: Format>(self, _: F) -> &'static str {
            F::NAME
        }
    }
    for entry in FormatSpec::catalogue() {
        let f = entry.spec().build().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.visit(Name), f.name());
        fn type_name_of<T>(_: &T) -> &'static str {
            std::any::type_name::<T>()
        }
        assert_eq!(
            iopt::with_format!(f, g => type_name_of(&g)),
            f.visit(TypeName)
        );
    }
}

#[test]
fn descriptions() {
    for (text, words) in [
        (
            "arm64-s1",
            "stage 1, 4K granule, ias 48, oas 48, start level 0, TTBR0, contiguous hints, coherent walk",
        ),
        (
            "arm32-s2:ias=40,no-coherent-walk",
            "AArch32 stage 2, 4K granule, ias 40, oas 40, start level 1, contiguous hints, non-coherent walk",
        ),
        (
            "amdv1:levels=4,no-dynamic-top",
            "4 levels, fixed top, oas 52, force coherent",
        ),
        (
            "vtd-ss:levels=5,no-2m,dirty-tracking",
            "5 levels, oas 52, large pages: 1G, dirty tracking",
        ),
        (
            "dart:granule=4k",
            "v1, 4K granule, ias 32, oas 36, T8020 registers, 4 TTBRs",
        ),
        (
            "dart:version=2,regs=t8110,ias=42",
            "v2, 16K granule, ias 42, oas 42, T8110 registers, 1 TTBR",
        ),
        (
            "riscv:levels=5,no-sign-extend,no-svnapot,svpbmt",
            "Sv57, oas 56, lower half only, Svpbmt",
        ),
        ("armv7s:ns", "oas 32, non-secure, non-coherent walk"),
        (
            "mali:coherent-walk",
            "4K granule, ias 48, oas 40, 4 levels, coherent walk",
        ),
        ("x86-64:no-sign-extend", "4 levels, oas 52, lower half only"),
    ] {
        assert_eq!(parse(text).describe().to_string(), words, "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// The catalogue covers the library
// ---------------------------------------------------------------------------------------

fn source(rel: &str) -> String {
    let path = format!("{}/src/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The format modules `fmt/mod.rs` declares (all but the shared helpers).
fn format_modules() -> Vec<String> {
    let modules: Vec<String> = source("fmt/mod.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';'))
        .filter(|m| *m != "common")
        .map(str::to_owned)
        .collect();
    assert!(modules.len() >= 9, "{modules:?}");
    modules
}

/// The format types a module defines, as the tails of their `type_name`s: `::T` for an
/// `impl Format for T`, `::module::Flavour>` for a `pub type X = Lpae<Flavour>`.
fn format_types(module: &str) -> Vec<String> {
    let text = source(&format!("fmt/{module}.rs"));
    let mut types = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("impl Format for ") {
            let name = rest.split_whitespace().next().unwrap_or(rest);
            types.push(format!("::{module}::{name}"));
        }
        if let Some(rest) = line.strip_prefix("pub type ")
            && let Some((_, target)) = rest.split_once("= Lpae<")
        {
            let flavour = target.trim_end_matches(';').trim_end_matches('>');
            types.push(format!("::{module}::{flavour}>"));
        }
    }
    types
}

struct TypeName;

impl FormatVisitor for TypeName {
    type Output = &'static str;
    fn visit<F: Format>(self, _: F) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// Fails when a format module or type is added to the library but not to the catalogue
/// (and its family table), or when a family has no catalogue entry.
#[test]
fn catalogue_covers_every_format_module_and_type() {
    let built: Vec<(&str, &'static str, bool)> = FormatSpec::catalogue()
        .iter()
        .map(|e| {
            (
                e.label,
                e.spec().build().map_or("", |f| f.visit(TypeName)),
                e.demo,
            )
        })
        .collect();
    let mut all_types = 0;
    for module in format_modules() {
        assert!(
            FormatSpec::families().iter().any(|f| f.module() == module),
            "fmt::{module} has no family in iopt::spec"
        );
        let types = format_types(&module);
        assert!(!types.is_empty(), "fmt::{module} defines no format type?");
        for ty in types {
            all_types += 1;
            assert!(
                built.iter().any(|(_, t, _)| t.ends_with(&ty)),
                "no catalogue entry builds the format type {ty} of fmt::{module}"
            );
            assert!(
                built.iter().any(|(_, t, demo)| *demo && t.ends_with(&ty)),
                "the demo has no table of the format type {ty}"
            );
        }
    }
    // Every family with dirty tracking has a demonstration table that tracks dirty.
    for family in FormatSpec::families() {
        let of = |e: &&iopt::spec::CatalogueEntry| e.spec().name() == family.name();
        let entries: Vec<_> = FormatSpec::catalogue().iter().filter(of).collect();
        if entries
            .iter()
            .any(|e| e.spec().build().unwrap().tracks_dirty())
        {
            assert!(
                entries
                    .iter()
                    .any(|e| e.demo && e.spec().build().unwrap().tracks_dirty()),
                "the demo has no dirty-tracking table of {}",
                family.name()
            );
        }
    }
    // Every type the catalogue builds was found in the sources (the scan works).
    let distinct: BTreeSet<&str> = built.iter().map(|(_, t, _)| *t).collect();
    assert_eq!(distinct.len(), all_types, "{distinct:?}");
    for family in FormatSpec::families() {
        assert!(
            FormatSpec::catalogue()
                .iter()
                .any(|e| e.spec().family() == family),
            "family {} has no catalogue entry",
            family.name()
        );
    }
}
