//! The command line's format selection: `--format SPEC` (the library's
//! [`FormatSpec`] text form, e.g. `arm64-s2:granule=16k,ias=40`) plus the separate
//! option flags, which are the same options spelled as flags (`--ias 40` is `ias=40`).
//!
//! A flag given to a format that has no such option, or that only sets the format's
//! default (`--coherent-walk` on arm64, whose walks are coherent unless
//! `--incoherent-walk`), is a usage error, so that a typo never silently changes
//! nothing. Everything else is checked by the library, whose errors name the limit.

use clap::{Args, Command};
use iopt::spec::{Family, FormatSpec, SpecError};

/// The format option flags. Unset options take the format's defaults; see `iopt info
/// --list` for every option of every format. [`annotate`] adds the formats each flag
/// applies to to its help, from the library's table.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatOptions {
    /// Translation granule: 4k, 16k or 64k.
    #[arg(long, value_name = "SIZE")]
    pub granule: Option<String>,
    /// Input address size in bits.
    #[arg(long, value_name = "BITS")]
    pub ias: Option<u32>,
    /// Output address size in bits (arm64: 52 selects the 52-bit format, 64k granule
    /// only).
    #[arg(long, value_name = "BITS")]
    pub oas: Option<u32>,
    /// Translate the upper half of the address space (TTBR1; stage 1 only).
    #[arg(long)]
    pub ttbr1: bool,
    /// Set the non-secure bits (ARM LPAE: stage 1 only).
    #[arg(long)]
    pub ns: bool,
    /// Do not use contiguous-hint runs.
    #[arg(long)]
    pub no_contig: bool,
    /// The IOMMU's table walks do not snoop the CPU caches.
    #[arg(long)]
    pub incoherent_walk: bool,
    /// The table walks are coherent with the CPU caches.
    #[arg(long)]
    pub coherent_walk: bool,
    /// Levels (at creation, for a table whose top grows).
    #[arg(long, value_name = "N")]
    pub levels: Option<u32>,
    /// Most levels the table may grow to.
    #[arg(long, value_name = "N")]
    pub max_levels: Option<u32>,
    /// The top level never grows.
    #[arg(long)]
    pub no_dynamic_top: bool,
    /// Translate only the lower half, without sign extension.
    #[arg(long)]
    pub no_sign_extend: bool,
    /// Hardware dirty tracking.
    #[arg(long)]
    pub dirty_tracking: bool,
    /// The IOMMU has no 2 MiB pages (CAP.SLLPS bit 0 clear).
    #[arg(long)]
    pub no_2m: bool,
    /// The IOMMU has no 1 GiB pages (CAP.SLLPS bit 1 clear).
    #[arg(long)]
    pub no_1g: bool,
    /// Entry format: 1 or 2 (spec option `version`).
    #[arg(long, value_name = "VERSION")]
    pub dart_version: Option<String>,
    /// Register block the TTBR/TCR words are for: t8020 or t8110 (spec option
    /// `regs`).
    #[arg(long, value_name = "REGS")]
    pub dart_regs: Option<String>,
    /// No Svnapot 64K pages.
    #[arg(long)]
    pub no_svnapot: bool,
    /// Svpbmt memory types in leaves (IO for MMIO, NC without CACHE).
    #[arg(long)]
    pub svpbmt: bool,
}

/// Every flag: its long name, the spec option it sets, and to what (`None`: to the
/// flag's value).
const FLAGS: &[(&str, &str, Option<bool>)] = &[
    ("granule", "granule", None),
    ("ias", "ias", None),
    ("oas", "oas", None),
    ("ttbr1", "ttbr1", Some(true)),
    ("ns", "ns", Some(true)),
    ("no-contig", "contig", Some(false)),
    ("incoherent-walk", "coherent-walk", Some(false)),
    ("coherent-walk", "coherent-walk", Some(true)),
    ("levels", "levels", None),
    ("max-levels", "max-levels", None),
    ("no-dynamic-top", "dynamic-top", Some(false)),
    ("no-sign-extend", "sign-extend", Some(false)),
    ("dirty-tracking", "dirty-tracking", Some(true)),
    ("no-2m", "2m", Some(false)),
    ("no-1g", "1g", Some(false)),
    ("dart-version", "version", None),
    ("dart-regs", "regs", None),
    ("no-svnapot", "svnapot", Some(false)),
    ("svpbmt", "svpbmt", Some(true)),
];

/// Why the command line's format could not be turned into a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// `--option` was given to a format that has no such option, or it only sets the
    /// format's default.
    NotApplicable {
        /// The flag's long name, without the dashes.
        option: &'static str,
        /// The format it was given to.
        format: &'static str,
    },
    /// The library refused the spec.
    Spec(SpecError),
}

impl FormatOptions {
    /// Whether the flag `long` was given, and its value if it takes one.
    fn get(&self, long: &str) -> Option<Option<String>> {
        let value = |v: &Option<String>| v.clone().map(Some);
        let number = |v: Option<u32>| v.map(|n| Some(n.to_string()));
        let flag = |set: bool| set.then_some(None);
        match long {
            "granule" => value(&self.granule),
            "ias" => number(self.ias),
            "oas" => number(self.oas),
            "ttbr1" => flag(self.ttbr1),
            "ns" => flag(self.ns),
            "no-contig" => flag(self.no_contig),
            "incoherent-walk" => flag(self.incoherent_walk),
            "coherent-walk" => flag(self.coherent_walk),
            "levels" => number(self.levels),
            "max-levels" => number(self.max_levels),
            "no-dynamic-top" => flag(self.no_dynamic_top),
            "no-sign-extend" => flag(self.no_sign_extend),
            "dirty-tracking" => flag(self.dirty_tracking),
            "no-2m" => flag(self.no_2m),
            "no-1g" => flag(self.no_1g),
            "dart-version" => value(&self.dart_version),
            "dart-regs" => value(&self.dart_regs),
            "no-svnapot" => flag(self.no_svnapot),
            "svpbmt" => flag(self.svpbmt),
            _ => None,
        }
    }
}

/// Whether a flag setting spec option `option` (to `to`, or to a value) does something
/// for `family`: the family has the option, and an on/off flag does not just set its
/// default.
fn applies(family: &Family, option: &str, to: Option<bool>) -> bool {
    family
        .option(option)
        .is_some_and(|o| to.is_none() || o.default_on() != to)
}

/// Adds to the help of each format flag of `iopt info` the formats it applies to.
pub fn annotate(info: Command) -> Command {
    FLAGS.iter().fold(info, |cmd, &(long, option, to)| {
        let formats: Vec<&str> = FormatSpec::families()
            .iter()
            .filter(|f| applies(f, option, to))
            .map(Family::name)
            .collect();
        cmd.mut_arg(long.replace('-', "_"), |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [{}]", formats.join(", ")))
        })
    })
}

/// The spec of `--format text` with the option flags `opts` added to its options.
///
/// # Errors
/// [`BuildError::NotApplicable`] for a flag that does not belong to the format,
/// [`BuildError::Spec`] when the library refuses the spec.
pub fn spec(text: &str, opts: &FormatOptions) -> Result<FormatSpec, BuildError> {
    let text = text.trim();
    let mut full = text.to_owned();
    let name = text.split_once(':').map_or(text, |(name, _)| name).trim();
    // An unknown name is reported by the library, which lists the formats.
    let family = FormatSpec::family_named(name);
    let mut sep = if text.contains(':') { ',' } else { ':' };
    for &(long, option, to) in FLAGS {
        let Some(value) = opts.get(long) else {
            continue;
        };
        if let Some(family) = family
            && !applies(family, option, to)
        {
            return Err(BuildError::NotApplicable {
                option: long,
                format: family.name(),
            });
        }
        full.push(sep);
        sep = ',';
        match (to, value) {
            (Some(false), _) => full.push_str(&format!("no-{option}")),
            (Some(true), _) | (None, None) => full.push_str(option),
            (None, Some(v)) => full.push_str(&format!("{option}={v}")),
        }
    }
    full.parse().map_err(BuildError::Spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut FormatOptions)) -> FormatOptions {
        let mut o = FormatOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn flags_become_spec_options() {
        let opts = with(|o| {
            o.granule = Some("16k".to_owned());
            o.ias = Some(40);
            o.no_contig = true;
        });
        let s = spec("arm64-s2", &opts).expect("a valid stage 2 table");
        assert_eq!(s.to_string(), "arm64-s2:granule=16k,ias=40,no-contig");
        // Flags add to the options already in the spec.
        let s = spec(
            "dart:version=2",
            &with(|o| o.dart_regs = Some("t8110".into())),
        );
        assert_eq!(
            s.map(|s| s.to_string()),
            Ok("dart:version=2,regs=t8110".to_owned())
        );
    }

    #[test]
    fn flags_for_other_formats_are_refused() {
        let opts = with(|o| o.granule = Some("16k".to_owned()));
        assert_eq!(
            spec("amdv1", &opts),
            Err(BuildError::NotApplicable {
                option: "granule",
                format: "amdv1"
            })
        );
        // Setting the default is not applying an option.
        assert_eq!(
            spec("arm64-s1", &with(|o| o.coherent_walk = true)),
            Err(BuildError::NotApplicable {
                option: "coherent-walk",
                format: "arm64-s1"
            })
        );
        assert_eq!(
            spec("mali", &with(|o| o.incoherent_walk = true)),
            Err(BuildError::NotApplicable {
                option: "incoherent-walk",
                format: "mali"
            })
        );
        assert_eq!(
            spec("armv7s", &with(|o| o.dart_version = Some("2".to_owned()))),
            Err(BuildError::NotApplicable {
                option: "dart-version",
                format: "armv7s"
            })
        );
    }

    #[test]
    fn every_flag_is_a_field_and_applies_somewhere() {
        let all = FormatOptions {
            granule: Some("4k".into()),
            ias: Some(1),
            oas: Some(1),
            ttbr1: true,
            ns: true,
            no_contig: true,
            incoherent_walk: true,
            coherent_walk: true,
            levels: Some(1),
            max_levels: Some(1),
            no_dynamic_top: true,
            no_sign_extend: true,
            dirty_tracking: true,
            no_2m: true,
            no_1g: true,
            dart_version: Some("1".into()),
            dart_regs: Some("t8020".into()),
            no_svnapot: true,
            svpbmt: true,
        };
        for &(long, option, to) in FLAGS {
            assert!(all.get(long).is_some(), "--{long} is not read");
            assert!(
                FormatSpec::families()
                    .iter()
                    .any(|f| applies(f, option, to)),
                "--{long} applies to no format"
            );
        }
    }

    #[test]
    fn library_errors_pass_through() {
        let e = spec("x86-64", &with(|o| o.levels = Some(3)));
        assert!(
            matches!(&e, Err(BuildError::Spec(SpecError::Config { .. }))),
            "{e:?}"
        );
        // The same option in the spec and as a flag.
        let e = spec("x86-64:levels=5", &with(|o| o.levels = Some(5)));
        assert!(
            matches!(
                e,
                Err(BuildError::Spec(SpecError::DuplicateOption {
                    option: "levels",
                    ..
                }))
            ),
            "{e:?}"
        );
        let e = spec("sparc", &with(|o| o.levels = Some(5)));
        assert!(
            matches!(e, Err(BuildError::Spec(SpecError::UnknownFormat { .. }))),
            "{e:?}"
        );
    }
}
