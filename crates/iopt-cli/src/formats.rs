//! The command line's format selection: `--format SPEC` (the library's
//! [`FormatSpec`] text form, e.g. `arm64-s2:granule=16k,ias=40`) plus the separate
//! option flags, which are the same options spelled as flags (`--ias 40` is `ias=40`).
//!
//! A flag given to a format that has no such option, or that only sets the format's
//! default (`--coherent-walk` on arm64, whose walks are coherent unless
//! `--incoherent-walk`), is a usage error, so that a typo never silently changes
//! nothing. Everything else is checked by the library, whose errors name the limit.

use clap::Args;
use iopt::spec::{FormatSpec, SpecError};

/// The format option flags. Unset options take the format's defaults; see `iopt info
/// --list` for every option of every format.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatOptions {
    /// (arm64, dart) Translation granule: 4k, 16k or 64k [default: 4k for arm64, 16k
    /// for dart]. Spec option `granule=`.
    #[arg(long, value_name = "SIZE")]
    pub granule: Option<String>,
    /// (arm64, arm32, dart) Input address size in bits. Spec option `ias=`.
    #[arg(long, value_name = "BITS")]
    pub ias: Option<u32>,
    /// Output address size in bits (arm64: 52 selects the 52-bit format, 64k granule
    /// only). Spec option `oas=`.
    #[arg(long, value_name = "BITS")]
    pub oas: Option<u32>,
    /// (arm64) Translate the upper half of the address space (TTBR1; stage 1 only).
    #[arg(long)]
    pub ttbr1: bool,
    /// (arm64, arm32, armv7s) Set the non-secure bits (stage 1 only on arm64 and arm32).
    #[arg(long)]
    pub ns: bool,
    /// (arm64, arm32) Do not use contiguous-hint runs.
    #[arg(long)]
    pub no_contig: bool,
    /// (arm64, arm32) The IOMMU's table walks do not snoop the CPU caches.
    #[arg(long)]
    pub incoherent_walk: bool,
    /// (mali, armv7s) The table walks are coherent with the CPU caches.
    #[arg(long)]
    pub coherent_walk: bool,
    /// (amdv1, x86-64, vtd-ss, riscv) Levels (amdv1: at creation).
    #[arg(long, value_name = "N")]
    pub levels: Option<u32>,
    /// (amdv1) Most levels the table may grow to.
    #[arg(long, value_name = "N")]
    pub max_levels: Option<u32>,
    /// (amdv1) The top level never grows.
    #[arg(long)]
    pub no_dynamic_top: bool,
    /// (x86-64, riscv) Translate only the lower half, without sign extension.
    #[arg(long)]
    pub no_sign_extend: bool,
    /// (amdv1, vtd-ss, riscv) Hardware dirty tracking.
    #[arg(long)]
    pub dirty_tracking: bool,
    /// (vtd-ss) The IOMMU has no 2 MiB pages (CAP.SLLPS bit 0 clear).
    #[arg(long)]
    pub no_2m: bool,
    /// (vtd-ss) The IOMMU has no 1 GiB pages (CAP.SLLPS bit 1 clear).
    #[arg(long)]
    pub no_1g: bool,
    /// (dart) Entry format: 1 or 2 [default: 1]. Spec option `version=`.
    #[arg(long, value_name = "VERSION")]
    pub dart_version: Option<String>,
    /// (dart) Register block the TTBR/TCR words are for: t8020 or t8110. Spec option
    /// `regs=`.
    #[arg(long, value_name = "REGS")]
    pub dart_regs: Option<String>,
    /// (riscv) No Svnapot 64K pages.
    #[arg(long)]
    pub no_svnapot: bool,
    /// (riscv) Svpbmt memory types in leaves (IO for MMIO, NC without CACHE).
    #[arg(long)]
    pub svpbmt: bool,
}

/// What a flag sets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Setting {
    /// An on/off option, to this value.
    Flag(bool),
    /// A value option, to this text.
    Value(String),
}

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
    /// The flags given: flag name, the spec option it sets, and to what.
    fn given(&self) -> Vec<(&'static str, &'static str, Setting)> {
        let value = |v: &Option<String>| v.clone().map(Setting::Value);
        let number = |v: Option<u32>| v.map(|n| Setting::Value(n.to_string()));
        let flag = |set: bool, on: bool| set.then_some(Setting::Flag(on));
        [
            ("granule", "granule", value(&self.granule)),
            ("ias", "ias", number(self.ias)),
            ("oas", "oas", number(self.oas)),
            ("ttbr1", "ttbr1", flag(self.ttbr1, true)),
            ("ns", "ns", flag(self.ns, true)),
            ("no-contig", "contig", flag(self.no_contig, false)),
            (
                "incoherent-walk",
                "coherent-walk",
                flag(self.incoherent_walk, false),
            ),
            (
                "coherent-walk",
                "coherent-walk",
                flag(self.coherent_walk, true),
            ),
            ("levels", "levels", number(self.levels)),
            ("max-levels", "max-levels", number(self.max_levels)),
            (
                "no-dynamic-top",
                "dynamic-top",
                flag(self.no_dynamic_top, false),
            ),
            (
                "no-sign-extend",
                "sign-extend",
                flag(self.no_sign_extend, false),
            ),
            (
                "dirty-tracking",
                "dirty-tracking",
                flag(self.dirty_tracking, true),
            ),
            ("no-2m", "2m", flag(self.no_2m, false)),
            ("no-1g", "1g", flag(self.no_1g, false)),
            ("dart-version", "version", value(&self.dart_version)),
            ("dart-regs", "regs", value(&self.dart_regs)),
            ("no-svnapot", "svnapot", flag(self.no_svnapot, false)),
            ("svpbmt", "svpbmt", flag(self.svpbmt, true)),
        ]
        .into_iter()
        .filter_map(|(name, option, setting)| setting.map(|s| (name, option, s)))
        .collect()
    }
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
    for (flag, option, setting) in opts.given() {
        if let Some(family) = family {
            let applies = family.option(option).is_some_and(|o| match setting {
                Setting::Flag(on) => o.default_on() != Some(on),
                Setting::Value(_) => true,
            });
            if !applies {
                return Err(BuildError::NotApplicable {
                    option: flag,
                    format: family.name(),
                });
            }
        }
        full.push(sep);
        sep = ',';
        match setting {
            Setting::Flag(true) => full.push_str(option),
            Setting::Flag(false) => {
                full.push_str("no-");
                full.push_str(option);
            }
            Setting::Value(v) => {
                full.push_str(option);
                full.push('=');
                full.push_str(&v);
            }
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
