//! The fixed engine's unit updates eight units at a time (AVX2), for units whose accumulator
//! provably never saturates ([`Arith::unit_is_safe`](crate::engine::Arith::unit_is_safe)).
//!
//! Without saturation every accumulator addition is exact, so a unit's new state is the exact
//! integer sum of its terms, whatever order they are added in: the same bits as the scalar update
//! of `docs/fixed-point.md` §3. Per block of eight units of one module, each unit's couplings are
//! summed one entry at a time in the integer units, every entry one word (the coupling in its low
//! 16 bits, the column above): on the cores this was measured on, two loads and a multiply per
//! entry beat gathering the eight units' states with `vpgatherdd`, whose cost is fixed per
//! instruction. Substrates of more than 2^16 units, whose columns need more bits, gather: the
//! block's rows padded to its longest row and stored entry-major ("ELL": columns `u32`, couplings
//! `i16`, padding with coupling zero). The eight sums then join the vector part: the self terms,
//! the bus terms (the block's bus weights in pairs of lines, lines `2k` and `2k + 1` of all eight
//! units together, each unit's pair one 32-bit word for `vpmaddwd` against the pair of line
//! values), the biases, the noise and the rounding of the new states.
//!
//! A block with a unit that is not provably safe, and the units of a module's range that do not
//! start a block, take the scalar checked path ([`Program::update_units`]).

use crate::engine::{Fixed, Program, Saturation};
use crate::noise::NOISE_FORMAT;

/// Units per block (the AVX2 lanes of 32-bit accumulators).
pub const BLOCK: usize = 8;

/// The lane-major constants of a fixed program (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct FixedKernel {
    /// Per module, the index of its first block.
    module_block: Vec<usize>,
    /// Per block and lane (`[block * BLOCK + lane]`), the first of the unit's entries in
    /// `entries`; one more element closes the last. Empty in the gather form.
    entry_ptr: Vec<u32>,
    /// Every unit's couplings in its row's order, block by block and lane by lane, each as one
    /// word: `-eta A_ij` in the low 16 bits, the column `j` in the high 16 bits.
    entries: Vec<u32>,
    /// Gather form: per block, its first entry group in `col`/`coef` (groups of [`BLOCK`]).
    block_ptr: Vec<u32>,
    /// Gather form: per block, its padded row length.
    block_width: Vec<u32>,
    /// Gather form: columns, `[group][lane]`.
    col: Vec<u32>,
    /// Gather form: couplings `-eta A_ij`, `[group][lane]`.
    coef: Vec<i16>,
    /// Self coefficients per block, `[block][lane]`.
    diag: Vec<i16>,
    /// Per module, its bus weights `[block][line pair][lane][2]` (an odd last line paired with
    /// a zero weight).
    bus: Vec<Vec<i16>>,
    /// Per module, `acc_frac + k_m - (coupling.frac + bus.frac)`: the bus term's shift (left
    /// when positive; `k_m` the module's state shift).
    line_shift: Vec<i32>,
    /// Per module, `acc_frac + k_m - (NOISE_FORMAT.frac + noise_gain.frac)`: the noise term's
    /// shift.
    noise_shift: Vec<i32>,
    /// `acc_frac - state.frac`: the rounding right shift of the new state.
    state_shift: u32,
}

impl FixedKernel {
    /// The layout of `p` (the gather form above 2^16 units), or `None` when its formats need
    /// shifts the vector form does not take (a term shifted right by 31 or more bits).
    pub fn new(p: &Program<Fixed>) -> Option<Self> {
        Self::build(p, p.units() > 1 << 16)
    }

    /// [`FixedKernel::new`] in the gather form whatever the size (the form substrates of more
    /// than 2^16 units take; the same bits).
    pub fn with_gathers(p: &Program<Fixed>) -> Option<Self> {
        Self::build(p, true)
    }

    fn build(p: &Program<Fixed>, gather: bool) -> Option<Self> {
        let f = &p.arith.formats;
        let acc_frac = f.acc().frac as i32;
        let a = &p.arith;
        let line_shift: Vec<i32> = (0..p.modules.len())
            .map(|m| acc_frac + a.shift(m) as i32 - (f.coupling.frac + f.bus.frac) as i32)
            .collect();
        let noise_shift: Vec<i32> = (0..p.modules.len())
            .map(|m| acc_frac + a.shift(m) as i32 - (NOISE_FORMAT.frac + f.noise_gain.frac) as i32)
            .collect();
        let state_shift = acc_frac - f.state.frac as i32;
        if line_shift
            .iter()
            .chain(&noise_shift)
            .any(|&s| !(-30..=30).contains(&s))
            || !(0..=30).contains(&state_shift)
        {
            return None;
        }
        let mut k = FixedKernel {
            line_shift,
            noise_shift,
            state_shift: state_shift as u32,
            ..Default::default()
        };
        for (m, range) in p.modules.iter().enumerate() {
            k.module_block.push(k.diag.len() / BLOCK);
            let lines = p.lines_of_module(m);
            let mut bus = Vec::new();
            for start in range.clone().step_by(BLOCK) {
                let units: Vec<usize> = (start..(start + BLOCK).min(range.end)).collect();
                if !gather {
                    for lane in 0..BLOCK {
                        k.entry_ptr.push(k.entries.len() as u32);
                        if let Some(&i) = units.get(lane) {
                            let (q0, q1) = (p.row_ptr[i] as usize, p.row_ptr[i + 1] as usize);
                            for (&c, &v) in p.col[q0..q1].iter().zip(&p.coef[q0..q1]) {
                                k.entries.push((v as u16 as u32) | (c << 16));
                            }
                        }
                    }
                }
                let width = if !gather {
                    0
                } else {
                    units
                        .iter()
                        .map(|&i| (p.row_ptr[i + 1] - p.row_ptr[i]) as usize)
                        .max()
                        .unwrap_or(0)
                };
                k.block_ptr.push((k.col.len() / BLOCK) as u32);
                k.block_width.push(width as u32);
                for e in 0..width {
                    for lane in 0..BLOCK {
                        let (c, v) = units
                            .get(lane)
                            .and_then(|&i| {
                                let q = p.row_ptr[i] as usize + e;
                                (q < p.row_ptr[i + 1] as usize).then(|| (p.col[q], p.coef[q]))
                            })
                            .unwrap_or((0, 0));
                        k.col.push(c);
                        k.coef.push(v);
                    }
                }
                for lane in 0..BLOCK {
                    k.diag.push(units.get(lane).map_or(0, |&i| p.diag[i]));
                }
                for pair in 0..lines.div_ceil(2) {
                    for lane in 0..BLOCK {
                        for line in [2 * pair, 2 * pair + 1] {
                            bus.push(
                                units
                                    .get(lane)
                                    .filter(|_| line < lines)
                                    .map_or(0, |&i| p.bus_w[m][(i - range.start) * lines + line]),
                            );
                        }
                    }
                }
            }
            k.bus.push(bus);
        }
        if !gather {
            k.entry_ptr.push(k.entries.len() as u32);
        }
        Some(k)
    }

    /// `(line_shift, noise_shift, state_shift)` of module `m`: the alignments of the bus and
    /// noise terms to the accumulator (left when positive, rounding right when negative) and the
    /// rounding right shift of the new state.
    pub fn shifts(&self, m: usize) -> (i32, i32, u32) {
        (self.line_shift[m], self.noise_shift[m], self.state_shift)
    }
}

/// Step 3 for units `range` of module `m` of a fixed program with kernel `k`, as
/// [`Program::update_units`] (same arguments; `rx` holds `rho(x)` of every unit and at least one
/// more element, and `xmax` bounds `|x|` and `|rho(x)|`).
#[allow(clippy::too_many_arguments)]
pub fn update_units(
    p: &Program<Fixed>,
    k: &FixedKernel,
    m: usize,
    range: std::ops::Range<usize>,
    x: &[i16],
    rx: &[i16],
    z: &[i16],
    lines: &[i16],
    xmax: f64,
    out: &mut [i16],
    sat: &mut Saturation,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if !p.force_checks && rx.len() > x.len() && crate::isa::Isa::best() >= crate::isa::Isa::Avx2
        {
            // SAFETY: the CPU supports AVX2 (checked above); `rx` has the padding element the
            // gathers read past the last unit.
            unsafe { update_units_avx2(p, k, m, range, x, rx, z, lines, xmax, out, sat) };
            return;
        }
    }
    let _ = k;
    p.update_units(m, range, x, rx, z, lines, xmax, out, sat)
}

/// [`update_units`] with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn update_units_avx2(
    p: &Program<Fixed>,
    k: &FixedKernel,
    m: usize,
    range: std::ops::Range<usize>,
    x: &[i16],
    rx: &[i16],
    z: &[i16],
    lines: &[i16],
    xmax: f64,
    out: &mut [i16],
    sat: &mut Saturation,
) {
    use std::arch::x86_64::*;
    let a = &p.arith;
    let module = p.modules[m].clone();
    let nl = lines.len();
    let lmax = lines.iter().map(|&l| (l as f64).abs()).fold(0.0, f64::max);
    let state = a.formats.state;
    let (lo_code, hi_code) = (state.min_code() as i32, state.max_code() as i32);
    let clamp = a.module_clamp_codes(m);
    let (line_shift, noise_shift, _) = k.shifts(m);
    let amp = _mm256_set1_epi32(a.noise_amp as i32);
    let pairs = nl.div_ceil(2);
    // Lines `2k`, `2k + 1` as one 32-bit word (`2k` low), the odd last line paired with zero.
    let pair_word = |k: usize| -> i32 {
        let hi = lines.get(2 * k + 1).copied().unwrap_or(0);
        ((lines[2 * k] as u16 as u32) | ((hi as u16 as u32) << 16)) as i32
    };
    const KEPT: usize = 32;
    let mut words = [0i32; KEPT];
    for (t, w) in words.iter_mut().enumerate().take(pairs) {
        *w = pair_word(t);
    }
    let line_pair =
        |t: usize| -> __m256i { _mm256_set1_epi32(if t < KEPT { words[t] } else { pair_word(t) }) };
    let rxp = rx.as_ptr() as *const i32;
    // The term's alignment to the accumulator (`qformat::align` on an exact 32-bit product).
    let align = |v: __m256i, s: i32| -> __m256i {
        if s >= 0 {
            _mm256_sllv_epi32(v, _mm256_set1_epi32(s))
        } else {
            let r = -s;
            let half = _mm256_set1_epi32(1 << (r - 1));
            _mm256_srav_epi32(_mm256_add_epi32(v, half), _mm256_set1_epi32(r))
        }
    };
    // One check for the whole module when the bound covering its units allows it.
    let all_safe = crate::engine::Arith::unit_is_safe(a, &p.module_bounds[m], xmax, lmax);
    let mut i = range.start;
    while i < range.end {
        let n = i - module.start;
        let valid = (range.end - i).min(BLOCK);
        let safe = n % BLOCK == 0 && (all_safe || (i..i + valid).all(|u| a_safe(p, u, xmax, lmax)));
        if !safe {
            // The scalar, checked path for this unit (or block).
            let end = if n % BLOCK == 0 {
                i + valid
            } else {
                (i + BLOCK - n % BLOCK).min(range.end)
            };
            let o = i - range.start;
            p.update_units(
                m,
                i..end,
                x,
                rx,
                z,
                lines,
                xmax,
                &mut out[o..o + end - i],
                sat,
            );
            i = end;
            continue;
        }
        let b = k.module_block[m] + n / BLOCK;
        let load16 = |s: &[i16]| -> __m256i {
            if valid == BLOCK {
                _mm256_cvtepi16_epi32(_mm_loadu_si128(s[i..i + BLOCK].as_ptr() as *const __m128i))
            } else {
                let mut t = [0i16; BLOCK];
                t[..valid].copy_from_slice(&s[i..i + valid]);
                _mm256_cvtepi16_epi32(_mm_loadu_si128(t.as_ptr() as *const __m128i))
            }
        };
        let xi = load16(x);
        let zi = load16(z);
        let h = if valid == BLOCK {
            _mm256_loadu_si256(p.bias[i..i + BLOCK].as_ptr() as *const __m256i)
        } else {
            let mut t = [0i32; BLOCK];
            t[..valid].copy_from_slice(&p.bias[i..i + valid]);
            _mm256_loadu_si256(t.as_ptr() as *const __m256i)
        };
        let d = _mm256_cvtepi16_epi32(_mm_loadu_si128(
            k.diag[b * BLOCK..].as_ptr() as *const __m128i
        ));
        let acc0 = _mm256_mullo_epi32(d, xi);
        let mut acc = acc0;
        let (g0, w) = (k.block_ptr[b] as usize, k.block_width[b] as usize);
        let cols = &k.col[g0 * BLOCK..(g0 + w) * BLOCK];
        let coefs = &k.coef[g0 * BLOCK..(g0 + w) * BLOCK];
        // Two bytes per state: read the 32-bit word at the state; the coupling, zero-extended
        // into a 32-bit word, multiplies its low half alone (`vpmaddwd`: c x + 0 x').
        let entry = |e: usize| -> __m256i {
            let idx = _mm256_loadu_si256(cols.as_ptr().add(e * BLOCK) as *const __m256i);
            let g = _mm256_i32gather_epi32::<2>(rxp, idx);
            let c = _mm256_cvtepu16_epi32(_mm_loadu_si128(
                coefs.as_ptr().add(e * BLOCK) as *const __m128i
            ));
            _mm256_madd_epi16(c, g)
        };
        let mut acc2 = _mm256_setzero_si256();
        let mut e = 0;
        while e + 1 < w {
            acc = _mm256_add_epi32(acc, entry(e));
            acc2 = _mm256_add_epi32(acc2, entry(e + 1));
            e += 2;
        }
        if e < w {
            acc = _mm256_add_epi32(acc, entry(e));
        }
        acc = _mm256_add_epi32(acc, acc2);
        if !k.entry_ptr.is_empty() {
            // Couplings, unit by unit in the integer units (two loads, a multiply and an add per
            // entry; the columns were taken from the program's rows, all below the unit count).
            let mut sums = [0i32; BLOCK];
            let ptr = &k.entry_ptr[b * BLOCK..=(b + 1) * BLOCK];
            let (ent, rxs) = (k.entries.as_ptr(), rx.as_ptr());
            for (lane, sum) in sums.iter_mut().enumerate() {
                let mut s = 0i32;
                for q in ptr[lane] as usize..ptr[lane + 1] as usize {
                    let word = *ent.add(q);
                    s = s.wrapping_add(
                        word as u16 as i16 as i32 * *rxs.add((word >> 16) as usize) as i32,
                    );
                }
                *sum = s;
            }
            acc = _mm256_add_epi32(acc, _mm256_loadu_si256(sums.as_ptr() as *const __m256i));
        }
        // Bus terms, two lines per `vpmaddwd` (an exact 32-bit sum of two exact products): when
        // their alignment is a left shift, the shifted sum is the sum of the shifted products and
        // they are summed first; otherwise each product is rounded on its own.
        let bw = &k.bus[m][(n / BLOCK) * pairs * 2 * BLOCK..];
        if line_shift >= 0 {
            let mut bus = _mm256_setzero_si256();
            for t in 0..pairs {
                let w = _mm256_loadu_si256(bw[t * 2 * BLOCK..].as_ptr() as *const __m256i);
                bus = _mm256_add_epi32(bus, _mm256_madd_epi16(w, line_pair(t)));
            }
            acc = _mm256_add_epi32(acc, align(bus, line_shift));
        } else {
            let low = _mm256_set1_epi32(0xFFFF);
            for t in 0..pairs {
                let w = _mm256_loadu_si256(bw[t * 2 * BLOCK..].as_ptr() as *const __m256i);
                let lp = line_pair(t);
                let first = _mm256_madd_epi16(w, _mm256_and_si256(lp, low));
                let second = _mm256_madd_epi16(w, _mm256_andnot_si256(low, lp));
                acc = _mm256_add_epi32(acc, align(first, line_shift));
                acc = _mm256_add_epi32(acc, align(second, line_shift));
            }
        }
        acc = _mm256_add_epi32(acc, h);
        if let Some((lo, hi)) = clamp {
            // A closed gate keeps only the self term.
            let open = _mm256_andnot_si256(
                _mm256_or_si256(
                    _mm256_cmpgt_epi32(_mm256_set1_epi32(lo as i32), xi),
                    _mm256_cmpgt_epi32(xi, _mm256_set1_epi32(hi as i32)),
                ),
                _mm256_set1_epi32(-1),
            );
            acc = _mm256_blendv_epi8(acc0, acc, open);
        }
        acc = _mm256_add_epi32(acc, align(_mm256_mullo_epi32(zi, amp), noise_shift));
        // Rounding right shift without overflow: (acc >> s) + bit (s - 1) of acc.
        let s = k.state_shift as i32;
        let v = if s == 0 {
            acc
        } else {
            _mm256_add_epi32(
                _mm256_srav_epi32(acc, _mm256_set1_epi32(s)),
                _mm256_and_si256(
                    _mm256_srav_epi32(acc, _mm256_set1_epi32(s - 1)),
                    _mm256_set1_epi32(1),
                ),
            )
        };
        let c = _mm256_min_epi32(
            _mm256_max_epi32(v, _mm256_set1_epi32(lo_code)),
            _mm256_set1_epi32(hi_code),
        );
        let same = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(c, v))) as u32;
        let clipped = !same & ((1u32 << valid) - 1);
        if clipped != 0 {
            sat.state += clipped.count_ones() as u64;
        }
        // The eight new states as 16-bit values (in range after the clamp).
        let packed = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
        let o = i - range.start;
        if valid == BLOCK {
            _mm_storeu_si128(out[o..o + BLOCK].as_mut_ptr() as *mut __m128i, packed);
        } else {
            let mut t = [0i16; BLOCK];
            _mm_storeu_si128(t.as_mut_ptr() as *mut __m128i, packed);
            out[o..o + valid].copy_from_slice(&t[..valid]);
        }
        i += valid;
    }
}

#[inline(always)]
fn a_safe(p: &Program<Fixed>, i: usize, xmax: f64, lmax: f64) -> bool {
    use crate::engine::Arith;
    p.arith.unit_is_safe(&p.bounds[i], xmax, lmax)
}
