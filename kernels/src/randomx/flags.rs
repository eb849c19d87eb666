//! RandomX flags: what the operator asked for, resolved against what this CPU and build support.

use std::fmt;

use capminer_protocol::RandomxFlavor;

use super::DatasetInit;
use super::ffi;
use crate::{KernelError, Result};

/// Which Argon2 implementation fills the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Argon2Impl {
    /// The fastest one this CPU supports.
    #[default]
    Auto,
    /// AVX2.
    Avx2,
    /// SSSE3.
    Ssse3,
    /// Portable C.
    Portable,
}

/// What the operator asked for. `None` means "whatever this CPU supports".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomXOptions {
    /// JIT-compile programs (much faster; needs an x86-64 or ARM64 build).
    pub jit: Option<bool>,
    /// Hardware AES.
    pub hard_aes: Option<bool>,
    /// Hash from the full dataset (2080 MiB stock, 4128 MiB Fluence) rather than the 256 MiB
    /// cache (light mode).
    pub full_memory: bool,
    /// Ask for 2 MiB pages; fall back to normal pages when the OS refuses.
    pub large_pages: bool,
    /// Argon2 implementation for the cache.
    pub argon2: Argon2Impl,
    /// W^X JIT pages (slower; for hardened systems).
    pub secure: bool,
    /// When reserved huge pages are refused, advise the kernel to back the dataset and the
    /// cache with transparent huge pages (capminer's own option, not a RandomX flag).
    pub transparent_huge_pages: bool,
    /// Which code builds dataset items (capminer's own option, not a RandomX flag).
    pub dataset_init: DatasetInit,
    /// Which RandomX parameter set to hash with (the network profile's).
    pub flavor: RandomxFlavor,
}

impl Default for RandomXOptions {
    fn default() -> Self {
        Self {
            jit: None,
            hard_aes: None,
            full_memory: true,
            large_pages: true,
            argon2: Argon2Impl::Auto,
            secure: false,
            transparent_huge_pages: true,
            dataset_init: DatasetInit::Auto,
            flavor: RandomxFlavor::Stock,
        }
    }
}

impl RandomXOptions {
    /// The same options in light (verification) mode: cache only, no dataset.
    pub fn light(self) -> Self {
        Self {
            full_memory: false,
            ..self
        }
    }
}

/// capminer's own bit, above RandomX's flags: advise transparent huge pages for datasets and
/// caches.
const CAPMINER_THP: u32 = 1 << 31;
/// capminer's own bits: which code builds dataset items (0 library, 1 SIMD, 2 scalar).
const CAPMINER_INIT_SHIFT: u32 = 29;
const CAPMINER_INIT_MASK: u32 = 3 << CAPMINER_INIT_SHIFT;
/// capminer's own bit: the RandomX flavor is Fluence's fork (clear: stock). Every cache,
/// dataset and VM takes its library from its flags, so one flavor's structures are never
/// handed to the other's functions.
const CAPMINER_FLUENCE: u32 = 1 << 28;
/// Every bit that is capminer's rather than RandomX's.
const CAPMINER_BITS: u32 = CAPMINER_THP | CAPMINER_INIT_MASK | CAPMINER_FLUENCE;

/// Resolved RandomX flags, valid for this CPU (plus capminer's transparent-huge-pages choice).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RandomXFlags(u32);

impl RandomXFlags {
    /// What this CPU and build support, as RandomX reports it.
    pub fn supported() -> Self {
        Self(ffi::get_flags())
    }

    /// Resolves operator options against this CPU; a flag forced on that cannot work is an error.
    pub fn resolve(options: &RandomXOptions) -> Result<Self> {
        static LINKED: std::sync::Once = std::sync::Once::new();
        LINKED.call_once(ffi::check_linked);
        let supported = Self::supported().0;
        let mut bits = 0;
        let mut want = |asked: Option<bool>, flag: u32, name: &'static str| -> Result<()> {
            let available = supported & flag != 0;
            match asked {
                Some(true) if !available => Err(KernelError::UnsupportedFlag {
                    flag: name,
                    reason: "this CPU or RandomX build does not support it",
                }),
                Some(true) => {
                    bits |= flag;
                    Ok(())
                }
                Some(false) => Ok(()),
                None => {
                    bits |= supported & flag;
                    Ok(())
                }
            }
        };
        want(options.jit, ffi::FLAG_JIT, "jit")?;
        want(options.hard_aes, ffi::FLAG_HARD_AES, "hard_aes")?;
        bits |= match options.argon2 {
            Argon2Impl::Auto if supported & ffi::FLAG_ARGON2_AVX2 != 0 => ffi::FLAG_ARGON2_AVX2,
            Argon2Impl::Auto => supported & ffi::FLAG_ARGON2_SSSE3,
            Argon2Impl::Avx2 if supported & ffi::FLAG_ARGON2_AVX2 != 0 => ffi::FLAG_ARGON2_AVX2,
            Argon2Impl::Ssse3 if supported & ffi::FLAG_ARGON2_SSSE3 != 0 => ffi::FLAG_ARGON2_SSSE3,
            Argon2Impl::Portable => 0,
            Argon2Impl::Avx2 | Argon2Impl::Ssse3 => {
                return Err(KernelError::UnsupportedFlag {
                    flag: "argon2",
                    reason: "this CPU lacks that instruction set",
                });
            }
        };
        if options.secure {
            if bits & ffi::FLAG_JIT == 0 {
                return Err(KernelError::UnsupportedFlag {
                    flag: "secure",
                    reason: "secure mode only applies to the JIT, which is off",
                });
            }
            bits |= ffi::FLAG_SECURE;
        }
        if options.full_memory {
            bits |= ffi::FLAG_FULL_MEM;
        }
        if options.large_pages {
            bits |= ffi::FLAG_LARGE_PAGES;
        }
        if options.transparent_huge_pages {
            bits |= CAPMINER_THP;
        }
        if options.flavor == RandomxFlavor::Fluence {
            bits |= CAPMINER_FLUENCE;
        }
        Self(bits).with_dataset_init(options.dataset_init)
    }

    /// The raw RandomX flag bits.
    pub fn bits(self) -> u32 {
        self.0 & !CAPMINER_BITS
    }

    /// Which code builds dataset items: never [`DatasetInit::Auto`].
    pub fn dataset_init(self) -> DatasetInit {
        match (self.0 & CAPMINER_INIT_MASK) >> CAPMINER_INIT_SHIFT {
            1 => DatasetInit::Simd,
            2 => DatasetInit::Scalar,
            _ => DatasetInit::Library,
        }
    }

    /// The same flags with dataset items built by `init` (resolved against this CPU).
    pub fn with_dataset_init(self, init: DatasetInit) -> Result<Self> {
        let bits = match init.resolve()? {
            DatasetInit::Simd => 1,
            DatasetInit::Scalar => 2,
            DatasetInit::Library | DatasetInit::Auto => 0,
        } << CAPMINER_INIT_SHIFT;
        Ok(Self((self.0 & !CAPMINER_INIT_MASK) | bits))
    }

    /// True when datasets and caches without reserved huge pages get transparent huge pages
    /// advice.
    pub fn transparent_huge_pages(self) -> bool {
        self.0 & CAPMINER_THP != 0
    }

    /// The RandomX flavor (parameter set) these flags hash with.
    pub fn flavor(self) -> RandomxFlavor {
        if self.0 & CAPMINER_FLUENCE != 0 {
            RandomxFlavor::Fluence
        } else {
            RandomxFlavor::Stock
        }
    }

    /// The library of the flavor.
    pub(super) fn lib(self) -> &'static ffi::Lib {
        ffi::Lib::of(self.flavor())
    }

    /// True when the full dataset is used.
    pub fn full_memory(self) -> bool {
        self.0 & ffi::FLAG_FULL_MEM != 0
    }

    /// True when large pages are asked for.
    pub fn large_pages(self) -> bool {
        self.0 & ffi::FLAG_LARGE_PAGES != 0
    }

    /// The same flags without large pages (the fallback).
    pub(crate) fn without_large_pages(self) -> Self {
        Self(self.0 & !ffi::FLAG_LARGE_PAGES)
    }

    /// The same flags in light mode.
    pub fn light(self) -> Self {
        Self(self.0 & !ffi::FLAG_FULL_MEM)
    }
}

impl fmt::Display for RandomXFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (ffi::FLAG_JIT, "jit"),
            (ffi::FLAG_HARD_AES, "hard_aes"),
            (ffi::FLAG_FULL_MEM, "full_mem"),
            (ffi::FLAG_SECURE, "secure"),
            (ffi::FLAG_LARGE_PAGES, "large_pages"),
            (CAPMINER_THP, "thp"),
            (CAPMINER_FLUENCE, "flavor=fluence"),
        ];
        let mut parts: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        parts.push(match self.dataset_init() {
            DatasetInit::Simd => "dataset_init=simd",
            DatasetInit::Scalar => "dataset_init=scalar",
            _ => "dataset_init=library",
        });
        parts.push(if self.0 & ffi::FLAG_ARGON2_AVX2 != 0 {
            "argon2=avx2"
        } else if self.0 & ffi::FLAG_ARGON2_SSSE3 != 0 {
            "argon2=ssse3"
        } else {
            "argon2=portable"
        });
        f.write_str(&parts.join(" "))
    }
}

impl fmt::Debug for RandomXFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RandomXFlags({self})")
    }
}
