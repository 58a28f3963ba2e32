//! Which vector instructions the fixed engine's fast paths use.
//!
//! Every fast path computes the same bits as the scalar definition (`docs/fixed-point.md`); the
//! instruction set only changes the speed. [`Isa::best`] is the widest the CPU offers, capped by
//! the environment variable `THERMO_ISA` (`scalar`, `avx2` or `avx512`), which benchmarks and
//! tests use to run the narrower paths on a machine that has the wider ones, or by
//! [`Isa::set_cap`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// The cap: an `Isa as u8`, or [`UNSET`] before the first read of `THERMO_ISA`.
static CAP: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// A level of vector instructions, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// No vector fast path.
    Scalar,
    /// AVX2 (256-bit integer vectors, gathers).
    Avx2,
    /// AVX-512 F, BW, CD, VBMI2 and VNNI (512-bit vectors, mask registers, per-lane leading-zero
    /// counts, concatenated shifts, fused 16-bit multiply-adds).
    Avx512,
}

impl Isa {
    /// The widest level this CPU supports (not capped by `THERMO_ISA`). Detected once per
    /// process.
    pub fn supported() -> Isa {
        static SUPPORTED: OnceLock<Isa> = OnceLock::new();
        *SUPPORTED.get_or_init(Isa::detect)
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f")
                && has!("avx512bw")
                && has!("avx512cd")
                && has!("avx512vbmi2")
                && has!("avx512vnni")
                && has!("avx2")
            {
                return Isa::Avx512;
            }
            if has!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Every level this CPU supports, narrowest first (what the equivalence tests run).
    pub fn all_supported() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= Isa::supported())
            .collect()
    }

    /// The level the fast paths use: [`Isa::supported`], capped by `THERMO_ISA` (read once per
    /// process) or by [`Isa::set_cap`].
    pub fn best() -> Isa {
        let cap = match CAP.load(Ordering::Relaxed) {
            UNSET => {
                let cap = match std::env::var("THERMO_ISA").ok().as_deref() {
                    Some("scalar") => Isa::Scalar,
                    Some("avx2") => Isa::Avx2,
                    _ => Isa::Avx512,
                };
                // A concurrent `set_cap` wins.
                let _ =
                    CAP.compare_exchange(UNSET, cap as u8, Ordering::Relaxed, Ordering::Relaxed);
                Isa::from_u8(CAP.load(Ordering::Relaxed))
            }
            c => Isa::from_u8(c),
        };
        Isa::supported().min(cap)
    }

    /// Caps the level the fast paths use from now on, for the whole process (benchmarks compare
    /// the paths in one run). Every path computes the same bits, so a cap changes speed only.
    pub fn set_cap(cap: Isa) {
        CAP.store(cap as u8, Ordering::Relaxed);
    }

    fn from_u8(v: u8) -> Isa {
        match v {
            0 => Isa::Scalar,
            1 => Isa::Avx2,
            _ => Isa::Avx512,
        }
    }

    /// The name `THERMO_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}
