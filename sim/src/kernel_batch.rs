//! The batched fixed engine's unit updates and bus sums across chains (AVX2), for units and bus
//! sums whose accumulator provably never saturates
//! ([`Arith::unit_is_safe`](crate::engine::Arith::unit_is_safe)).
//!
//! The batch stores every per-chain quantity chain-minor (`rx[unit * B + chain]`), so one
//! coupling multiplies 16 consecutive 16-bit states of 16 chains. Two couplings of a row are taken
//! together: the two rows of states are interleaved (`vpunpcklwd`/`vpunpckhwd`) and multiplied by
//! the coupling pair with `vpmaddwd`, which gives `c1 x1 + c2 x2` per chain as an exact 32-bit
//! sum. Without saturation every accumulator addition is exact, so each chain's new state is the
//! exact integer sum of its terms in any order: the same bits as the scalar update of
//! `docs/fixed-point.md` §3. Up to 64 chains (four blocks of 16) keep their accumulators in
//! registers across a unit's terms; chains left over after the blocks of 16 take a scalar loop.
//!
//! Bus terms are aligned to the accumulator by a left shift when the formats make it one: the
//! shifted sum is the sum of the shifted products, so the unit's bus products are summed first
//! and shifted once; otherwise every product is rounded on its own as specified.

use crate::engine::{Arith, Fixed, Program};
use crate::isa::Isa;
use crate::kernel::FixedKernel;

/// Chains per block (16-bit states in a 256-bit register).
pub const CHAINS: usize = 16;

/// What the update of consecutive units of one module, every chain, reads (chain-minor slices
/// of `b` chains).
#[derive(Clone)]
pub struct UnitsInputs<'a> {
    /// The units' module.
    pub m: usize,
    /// The units (consecutive, all of module `m`).
    pub units: std::ops::Range<usize>,
    /// Chains.
    pub b: usize,
    /// The units' bus weights, one per line of the module for each unit in turn (from
    /// `units.start`).
    pub w: &'a [i16],
    /// The module's lines, `[line * b + chain]`.
    pub lines: &'a [i16],
    /// States, `[unit * b + chain]`.
    pub x: &'a [i16],
    /// `rho(x)`, as `x`.
    pub rx: &'a [i16],
    /// Noise samples, as `x`.
    pub z: &'a [i16],
    /// Biases, as `x`.
    pub bias: &'a [i32],
    /// Per coupling of the program, where its column's states start: `col * b`.
    pub offsets: &'a [u32],
}

/// What the update of one unit of every chain reads.
#[derive(Clone, Copy)]
struct UnitInputs<'a> {
    m: usize,
    i: usize,
    b: usize,
    /// The unit's bus weights, one per line of its module.
    wi: &'a [i16],
    lines: &'a [i16],
    x: &'a [i16],
    rx: &'a [i16],
    z: &'a [i16],
    bias: &'a [i32],
    offsets: &'a [u32],
}

impl<'a> UnitsInputs<'a> {
    /// Unit `i` of `self.units`.
    #[inline(always)]
    fn unit(&self, i: usize) -> UnitInputs<'a> {
        let k = self.lines.len() / self.b.max(1);
        let n = i - self.units.start;
        UnitInputs {
            m: self.m,
            i,
            b: self.b,
            wi: &self.w[n * k..(n + 1) * k],
            lines: self.lines,
            x: self.x,
            rx: self.rx,
            z: self.z,
            bias: self.bias,
            offsets: self.offsets,
        }
    }
}

/// Step 3 for units `u.units` of every chain, which the caller proved safe for every chain with
/// its largest bias: new states into `out` (`b` per unit, from `u.units.start`), clipped states
/// counted in `state_cnt`. Returns `false` (nothing written) when the vector form does not apply
/// (no AVX2, or formats the kernel does not take).
pub fn units_unchecked(
    p: &Program<Fixed>,
    u: &UnitsInputs<'_>,
    out: &mut [i16],
    state_cnt: &mut [u64],
) -> bool {
    units_unchecked_with(Isa::best(), p, u, out, state_cnt)
}

/// [`units_unchecked`] with the instructions of `isa` (`false` where the CPU lacks them): the
/// same states and counts whatever `isa`.
pub fn units_unchecked_with(
    isa: Isa,
    p: &Program<Fixed>,
    u: &UnitsInputs<'_>,
    out: &mut [i16],
    state_cnt: &mut [u64],
) -> bool {
    assert_eq!(
        out.len(),
        u.units.len() * u.b,
        "one state per unit and chain"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = &p.kernel {
            match isa.min(Isa::supported()) {
                // SAFETY: the CPU supports the instructions (checked by `Isa::supported`).
                Isa::Avx512 => unsafe { units_avx512(p, k, u, out, state_cnt) },
                Isa::Avx2 => unsafe { units_avx2(p, k, u, out, state_cnt) },
                Isa::Scalar => return false,
            }
            return true;
        }
    }
    let _ = (isa, p, u, out, state_cnt);
    false
}

/// `acc[c] = sum_n row[n] rx[(start + n) * b + c]` for every chain `c` (the sum proven not to
/// saturate). Returns `false` (nothing written) without AVX2.
pub fn bus_sum_unchecked(row: &[i16], start: usize, b: usize, rx: &[i16], acc: &mut [i32]) -> bool {
    bus_sum_unchecked_with(Isa::best(), row, start, b, rx, acc)
}

/// [`bus_sum_unchecked`] with the instructions of `isa` (`false` where the CPU lacks them).
pub fn bus_sum_unchecked_with(
    isa: Isa,
    row: &[i16],
    start: usize,
    b: usize,
    rx: &[i16],
    acc: &mut [i32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match isa.min(Isa::supported()) {
            // SAFETY: the CPU supports the instructions (checked by `Isa::supported`).
            Isa::Avx512 => unsafe { bus_sum_avx512(row, start, b, rx, acc) },
            Isa::Avx2 => unsafe { bus_sum_avx2(row, start, b, rx, acc, 0) },
            Isa::Scalar => return false,
        }
        return true;
    }
    #[allow(unreachable_code)]
    {
        let _ = (isa, row, start, b, rx, acc);
        false
    }
}

/// `acc[r * b + c] = sum_n rows[r][n] rx[(start + n) * b + c]` for every row `r` (all of one
/// length) and chain `c`, every sum proven not to saturate: the rows of a bus side together, each
/// pair of state rows loaded and interleaved once for all of them. Returns `false` (nothing
/// written) below AVX-512, where the rows take [`bus_sum_unchecked`] one by one.
pub fn bus_sums_unchecked(
    rows: &[Vec<i16>],
    start: usize,
    b: usize,
    rx: &[i16],
    acc: &mut [i32],
) -> bool {
    let len = rows.first().map_or(0, |r| r.len());
    assert!(rows.iter().all(|r| r.len() == len), "rows of one length");
    assert!(acc.len() >= rows.len() * b, "one sum per row and chain");
    assert!(rx.len() >= (start + len) * b, "states of the rows' units");
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::best() == Isa::Avx512 {
            // SAFETY: the CPU supports AVX-512 (`Isa::best` is at most what it supports); the
            // lengths are checked above.
            unsafe { bus_sums_avx512(rows, start, b, rx, acc) };
            return true;
        }
    }
    let _ = (rows, start, b, rx, acc);
    false
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The coupling pair `(c1, c2)` broadcast as `vpmaddwd` takes it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pair(c1: i16, c2: i16) -> __m256i {
    _mm256_set1_epi32(((c1 as u16 as u32) | ((c2 as u16 as u32) << 16)) as i32)
}

/// The adjacent coupling pair `(s[q], s[q + 1])` broadcast as `vpmaddwd` takes it (one 32-bit
/// load: little-endian, `s[q]` is the low half).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pair_at(s: &[i16], q: usize) -> __m256i {
    debug_assert!(q + 1 < s.len());
    _mm256_set1_epi32(std::ptr::read_unaligned(s.as_ptr().add(q) as *const i32))
}

/// Sixteen 16-bit values at `s[o..]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load16(s: &[i16], o: usize) -> __m256i {
    debug_assert!(o + CHAINS <= s.len());
    _mm256_loadu_si256(s.as_ptr().add(o) as *const __m256i)
}

/// `acc_lo/hi[blk] += c1 ra[blk] + c2 rb[blk]` for the `NB` blocks of 16 chains at `o1`, `o2`
/// (`o2 = None`: `c2` is absent). `lo` holds chains 0-3 and 8-11 of a block, `hi` chains 4-7
/// and 12-15 (the interleave works within 128-bit halves).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn madd_rows<const NB: usize>(
    lo: &mut [__m256i; NB],
    hi: &mut [__m256i; NB],
    cp: __m256i,
    s: &[i16],
    o1: usize,
    o2: Option<usize>,
) {
    for blk in 0..NB {
        let a = load16(s, o1 + blk * CHAINS);
        let b = match o2 {
            Some(o2) => load16(s, o2 + blk * CHAINS),
            None => _mm256_setzero_si256(),
        };
        lo[blk] = _mm256_add_epi32(lo[blk], _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), cp));
        hi[blk] = _mm256_add_epi32(hi[blk], _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), cp));
    }
}

/// Sixteen 16-bit values sign-extended in the `lo`/`hi` chain order of [`madd_rows`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn widen(v: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_srai_epi32::<16>(_mm256_unpacklo_epi16(v, v)),
        _mm256_srai_epi32::<16>(_mm256_unpackhi_epi16(v, v)),
    )
}

/// Sixteen 32-bit values at `s[o..]` in the `lo`/`hi` chain order of [`madd_rows`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load32_split(s: &[i32], o: usize) -> (__m256i, __m256i) {
    debug_assert!(o + CHAINS <= s.len());
    let a = _mm256_loadu_si256(s.as_ptr().add(o) as *const __m256i);
    let b = _mm256_loadu_si256(s.as_ptr().add(o + 8) as *const __m256i);
    (
        _mm256_permute2x128_si256::<0x20>(a, b),
        _mm256_permute2x128_si256::<0x31>(a, b),
    )
}

/// The term's alignment to the accumulator (`qformat::align` on an exact 32-bit product): left
/// by `s`, or right by `-s` rounding half up.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn align(v: __m256i, s: i32) -> __m256i {
    if s >= 0 {
        _mm256_sll_epi32(v, _mm_cvtsi32_si128(s))
    } else {
        let r = -s;
        let half = _mm256_set1_epi32(1 << (r - 1));
        _mm256_sra_epi32(_mm256_add_epi32(v, half), _mm_cvtsi32_si128(r))
    }
}

/// The 32-bit accumulator vectors of a block of chains, at one register width: what the unit
/// kernels of both widths share.
#[cfg(target_arch = "x86_64")]
trait Block: Copy {
    /// Zero in every word.
    unsafe fn zero() -> Self;
    /// The coupling pair `(c1, c2)` in every word.
    unsafe fn pair(c1: i16, c2: i16) -> Self;
    /// `lo/hi[blk] += c1 a + c2 b` for `NB` blocks of the rows at `o1`, `o2` of `s` (`cp` the
    /// pair; `o2 = None`: `c2` absent).
    unsafe fn rows<const NB: usize>(
        lo: &mut [Self; NB],
        hi: &mut [Self; NB],
        cp: Self,
        s: &[i16],
        o1: usize,
        o2: Option<usize>,
    );
    /// [`align`] of every word.
    unsafe fn align(v: Self, s: i32) -> Self;
    /// Word-wise sum.
    unsafe fn add(a: Self, b: Self) -> Self;
}

#[cfg(target_arch = "x86_64")]
impl Block for __m256i {
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm256_setzero_si256()
    }
    #[inline(always)]
    unsafe fn pair(c1: i16, c2: i16) -> Self {
        pair(c1, c2)
    }
    #[inline(always)]
    unsafe fn rows<const NB: usize>(
        lo: &mut [Self; NB],
        hi: &mut [Self; NB],
        cp: Self,
        s: &[i16],
        o1: usize,
        o2: Option<usize>,
    ) {
        madd_rows::<NB>(lo, hi, cp, s, o1, o2)
    }
    #[inline(always)]
    unsafe fn align(v: Self, s: i32) -> Self {
        align(v, s)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm256_add_epi32(a, b)
    }
}

#[cfg(target_arch = "x86_64")]
impl Block for __m512i {
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm512_setzero_si512()
    }
    #[inline(always)]
    unsafe fn pair(c1: i16, c2: i16) -> Self {
        _mm512_set1_epi32(((c1 as u16 as u32) | ((c2 as u16 as u32) << 16)) as i32)
    }
    #[inline(always)]
    unsafe fn rows<const NB: usize>(
        lo: &mut [Self; NB],
        hi: &mut [Self; NB],
        cp: Self,
        s: &[i16],
        o1: usize,
        o2: Option<usize>,
    ) {
        dp_rows::<NB>(lo, hi, cp, s, o1, o2)
    }
    #[inline(always)]
    unsafe fn align(v: Self, s: i32) -> Self {
        align512(v, s)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm512_add_epi32(a, b)
    }
}

/// The bus terms of unit `u.i` for the `NB` blocks at `c0`, into `lo`/`hi`: summed, then
/// shifted once when the alignment is a left shift (the shifted sum is the sum of the shifted
/// products), else rounded one by one.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bus_terms<V: Block, const NB: usize>(
    line_shift: i32,
    u: &UnitInputs<'_>,
    c0: usize,
    lo: &mut [V; NB],
    hi: &mut [V; NB],
) {
    let (b, nl) = (u.b, u.wi.len());
    if line_shift >= 0 {
        let mut t = 0;
        while t + 1 < nl {
            let cp = V::pair(u.wi[t], u.wi[t + 1]);
            V::rows::<NB>(lo, hi, cp, u.lines, t * b + c0, Some((t + 1) * b + c0));
            t += 2;
        }
        if t < nl {
            V::rows::<NB>(lo, hi, V::pair(u.wi[t], 0), u.lines, t * b + c0, None);
        }
        if line_shift > 0 {
            for blk in 0..NB {
                lo[blk] = V::align(lo[blk], line_shift);
                hi[blk] = V::align(hi[blk], line_shift);
            }
        }
    } else {
        for (t, &w) in u.wi.iter().enumerate() {
            let mut plo = [V::zero(); NB];
            let mut phi = [V::zero(); NB];
            V::rows::<NB>(&mut plo, &mut phi, V::pair(w, 0), u.lines, t * b + c0, None);
            for blk in 0..NB {
                lo[blk] = V::add(lo[blk], V::align(plo[blk], line_shift));
                hi[blk] = V::add(hi[blk], V::align(phi[blk], line_shift));
            }
        }
    }
}

/// The constants of a unit's finishing steps.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Finish {
    diag: __m256i,
    amp: __m256i,
    /// Gate bounds (clamp lo, hi) when the activation is a clamp.
    gate: Option<(__m256i, __m256i)>,
    lo_code: __m256i,
    hi_code: __m256i,
    line_shift: i32,
    noise_shift: i32,
    state_shift: i32,
}

#[cfg(target_arch = "x86_64")]
impl Finish {
    /// The constants of the units of module `m` (`diag` that of unit `i`).
    #[inline(always)]
    unsafe fn new(p: &Program<Fixed>, k: &FixedKernel, m: usize, i: usize) -> Finish {
        let a = &p.arith;
        let (line_shift, noise_shift, state_shift) = k.shifts(m);
        let state = a.formats.state;
        Finish {
            diag: _mm256_set1_epi32(p.diag[i] as i32),
            amp: _mm256_set1_epi32(a.noise_amp as i32),
            gate: a
                .module_clamp_codes(m)
                .map(|(lo, hi)| (_mm256_set1_epi32(lo as i32), _mm256_set1_epi32(hi as i32))),
            lo_code: _mm256_set1_epi32(state.min_code() as i32),
            hi_code: _mm256_set1_epi32(state.max_code() as i32),
            line_shift,
            noise_shift,
            state_shift: state_shift as i32,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn units_avx2(
    p: &Program<Fixed>,
    k: &FixedKernel,
    u: &UnitsInputs<'_>,
    out: &mut [i16],
    state_cnt: &mut [u64],
) {
    let mut f = Finish::new(p, k, u.m, u.units.start);
    for (n, i) in u.units.clone().enumerate() {
        f.diag = _mm256_set1_epi32(p.diag[i] as i32);
        let o = &mut out[n * u.b..(n + 1) * u.b];
        unit_from(p, &f, &u.unit(i), 0, o, state_cnt)
    }
}

/// Unit `u.i` of the chains from `c0` on: blocks of 64, 32 and 16 chains, then one chain at a
/// time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unit_from(
    p: &Program<Fixed>,
    f: &Finish,
    u: &UnitInputs<'_>,
    c0: usize,
    out: &mut [i16],
    state_cnt: &mut [u64],
) {
    let a = &p.arith;
    let b = u.b;
    let mut c0 = c0;
    while c0 + 4 * CHAINS <= b {
        unit_blocks::<4>(p, f, u, c0, out, state_cnt);
        c0 += 4 * CHAINS;
    }
    while c0 + 2 * CHAINS <= b {
        unit_blocks::<2>(p, f, u, c0, out, state_cnt);
        c0 += 2 * CHAINS;
    }
    while c0 + CHAINS <= b {
        unit_blocks::<1>(p, f, u, c0, out, state_cnt);
        c0 += CHAINS;
    }
    // The chains left over, one at a time (the scalar update without checks).
    let m = u.m;
    let i = u.i;
    let (p0, p1) = (p.row_ptr[i] as usize, p.row_ptr[i + 1] as usize);
    for c in c0..b {
        let mut s = crate::engine::Saturation::default();
        let xi = u.x[i * b + c];
        let mut acc = a.mac::<false>(0, p.diag[i], xi, &mut s);
        if a.gate(m, xi) {
            for (&coef, &j) in p.coef[p0..p1].iter().zip(&p.col[p0..p1]) {
                acc = a.mac::<false>(acc, coef, u.rx[j as usize * b + c], &mut s);
            }
            for (t, &w) in u.wi.iter().enumerate() {
                acc = a.mac_line::<false>(m, acc, w, u.lines[t * b + c], &mut s);
            }
            acc = a.add_bias::<false>(acc, u.bias[i * b + c], &mut s);
        }
        acc = a.add_noise::<false>(m, acc, u.z[i * b + c], &mut s);
        out[c] = a.finish(acc, &mut s);
        state_cnt[c] += s.state;
    }
}

/// Unit `u.i` of chains `c0 .. c0 + 16 NB`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unit_blocks<const NB: usize>(
    p: &Program<Fixed>,
    f: &Finish,
    u: &UnitInputs<'_>,
    c0: usize,
    out: &mut [i16],
    state_cnt: &mut [u64],
) {
    let (i, b) = (u.i, u.b);
    let mut lo = [_mm256_setzero_si256(); NB];
    let mut hi = [_mm256_setzero_si256(); NB];
    bus_terms::<__m256i, NB>(f.line_shift, u, c0, &mut lo, &mut hi);
    // Couplings, two at a time.
    let (p0, p1) = (p.row_ptr[i] as usize, p.row_ptr[i + 1] as usize);
    let (coef, col) = (&p.coef[p0..p1], &u.offsets[p0..p1]);
    let mut q = 0;
    while q + 1 < coef.len() {
        let cp = pair_at(coef, q);
        let (j1, j2) = (col[q] as usize, col[q + 1] as usize);
        madd_rows::<NB>(&mut lo, &mut hi, cp, u.rx, j1 + c0, Some(j2 + c0));
        q += 2;
    }
    if q < coef.len() {
        let cp = pair(coef[q], 0);
        madd_rows::<NB>(&mut lo, &mut hi, cp, u.rx, col[q] as usize + c0, None);
    }
    for blk in 0..NB {
        let c = c0 + blk * CHAINS;
        let o = i * b + c;
        // Bias.
        let (hl, hh) = load32_split(u.bias, o);
        let terms = [_mm256_add_epi32(lo[blk], hl), _mm256_add_epi32(hi[blk], hh)];
        let xv = widen(load16(u.x, o));
        let zv = widen(load16(u.z, o));
        let mut res = [_mm256_setzero_si256(); 2];
        let mut clipped = 0u32;
        for (h, (&xi, &zi)) in [xv.0, xv.1].iter().zip([zv.0, zv.1].iter()).enumerate() {
            let acc0 = _mm256_mullo_epi32(f.diag, xi);
            let mut acc = _mm256_add_epi32(acc0, terms[h]);
            if let Some((glo, ghi)) = f.gate {
                // A closed gate keeps only the self term.
                let closed =
                    _mm256_or_si256(_mm256_cmpgt_epi32(glo, xi), _mm256_cmpgt_epi32(xi, ghi));
                acc = _mm256_blendv_epi8(acc, acc0, closed);
            }
            acc = _mm256_add_epi32(acc, align(_mm256_mullo_epi32(zi, f.amp), f.noise_shift));
            // Rounding right shift without overflow: (acc >> s) + bit (s - 1) of acc.
            let s = f.state_shift;
            let v = if s == 0 {
                acc
            } else {
                _mm256_add_epi32(
                    _mm256_sra_epi32(acc, _mm_cvtsi32_si128(s)),
                    _mm256_and_si256(
                        _mm256_sra_epi32(acc, _mm_cvtsi32_si128(s - 1)),
                        _mm256_set1_epi32(1),
                    ),
                )
            };
            let r = _mm256_min_epi32(_mm256_max_epi32(v, f.lo_code), f.hi_code);
            let same = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(r, v))) as u32;
            clipped |= (!same & 0xFF) << (8 * h);
            res[h] = r;
        }
        // Back to chain order: the pack works within 128-bit halves, as the interleave did.
        let packed = _mm256_packs_epi32(res[0], res[1]);
        _mm256_storeu_si256(out.as_mut_ptr().add(c) as *mut __m256i, packed);
        while clipped != 0 {
            let bit = clipped.trailing_zeros() as usize;
            clipped &= clipped - 1;
            // Bit `8 h + l`: lane `l` of half `h`; lanes 0-3 are chains 4h + l, 4-7 are 8 + 4h + l - 4.
            let (h, l) = (bit / 8, bit % 8);
            let chain = if l < 4 {
                4 * h + l
            } else {
                8 + 4 * h + (l - 4)
            };
            state_cnt[c + chain] += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bus_sum_avx2(
    row: &[i16],
    start: usize,
    b: usize,
    rx: &[i16],
    acc: &mut [i32],
    from: usize,
) {
    if b == 1 && from == 0 {
        // One chain: a dot product, sixteen products per `vpmaddwd` (pairs summed exactly).
        let xs = &rx[start..start + row.len()];
        let mut sum = _mm256_setzero_si256();
        let mut n = 0;
        while n + CHAINS <= row.len() {
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(load16(row, n), load16(xs, n)));
            n += CHAINS;
        }
        let h = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
        let mut s = _mm_cvtsi128_si32(h);
        for (&w, &x) in row[n..].iter().zip(&xs[n..]) {
            s = s.wrapping_add(w as i32 * x as i32);
        }
        acc[0] = s;
        return;
    }
    let mut c0 = from;
    while c0 + CHAINS <= b {
        let mut lo = [_mm256_setzero_si256(); 1];
        let mut hi = [_mm256_setzero_si256(); 1];
        let mut n = 0;
        while n + 1 < row.len() {
            let cp = pair_at(row, n);
            let o = (start + n) * b + c0;
            madd_rows::<1>(&mut lo, &mut hi, cp, rx, o, Some(o + b));
            n += 2;
        }
        if n < row.len() {
            let cp = pair(row[n], 0);
            madd_rows::<1>(&mut lo, &mut hi, cp, rx, (start + n) * b + c0, None);
        }
        let first = _mm256_permute2x128_si256::<0x20>(lo[0], hi[0]);
        let second = _mm256_permute2x128_si256::<0x31>(lo[0], hi[0]);
        // lo = chains 0-3 | 8-11, hi = 4-7 | 12-15: the low halves are chains 0-7.
        _mm256_storeu_si256(acc.as_mut_ptr().add(c0) as *mut __m256i, first);
        _mm256_storeu_si256(acc.as_mut_ptr().add(c0 + 8) as *mut __m256i, second);
        c0 += CHAINS;
    }
    for c in c0..b {
        let mut s = 0i32;
        for (n, &w) in row.iter().enumerate() {
            s = s.wrapping_add(w as i32 * rx[(start + n) * b + c] as i32);
        }
        acc[c] = s;
    }
}

/// Chains per AVX-512 block (16-bit states in a 512-bit register).
pub const CHAINS512: usize = 32;

/// `acc_lo/hi[blk] += c1 ra[blk] + c2 rb[blk]` for the `NB` blocks of 32 chains at `o1`, `o2`
/// (`o2 = None`: `c2` is absent), with `vpdpwssd` (the products and the addition in one
/// instruction, the same 32-bit sums as `vpmaddwd` and `vpaddd`). As in [`madd_rows`], `lo`
/// holds the first four chains of every eight, `hi` the last four.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dp_rows<const NB: usize>(
    lo: &mut [__m512i; NB],
    hi: &mut [__m512i; NB],
    cp: __m512i,
    s: &[i16],
    o1: usize,
    o2: Option<usize>,
) {
    for blk in 0..NB {
        debug_assert!(o1 + (blk + 1) * CHAINS512 <= s.len());
        let a = _mm512_loadu_si512(s.as_ptr().add(o1 + blk * CHAINS512) as *const _);
        let b = match o2 {
            Some(o2) => {
                debug_assert!(o2 + (blk + 1) * CHAINS512 <= s.len());
                _mm512_loadu_si512(s.as_ptr().add(o2 + blk * CHAINS512) as *const _)
            }
            None => _mm512_setzero_si512(),
        };
        lo[blk] = _mm512_dpwssd_epi32(lo[blk], _mm512_unpacklo_epi16(a, b), cp);
        hi[blk] = _mm512_dpwssd_epi32(hi[blk], _mm512_unpackhi_epi16(a, b), cp);
    }
}

/// [`align`] of sixteen 32-bit terms.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn align512(v: __m512i, s: i32) -> __m512i {
    if s >= 0 {
        _mm512_sll_epi32(v, _mm_cvtsi32_si128(s))
    } else {
        let r = -s;
        let half = _mm512_set1_epi32(1 << (r - 1));
        _mm512_sra_epi32(_mm512_add_epi32(v, half), _mm_cvtsi32_si128(r))
    }
}

/// The 128-bit quarters `(0, 2)` of `a` and `(0, 2)` of `b` (`LO`), or `(1, 3)` of each: 32 chain
/// values in chain order, split into the `lo`/`hi` order of [`dp_rows`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn split512(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    let lo = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    let hi = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    (
        _mm512_permutex2var_epi64(a, lo, b),
        _mm512_permutex2var_epi64(a, hi, b),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
unsafe fn units_avx512(
    p: &Program<Fixed>,
    k: &FixedKernel,
    u: &UnitsInputs<'_>,
    out: &mut [i16],
    state_cnt: &mut [u64],
) {
    let mut f = Finish::new(p, k, u.m, u.units.start);
    let b = u.b;
    for (n, i) in u.units.clone().enumerate() {
        f.diag = _mm256_set1_epi32(p.diag[i] as i32);
        let ui = u.unit(i);
        let o = &mut out[n * b..(n + 1) * b];
        let mut c0 = 0;
        while c0 + 2 * CHAINS512 <= b {
            unit_blocks512::<2>(p, &f, &ui, c0, o, state_cnt);
            c0 += 2 * CHAINS512;
        }
        while c0 + CHAINS512 <= b {
            unit_blocks512::<1>(p, &f, &ui, c0, o, state_cnt);
            c0 += CHAINS512;
        }
        unit_from(p, &f, &ui, c0, o, state_cnt)
    }
}

/// [`unit_blocks`] on `NB` blocks of 32 chains from `c0`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unit_blocks512<const NB: usize>(
    p: &Program<Fixed>,
    f: &Finish,
    u: &UnitInputs<'_>,
    c0: usize,
    out: &mut [i16],
    state_cnt: &mut [u64],
) {
    let (i, b) = (u.i, u.b);
    let wide = |v: __m256i| _mm512_broadcastd_epi32(_mm256_castsi256_si128(v));
    let mut lo = [_mm512_setzero_si512(); NB];
    let mut hi = [_mm512_setzero_si512(); NB];
    let pair_at512 = |s: &[i16], q: usize| {
        debug_assert!(q + 1 < s.len());
        _mm512_set1_epi32(std::ptr::read_unaligned(s.as_ptr().add(q) as *const i32))
    };
    bus_terms::<__m512i, NB>(f.line_shift, u, c0, &mut lo, &mut hi);
    // Couplings, two at a time, into two sets of accumulators in turn: `vpdpwssd` puts its
    // multiply's latency into the accumulator's dependency chain, which one set would make the
    // bound (the sums are exact, so their order does not matter).
    let (p0, p1) = (p.row_ptr[i] as usize, p.row_ptr[i + 1] as usize);
    let (coef, col) = (&p.coef[p0..p1], &u.offsets[p0..p1]);
    let mut lo2 = [_mm512_setzero_si512(); NB];
    let mut hi2 = [_mm512_setzero_si512(); NB];
    let rows = |q: usize| (col[q] as usize + c0, col[q + 1] as usize + c0);
    let mut q = 0;
    while q + 3 < coef.len() {
        let (a1, a2) = rows(q);
        dp_rows::<NB>(&mut lo, &mut hi, pair_at512(coef, q), u.rx, a1, Some(a2));
        let (a1, a2) = rows(q + 2);
        dp_rows::<NB>(
            &mut lo2,
            &mut hi2,
            pair_at512(coef, q + 2),
            u.rx,
            a1,
            Some(a2),
        );
        q += 4;
    }
    if q + 1 < coef.len() {
        let (a1, a2) = rows(q);
        dp_rows::<NB>(&mut lo, &mut hi, pair_at512(coef, q), u.rx, a1, Some(a2));
        q += 2;
    }
    if q < coef.len() {
        let cp = <__m512i as Block>::pair(coef[q], 0);
        dp_rows::<NB>(&mut lo2, &mut hi2, cp, u.rx, col[q] as usize + c0, None);
    }
    for blk in 0..NB {
        lo[blk] = _mm512_add_epi32(lo[blk], lo2[blk]);
        hi[blk] = _mm512_add_epi32(hi[blk], hi2[blk]);
    }
    // (d, 0) and (amp, 0) in every 32-bit word, for `vpmaddwd`.
    let low16 = |v: __m256i| _mm512_and_si512(wide(v), _mm512_set1_epi32(0xFFFF));
    let (diag, amp) = (low16(f.diag), low16(f.amp));
    let gate = f.gate.map(|(l, h)| (wide(l), wide(h)));
    let (lo_code, hi_code) = (wide(f.lo_code), wide(f.hi_code));
    for blk in 0..NB {
        let c = c0 + blk * CHAINS512;
        let o = i * b + c;
        // Bias.
        debug_assert!(o + CHAINS512 <= u.bias.len());
        let (hl, hh) = split512(
            _mm512_loadu_si512(u.bias.as_ptr().add(o) as *const _),
            _mm512_loadu_si512(u.bias.as_ptr().add(o + 16) as *const _),
        );
        let terms = [_mm512_add_epi32(lo[blk], hl), _mm512_add_epi32(hi[blk], hh)];
        debug_assert!(o + CHAINS512 <= u.x.len() && o + CHAINS512 <= u.z.len());
        let xv = _mm512_loadu_si512(u.x.as_ptr().add(o) as *const _);
        let zv = _mm512_loadu_si512(u.z.as_ptr().add(o) as *const _);
        // The self and noise products by `vpmaddwd` of (x, 0) with (d, 0) and of (z, 0) with
        // (amp, 0): exact, in the `lo`/`hi` chain order, one operation each where `vpmulld`
        // takes two on the port the multiplies and shifts share.
        let zero = _mm512_setzero_si512();
        let xs = [
            _mm512_unpacklo_epi16(xv, zero),
            _mm512_unpackhi_epi16(xv, zero),
        ];
        let zs = [
            _mm512_unpacklo_epi16(zv, zero),
            _mm512_unpackhi_epi16(zv, zero),
        ];
        let mut res = [_mm512_setzero_si512(); 2];
        let mut clipped = [0u16; 2];
        for h in 0..2 {
            let acc0 = _mm512_madd_epi16(xs[h], diag);
            let mut acc = _mm512_add_epi32(acc0, terms[h]);
            if let Some((glo, ghi)) = gate {
                // A closed gate keeps only the self term.
                let xi = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(xs[h]));
                let closed = _mm512_cmpgt_epi32_mask(glo, xi) | _mm512_cmpgt_epi32_mask(xi, ghi);
                acc = _mm512_mask_blend_epi32(closed, acc, acc0);
            }
            acc = _mm512_add_epi32(acc, align512(_mm512_madd_epi16(zs[h], amp), f.noise_shift));
            // Rounding right shift without overflow: (acc >> s) + bit (s - 1) of acc.
            let s = f.state_shift;
            let v = if s == 0 {
                acc
            } else {
                _mm512_add_epi32(
                    _mm512_sra_epi32(acc, _mm_cvtsi32_si128(s)),
                    _mm512_and_si512(
                        _mm512_sra_epi32(acc, _mm_cvtsi32_si128(s - 1)),
                        _mm512_set1_epi32(1),
                    ),
                )
            };
            let r = _mm512_min_epi32(_mm512_max_epi32(v, lo_code), hi_code);
            clipped[h] = _mm512_cmpneq_epi32_mask(r, v);
            res[h] = r;
        }
        // Back to chain order: the pack works within 128-bit quarters, as the interleave did.
        let packed = _mm512_packs_epi32(res[0], res[1]);
        debug_assert!(c + CHAINS512 <= out.len());
        _mm512_storeu_si512(out.as_mut_ptr().add(c) as *mut _, packed);
        for (h, &bits) in clipped.iter().enumerate() {
            let mut bits = bits as u32;
            while bits != 0 {
                let l = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // Element `l` of half `h`: quarter l / 4 holds chains 8 (l / 4) + 4 h + 0..3.
                state_cnt[c + 8 * (l / 4) + 4 * h + l % 4] += 1;
            }
        }
    }
}

/// One row: [`bus_sums_avx512`] of `[row]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
unsafe fn bus_sum_avx512(row: &[i16], start: usize, b: usize, rx: &[i16], acc: &mut [i32]) {
    bus_sums_avx512(&[row], start, b, rx, acc)
}

/// [`bus_sums_unchecked`]: blocks of 32 chains, up to eight rows at a time; the chains past the
/// last block row by row ([`bus_sum_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
unsafe fn bus_sums_avx512<T: AsRef<[i16]>>(
    rows: &[T],
    start: usize,
    b: usize,
    rx: &[i16],
    acc: &mut [i32],
) {
    let mut c0 = 0;
    if b > 1 {
        while c0 + CHAINS512 <= b {
            let mut r = 0;
            while r < rows.len() {
                let k = match rows.len() - r {
                    n if n >= 8 => 8,
                    n if n >= 4 => 4,
                    n if n >= 2 => 2,
                    _ => 1,
                };
                let rs = &rows[r..r + k];
                match k {
                    8 => bus_rows512::<8, T>(rs, r, start, b, rx, c0, acc),
                    4 => bus_rows512::<4, T>(rs, r, start, b, rx, c0, acc),
                    2 => bus_rows512::<2, T>(rs, r, start, b, rx, c0, acc),
                    _ => bus_rows512::<1, T>(rs, r, start, b, rx, c0, acc),
                }
                r += k;
            }
            c0 += CHAINS512;
        }
    }
    for (r, row) in rows.iter().enumerate() {
        bus_sum_avx2(row.as_ref(), start, b, rx, &mut acc[r * b..(r + 1) * b], c0);
    }
}

/// Rows `first .. first + R` (`rows`) of [`bus_sums_avx512`] for the 32 chains at `c0`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bus_rows512<const R: usize, T: AsRef<[i16]>>(
    rows: &[T],
    first: usize,
    start: usize,
    b: usize,
    rx: &[i16],
    c0: usize,
    acc: &mut [i32],
) {
    debug_assert_eq!(rows.len(), R);
    let rows: [&[i16]; R] = std::array::from_fn(|k| rows[k].as_ref());
    let len = rows[0].len();
    let mut lo = [_mm512_setzero_si512(); R];
    let mut hi = [_mm512_setzero_si512(); R];
    let load = |n: usize| {
        let o = (start + n) * b + c0;
        debug_assert!(o + CHAINS512 <= rx.len());
        _mm512_loadu_si512(rx.as_ptr().add(o) as *const _)
    };
    let mut n = 0;
    while n + 1 < len {
        let (a, bb) = (load(n), load(n + 1));
        let (ul, uh) = (_mm512_unpacklo_epi16(a, bb), _mm512_unpackhi_epi16(a, bb));
        for k in 0..R {
            let cp = _mm512_set1_epi32(std::ptr::read_unaligned(
                rows[k].as_ptr().add(n) as *const i32
            ));
            lo[k] = _mm512_dpwssd_epi32(lo[k], ul, cp);
            hi[k] = _mm512_dpwssd_epi32(hi[k], uh, cp);
        }
        n += 2;
    }
    if n < len {
        let (a, z) = (load(n), _mm512_setzero_si512());
        let (ul, uh) = (_mm512_unpacklo_epi16(a, z), _mm512_unpackhi_epi16(a, z));
        for k in 0..R {
            let cp = _mm512_set1_epi32(rows[k][n] as u16 as i32);
            lo[k] = _mm512_dpwssd_epi32(lo[k], ul, cp);
            hi[k] = _mm512_dpwssd_epi32(hi[k], uh, cp);
        }
    }
    // lo = chains 0-3 | 8-11 | 16-19 | 24-27, hi = 4-7 | 12-15 | 20-23 | 28-31.
    let first_half = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    let second_half = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    for k in 0..R {
        let o = (first + k) * b + c0;
        debug_assert!(o + CHAINS512 <= acc.len());
        _mm512_storeu_si512(
            acc.as_mut_ptr().add(o) as *mut _,
            _mm512_permutex2var_epi64(lo[k], first_half, hi[k]),
        );
        _mm512_storeu_si512(
            acc.as_mut_ptr().add(o + 16) as *mut _,
            _mm512_permutex2var_epi64(lo[k], second_half, hi[k]),
        );
    }
}
