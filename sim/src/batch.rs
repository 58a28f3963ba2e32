//! Many independent chains on one substrate, in lock step.
//!
//! A [`BatchEngine`] runs `B` chains of the update rule ([`crate::engine`]) on the same constants:
//! each coupling, bus weight and self coefficient is read once per sweep and applied to all `B`
//! states, which are stored chain-minor (`x[unit * B + chain]`) so that the innermost loop runs
//! over chains and vectorises. Every chain has its own noise lanes, biases and saturation
//! counters, and every chain is bit for bit the single-chain [`Engine`](crate::engine::Engine)
//! with the same lanes and biases: the accumulator of each chain sees the same additions in the
//! same order, each saturating as specified.
//!
//! Chains are split into contiguous groups, one per worker thread. A group is a lock-step batch of
//! its own; groups never exchange data, so a call that runs many sweeps ([`BatchEngine::run`],
//! [`BatchEngine::relax_average`]) hands each group to its thread once. The threads are a
//! persistent pool ([`crate::pool::Pool`]) started with the engine. Results do not depend on the
//! thread count.

use crate::engine::{Arith, Observe, Program, Saturation, Side};
use crate::model::Substrate;
use crate::noise::{NoiseLane, Taus88};
use crate::pool::{for_each_mut, Pool};

/// The lock-step state of a group of chains.
#[derive(Clone, Debug)]
struct Group<A: Arith> {
    /// Chains in the group.
    b: usize,
    /// State, `x[unit * b + chain]`.
    x: Vec<A::State>,
    /// `rho(x)` of the sweep's state (scratch).
    rx: Vec<A::State>,
    next: Vec<A::State>,
    /// Noise of the sweep, `z[unit * b + chain]`.
    z: Vec<A::Noise>,
    /// Biases, `bias[unit * b + chain]`.
    bias: Vec<A::Bias>,
    /// Per coupling `q` of the program, `col[q] * b`: where its column's states start.
    offsets: Vec<u32>,
    /// Per unit, the accumulator bound with the unit's largest bias over the group's chains.
    bounds: Vec<A::UnitBound>,
    /// Per module, a bound covering its units' ([`Arith::bound_cover`]).
    module_bounds: Vec<A::UnitBound>,
    bounds_dirty: bool,
    /// Noise lanes' generator states by component, `lanes[component][lane * b + chain]`.
    lanes: [Vec<u32>; 3],
    /// Unit-update counters, `saturation[chain * M + module]`.
    saturation: Vec<Saturation>,
    /// Bus-line counters per chain.
    bus_saturation: Vec<Saturation>,
    // Scratch.
    acc: Vec<A::Acc>,
    acc2: Vec<A::Acc>,
    cnt2: Vec<u64>,
    /// A bus side's sums, `[row * b + chain]`.
    bus_acc: Vec<A::Acc>,
    gate: Vec<bool>,
    acc_cnt: Vec<u64>,
    state_cnt: Vec<u64>,
    /// Per bus, `[encoder lines, decoder lines]`, each `[rank * b + chain]`.
    bus_lines: Vec<[Vec<A::Line>; 2]>,
    /// Per module, its line vector, `[line * b + chain]`.
    module_lines: Vec<Vec<A::Line>>,
}

/// `acc + c x`, its accumulator saturations added to `cnt`.
#[inline(always)]
fn mac<A: Arith, const CHECK: bool>(
    a: &A,
    acc: A::Acc,
    c: A::Coef,
    x: A::State,
    cnt: &mut u64,
) -> A::Acc {
    let mut s = Saturation::default();
    let r = a.mac::<CHECK>(acc, c, x, &mut s);
    *cnt += s.acc;
    r
}

impl<A: Arith> Group<A> {
    fn new(prog: &Program<A>, seeds: &[u64]) -> Self {
        let b = seeds.len();
        let d = prog.units();
        let a = &prog.arith;
        let mut bias = Vec::with_capacity(d * b);
        for &h in &prog.bias {
            bias.extend(std::iter::repeat(h).take(b));
        }
        assert!(
            (d * b) as u64 <= u32::MAX as u64,
            "{d} units x {b} chains exceed the batch's 32-bit offsets"
        );
        let mut g = Group {
            b,
            offsets: prog.col.iter().map(|&j| j * b as u32).collect(),
            x: vec![A::State::default(); d * b],
            rx: vec![A::State::default(); d * b],
            next: vec![A::State::default(); d * b],
            z: vec![A::Noise::default(); d * b],
            bias,
            bounds: Vec::new(),
            module_bounds: Vec::new(),
            bounds_dirty: true,
            lanes: Default::default(),
            saturation: vec![Saturation::default(); b * prog.modules.len()],
            bus_saturation: vec![Saturation::default(); b],
            acc: vec![a.zero(); b],
            acc2: vec![a.zero(); b],
            cnt2: vec![0; b],
            bus_acc: vec![
                a.zero();
                b * prog
                    .buses
                    .iter()
                    .map(|bus| bus.gain.len())
                    .max()
                    .unwrap_or(0)
            ],
            gate: vec![true; b],
            acc_cnt: vec![0; b],
            state_cnt: vec![0; b],
            bus_lines: prog
                .buses
                .iter()
                .map(|bus| {
                    let k = bus.gain.len() * b;
                    [vec![A::Line::default(); k], vec![A::Line::default(); k]]
                })
                .collect(),
            module_lines: (0..prog.modules.len())
                .map(|m| vec![A::Line::default(); prog.lines_of_module(m) * b])
                .collect(),
        };
        g.restart(prog, seeds);
        g
    }

    fn restart(&mut self, prog: &Program<A>, seeds: &[u64]) {
        assert_eq!(seeds.len(), self.b, "one seed per chain");
        self.x.fill(A::State::default());
        let p = prog.lanes;
        self.lanes = Default::default();
        for l in 0..p as u32 {
            for &seed in seeds {
                let s = NoiseLane::new(seed, l).rng.s;
                for (comp, v) in self.lanes.iter_mut().zip(s) {
                    comp.push(v);
                }
            }
        }
        self.saturation.fill(Saturation::default());
        self.bus_saturation.fill(Saturation::default());
    }

    fn refresh_bounds(&mut self, prog: &Program<A>) {
        let a = &prog.arith;
        let b = self.b;
        let mut bounds = vec![A::UnitBound::default(); prog.units()];
        let mut module_bounds = Vec::with_capacity(prog.modules.len());
        for (m, range) in prog.modules.iter().enumerate() {
            let mut cover: Option<A::UnitBound> = None;
            let k = prog.lines_of_module(m);
            for (n, i) in range.clone().enumerate() {
                let row = &prog.coef[prog.row_ptr[i] as usize..prog.row_ptr[i + 1] as usize];
                let w = &prog.bus_w[m][n * k..(n + 1) * k];
                let h = self.bias[i * b..(i + 1) * b]
                    .iter()
                    .copied()
                    .fold(None, |best: Option<A::Bias>, h| match best {
                        Some(x) if a.bias_magnitude(x) >= a.bias_magnitude(h) => Some(x),
                        _ => Some(h),
                    })
                    .unwrap_or(prog.bias[i]);
                bounds[i] = a.unit_bound(m, prog.diag[i], row, w, h);
                cover = Some(match cover {
                    Some(c) => a.bound_cover(&c, &bounds[i]),
                    None => bounds[i],
                });
            }
            module_bounds.push(cover.unwrap_or_default());
        }
        self.bounds = bounds;
        self.module_bounds = module_bounds;
        self.bounds_dirty = false;
    }

    fn sweep(&mut self, prog: &Program<A>) {
        if self.bounds_dirty {
            self.refresh_bounds(prog);
        }
        #[cfg(target_arch = "x86_64")]
        {
            if crate::isa::Isa::best() == crate::isa::Isa::Avx512 {
                // SAFETY: the CPU supports AVX-512 (`Isa::best` is at most what it supports).
                unsafe { sweep_avx512(prog, self) };
                return;
            }
            if crate::isa::Isa::best() >= crate::isa::Isa::Avx2 {
                // SAFETY: the CPU supports AVX2 (`Isa::best` is at most what it supports).
                unsafe { sweep_avx2(prog, self) };
                return;
            }
        }
        sweep_body(prog, self);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sweep_avx2<A: Arith>(prog: &Program<A>, g: &mut Group<A>) {
    sweep_body(prog, g)
}

/// [`sweep_body`] compiled for AVX-512 (its loops over chains vectorise wider).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw")]
unsafe fn sweep_avx512<A: Arith>(prog: &Program<A>, g: &mut Group<A>) {
    sweep_body(prog, g)
}

/// One Jacobi sweep of every chain of `g`, in the order of `docs/fixed-point.md` §3 per chain.
#[inline(always)]
fn sweep_body<A: Arith>(prog: &Program<A>, g: &mut Group<A>) {
    let a = &prog.arith;
    let b = g.b;
    let p = prog.lanes;
    let Group {
        x,
        rx,
        next,
        z,
        bias,
        offsets,
        bounds,
        module_bounds,
        lanes,
        saturation,
        bus_saturation,
        acc,
        acc2,
        cnt2,
        bus_acc,
        gate,
        acc_cnt,
        state_cnt,
        bus_lines,
        module_lines,
        ..
    } = g;
    let acc = &mut acc[..b];
    let (acc2, cnt2) = (&mut acc2[..], &mut cnt2[..]);
    let gate = &mut gate[..b];
    let acc_cnt = &mut acc_cnt[..b];
    let state_cnt = &mut state_cnt[..b];

    // rho(x): the states themselves when rho is the identity.
    let rx = if a.rho_is_identity() {
        &x[..]
    } else {
        for (m, range) in prog.modules.iter().enumerate() {
            let r = range.start * b..range.end * b;
            a.rho_into(m, &x[r.clone()], &mut rx[r]);
        }
        &rx[..]
    };

    // The largest |x| and |rho(x)| (with a clamp above zero, |rho(x)| can exceed |x|).
    let xmax = if A::SATURATES {
        a.max_magnitude(x)
    } else {
        0.0
    };

    let fast = !(A::SATURATES && prog.force_checks);
    // Step 1: bus lines. A sum whose partial sums provably stay in range skips the saturation
    // checks (bit for bit the same, nothing to count).
    let mut row_at = 0;
    // The bus lines' saturations per chain (the scratch `cnt2` is free until step 3).
    cnt2[..b].fill(0);
    for (bus, out) in prog.buses.iter().zip(bus_lines.iter_mut()) {
        for (side, out) in out.iter_mut().enumerate() {
            let (w, range, m) = if side == 0 {
                (&bus.u, &bus.enc, bus.modules.0)
            } else {
                (&bus.v, &bus.dec, bus.modules.1)
            };
            let bounds = &prog.bus_bounds[row_at..row_at + w.len()];
            row_at += w.len();
            let safe = |bd: &Option<A::UnitBound>| matches!(bd, Some(bd) if fast && a.unit_is_safe(bd, xmax, 0.0));
            // Every row safe: the side's rows together where the arithmetic can.
            let sums = &mut bus_acc[..w.len() * b];
            if bounds.iter().all(safe) && A::batch_bus_sums_unchecked(w, range.start, b, rx, sums) {
                for (r, &gain) in bus.gain.iter().enumerate() {
                    let o = &mut out[r * b..(r + 1) * b];
                    a.lines_into(m, &sums[r * b..(r + 1) * b], gain, o, &mut cnt2[..b]);
                }
                continue;
            }
            for (r, ((row, &gain), bd)) in w.iter().zip(&bus.gain).zip(bounds).enumerate() {
                acc.fill(a.zero());
                if safe(bd) {
                    if !A::batch_bus_sum_unchecked(row, range.start, b, rx, acc) {
                        bus_sum::<A, false>(a, acc, row, range.start, b, rx, acc_cnt);
                    }
                } else {
                    bus_sum::<A, true>(a, acc, row, range.start, b, rx, acc_cnt);
                }
                let o = &mut out[r * b..(r + 1) * b];
                a.lines_into(m, acc, gain, o, &mut cnt2[..b]);
            }
        }
    }
    for c in 0..b {
        bus_saturation[c].acc += acc_cnt[c];
        bus_saturation[c].bus += cnt2[c];
        acc_cnt[c] = 0;
        cnt2[c] = 0;
    }
    for (m, ml) in module_lines.iter_mut().enumerate() {
        let mut off = 0;
        for &(bi, side) in &prog.sides[m] {
            let src = match side {
                Side::Decoder => &bus_lines[bi][0],
                Side::Encoder => &bus_lines[bi][1],
            };
            ml[off..off + src.len()].copy_from_slice(src);
            off += src.len();
        }
    }
    // Step 2: noise; chain c's unit i takes the next draw of chain c's lane i mod P. The lanes of
    // all chains step together, one unit (B lanes) at a time.
    if p > 0 {
        a.noise_rounds(lanes, b, p, z);
    }

    // Step 3: units, module by module.
    let nm = prog.modules.len();
    for (m, range) in prog.modules.iter().enumerate() {
        let lines = &module_lines[m][..];
        let k = lines.len() / b.max(1);
        let w = &prog.bus_w[m];
        let lmax = if A::SATURATES {
            lines
                .iter()
                .map(|&l| a.line_magnitude(l))
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        // One check for the whole module when the bound covering its units allows it.
        let all_safe = fast && a.unit_is_safe(&module_bounds[m], xmax, lmax);
        let safe = |i: usize| all_safe || (fast && a.unit_is_safe(&bounds[i], xmax, lmax));
        let unit = |i: usize| {
            let n = i - range.start;
            Unit {
                m,
                i,
                b,
                wi: &w[n * k..(n + 1) * k],
                lines,
                x,
                rx,
                z,
                bias,
            }
        };
        // The update of unit `j` into `out`, with saturation checks or without.
        let mut update_unit = |j: usize, out: &mut [A::State], state_cnt: &mut [u64], check| {
            let u = unit(j);
            let scratch = (&mut acc2[..], &mut cnt2[..]);
            if check {
                update::<A, true>(prog, &u, acc, gate, scratch, acc_cnt, state_cnt, out);
            } else {
                update::<A, false>(prog, &u, acc, gate, scratch, acc_cnt, state_cnt, out);
            }
        };
        let mut i = range.start;
        while i < range.end {
            if !safe(i) {
                update_unit(i, &mut next[i * b..(i + 1) * b], state_cnt, true);
                i += 1;
                continue;
            }
            // The run of safe units from i, in one call of the vector form.
            let mut e = i + 1;
            while e < range.end && safe(e) {
                e += 1;
            }
            let (n0, n1) = (i - range.start, e - range.start);
            let out = &mut next[i * b..e * b];
            let (wr, units) = (&w[n0 * k..n1 * k], i..e);
            if !A::batch_units_unchecked(
                prog, m, units, b, wr, lines, x, rx, z, bias, offsets, out, state_cnt,
            ) {
                for (j, out) in (i..e).zip(out.chunks_mut(b.max(1))) {
                    update_unit(j, out, state_cnt, false);
                }
            }
            i = e;
        }
        for c in 0..b {
            let s = &mut saturation[c * nm + m];
            s.acc += acc_cnt[c];
            s.state += state_cnt[c];
            acc_cnt[c] = 0;
            state_cnt[c] = 0;
        }
    }
    std::mem::swap(x, next);
}

/// `acc[c] += row[n] rho(x_{start + n})[c]` for `n` ascending.
#[inline(always)]
fn bus_sum<A: Arith, const CHECK: bool>(
    a: &A,
    acc: &mut [A::Acc],
    row: &[A::Coef],
    start: usize,
    b: usize,
    rx: &[A::State],
    acc_cnt: &mut [u64],
) {
    for (n, &coef) in row.iter().enumerate() {
        let j = start + n;
        let xs = &rx[j * b..(j + 1) * b];
        for c in 0..b {
            acc[c] = mac::<A, CHECK>(a, acc[c], coef, xs[c], &mut acc_cnt[c]);
        }
    }
}

/// What one unit's update reads besides the program.
struct Unit<'a, A: Arith> {
    m: usize,
    i: usize,
    b: usize,
    wi: &'a [A::Coef],
    lines: &'a [A::Line],
    x: &'a [A::State],
    rx: &'a [A::State],
    z: &'a [A::Noise],
    bias: &'a [A::Bias],
}

/// Step 3 for unit `u.i` of every chain: the accumulator of each chain takes the additions of
/// `docs/fixed-point.md` §3 in order; a chain whose gate is closed skips them (its accumulator is
/// left unchanged and nothing is counted).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn update<A: Arith, const CHECK: bool>(
    prog: &Program<A>,
    u: &Unit<'_, A>,
    acc: &mut [A::Acc],
    gate: &mut [bool],
    scratch: (&mut [A::Acc], &mut [u64]),
    acc_cnt: &mut [u64],
    state_cnt: &mut [u64],
    out: &mut [A::State],
) {
    let a = &prog.arith;
    let (i, b) = (u.i, u.b);
    let xi = &u.x[i * b..(i + 1) * b];
    let di = prog.diag[i];
    for c in 0..b {
        acc[c] = mac::<A, CHECK>(a, a.zero(), di, xi[c], &mut acc_cnt[c]);
        gate[c] = a.gate(u.m, xi[c]);
    }
    let open = gate.iter().filter(|&&g| g).count();
    if open == b {
        terms::<A, CHECK>(prog, u, acc, acc_cnt);
    } else if open > 0 {
        // Some gates closed: run the additions for every chain on a copy, keep those of the
        // open chains (a closed chain's accumulator and counters stay as they were).
        let (acc2, cnt2) = (&mut scratch.0[..b], &mut scratch.1[..b]);
        acc2.copy_from_slice(acc);
        cnt2.fill(0);
        terms::<A, CHECK>(prog, u, acc2, cnt2);
        for c in 0..b {
            if gate[c] {
                acc[c] = acc2[c];
                acc_cnt[c] += cnt2[c];
            }
        }
    }
    let z = &u.z[i * b..(i + 1) * b];
    for c in 0..b {
        let mut s = Saturation::default();
        let t = a.add_noise::<CHECK>(u.m, acc[c], z[c], &mut s);
        let y = a.finish(t, &mut s);
        acc_cnt[c] += s.acc;
        state_cnt[c] += s.state;
        out[c] = y;
    }
}

/// The gated additions (couplings, bus lines, bias) of unit `u.i`, for every chain: blocks of
/// 16 chains (their accumulators stay in registers across the unit's terms), then of 4, then 1.
#[inline(always)]
fn terms<A: Arith, const CHECK: bool>(
    prog: &Program<A>,
    u: &Unit<'_, A>,
    acc: &mut [A::Acc],
    acc_cnt: &mut [u64],
) {
    let b = u.b;
    let mut c0 = 0;
    while c0 + 16 <= b {
        terms_block::<A, CHECK, 16>(prog, u, c0, acc, acc_cnt);
        c0 += 16;
    }
    while c0 + 4 <= b {
        terms_block::<A, CHECK, 4>(prog, u, c0, acc, acc_cnt);
        c0 += 4;
    }
    while c0 < b {
        terms_block::<A, CHECK, 1>(prog, u, c0, acc, acc_cnt);
        c0 += 1;
    }
}

/// [`terms`] for chains `c0 .. c0 + W`.
#[inline(always)]
fn terms_block<A: Arith, const CHECK: bool, const W: usize>(
    prog: &Program<A>,
    u: &Unit<'_, A>,
    c0: usize,
    acc: &mut [A::Acc],
    acc_cnt: &mut [u64],
) {
    let a = &prog.arith;
    let (i, b) = (u.i, u.b);
    let mut ac: [A::Acc; W] = acc[c0..c0 + W].try_into().expect("block width");
    let mut cn = [0u64; W];
    let (p0, p1) = (prog.row_ptr[i] as usize, prog.row_ptr[i + 1] as usize);
    for (&coef, &j) in prog.coef[p0..p1].iter().zip(&prog.col[p0..p1]) {
        let o = j as usize * b + c0;
        let xs: &[A::State; W] = u.rx[o..o + W].try_into().expect("block width");
        for c in 0..W {
            let mut s = Saturation::default();
            ac[c] = a.mac::<CHECK>(ac[c], coef, xs[c], &mut s);
            cn[c] += s.acc;
        }
    }
    for (kk, &wc) in u.wi.iter().enumerate() {
        let o = kk * b + c0;
        let ls: &[A::Line; W] = u.lines[o..o + W].try_into().expect("block width");
        for c in 0..W {
            let mut s = Saturation::default();
            ac[c] = a.mac_line::<CHECK>(u.m, ac[c], wc, ls[c], &mut s);
            cn[c] += s.acc;
        }
    }
    let o = i * b + c0;
    let h: &[A::Bias; W] = u.bias[o..o + W].try_into().expect("block width");
    for c in 0..W {
        let mut s = Saturation::default();
        ac[c] = a.add_bias::<CHECK>(ac[c], h[c], &mut s);
        cn[c] += s.acc;
    }
    acc[c0..c0 + W].copy_from_slice(&ac);
    for c in 0..W {
        acc_cnt[c0 + c] += cn[c];
    }
}

/// `B` chains of one substrate in lock step (see the module documentation).
#[derive(Clone, Debug)]
pub struct BatchEngine<A: Arith> {
    /// Constants shared by every chain (its biases are the chains' defaults; each chain's own
    /// biases are set with [`BatchEngine::set_bias`]).
    pub prog: Program<A>,
    groups: Vec<Group<A>>,
    /// One thread per group, started with the engine.
    pool: std::sync::Arc<Pool>,
    /// Sweeps done.
    pub sweeps: u64,
}

/// The batched golden model.
pub type GoldenBatch = BatchEngine<crate::engine::Golden>;
/// The batched bit-exact fixed-point engine.
pub type FixedBatch = BatchEngine<crate::engine::Fixed>;

impl GoldenBatch {
    /// Batched golden model of `s`, chain `c` seeded with `seeds[c]`, on `threads` threads.
    pub fn golden(s: &Substrate, seeds: &[u64], threads: usize) -> Self {
        BatchEngine::new(s, crate::engine::Golden::new(s), seeds, threads)
    }
}

impl FixedBatch {
    /// Batched fixed engine of `s`, chain `c` seeded with `seeds[c]`, on `threads` threads.
    pub fn fixed(s: &Substrate, seeds: &[u64], threads: usize) -> Self {
        BatchEngine::new(s, crate::engine::Fixed::new(s), seeds, threads)
    }
}

impl<A: Arith> BatchEngine<A> {
    /// `seeds.len()` chains, state zero, chain `c`'s lane `l` seeded as
    /// [`NoiseLane::new`]`(seeds[c], l)` (as [`Engine::new`](crate::engine::Engine::new)), biases
    /// the substrate's; the chains split into `threads` contiguous groups (at most one per chain),
    /// each run by its own thread of the engine's pool.
    pub fn new(s: &Substrate, arith: A, seeds: &[u64], threads: usize) -> Self {
        let prog = Program::new(s, arith);
        let n = seeds.len();
        let threads = threads.clamp(1, n.max(1));
        let groups: Vec<Group<A>> = (0..threads)
            .map(|t| {
                let (lo, hi) = (t * n / threads, (t + 1) * n / threads);
                Group::new(&prog, &seeds[lo..hi])
            })
            .collect();
        BatchEngine {
            prog,
            pool: std::sync::Arc::new(Pool::new(groups.len())),
            groups,
            sweeps: 0,
        }
    }

    /// Number of chains.
    pub fn chains(&self) -> usize {
        self.groups.iter().map(|g| g.b).sum()
    }

    /// Number of units of each chain.
    pub fn units(&self) -> usize {
        self.prog.units()
    }

    /// Worker threads (chain groups).
    pub fn threads(&self) -> usize {
        self.groups.len()
    }

    fn locate(&self, chain: usize) -> (usize, usize) {
        let mut c = chain;
        for (gi, g) in self.groups.iter().enumerate() {
            if c < g.b {
                return (gi, c);
            }
            c -= g.b;
        }
        panic!("chain {chain} out of range ({} chains)", self.chains())
    }

    /// Back to fresh runs: state zero, chain `c`'s lanes seeded from `seeds[c]` as
    /// [`Engine::restart`](crate::engine::Engine::restart), counters cleared (biases stay).
    pub fn restart(&mut self, seeds: &[u64]) {
        assert_eq!(seeds.len(), self.chains(), "one seed per chain");
        let mut off = 0;
        for g in &mut self.groups {
            let b = g.b;
            g.restart(&self.prog, &seeds[off..off + b]);
            off += b;
        }
        self.sweeps = 0;
    }

    /// Chain `chain`'s noise lane `lane`.
    pub fn lane(&self, chain: usize, lane: usize) -> NoiseLane {
        let (gi, c) = self.locate(chain);
        let g = &self.groups[gi];
        let k = lane * g.b + c;
        NoiseLane {
            rng: Taus88 {
                s: [g.lanes[0][k], g.lanes[1][k], g.lanes[2][k]],
            },
        }
    }

    /// Replace chain `chain`'s noise lane `lane` (e.g. to key it as a RUN does).
    pub fn set_lane(&mut self, chain: usize, lane: usize, l: NoiseLane) {
        assert!(lane < self.prog.lanes, "lane {lane} out of range");
        let (gi, c) = self.locate(chain);
        let g = &mut self.groups[gi];
        let k = lane * g.b + c;
        for (comp, v) in g.lanes.iter_mut().zip(l.rng.s) {
            comp[k] = v;
        }
    }

    /// Set chain `chain`'s biases from `b` (energy units, scaled by `eta` as
    /// [`Program::set_bias`]).
    pub fn set_bias(&mut self, s: &Substrate, chain: usize, b: &[f64]) {
        let codes = self.prog.bias_values(s, b);
        self.set_bias_codes(chain, &codes);
    }

    /// Set chain `chain`'s biases as stored values (`eta b` in the arithmetic).
    pub fn set_bias_codes(&mut self, chain: usize, h: &[A::Bias]) {
        assert_eq!(h.len(), self.units(), "one bias per unit");
        let (gi, c) = self.locate(chain);
        let g = &mut self.groups[gi];
        for (i, &v) in h.iter().enumerate() {
            g.bias[i * g.b + c] = v;
        }
        g.bounds_dirty = true;
    }

    /// Run `n` sweeps of every chain; each group on its own pool thread.
    pub fn run(&mut self, n: u64) {
        let prog = &self.prog;
        for_each_mut(&self.pool, &mut self.groups, |_, g| {
            for _ in 0..n {
                g.sweep(prog);
            }
        });
        self.sweeps += n;
    }

    /// One sweep of every chain.
    pub fn sweep(&mut self) {
        self.run(1)
    }

    /// Chain `chain`'s state.
    pub fn state(&self, chain: usize) -> Vec<A::State> {
        let (gi, c) = self.locate(chain);
        let g = &self.groups[gi];
        g.x[c..].iter().step_by(g.b).copied().collect()
    }

    /// Chain `chain`'s state as reals.
    pub fn state_f64(&self, chain: usize) -> Vec<f64> {
        let a = &self.prog.arith;
        crate::engine::per_unit(&self.prog.modules, &self.state(chain), |m, v| {
            a.to_f64(m, v)
        })
    }

    /// Chain `chain`'s unit-update saturation counters, per module (as
    /// [`Engine::saturation`](crate::engine::Engine::saturation)).
    pub fn saturation(&self, chain: usize) -> &[Saturation] {
        let nm = self.prog.modules.len();
        let (gi, c) = self.locate(chain);
        &self.groups[gi].saturation[c * nm..(c + 1) * nm]
    }

    /// Chain `chain`'s bus-line saturation counters.
    pub fn bus_saturation(&self, chain: usize) -> Saturation {
        let (gi, c) = self.locate(chain);
        self.groups[gi].bus_saturation[c]
    }

    /// Chain `chain`'s total saturation events
    /// ([`Engine::saturation_total`](crate::engine::Engine::saturation_total)).
    pub fn saturation_total(&self, chain: usize) -> Saturation {
        let mut t = self.bus_saturation(chain);
        for s in self.saturation(chain) {
            t.add(s);
        }
        t
    }

    /// [`Engine::relax_average`](crate::engine::Engine::relax_average) for every chain: chain `c`
    /// takes biases `b[c]` (energy units), runs `burn_in` sweeps from its current state, then
    /// averages what `observe` reads over `sweeps` sweeps (at least one). Returns per chain the
    /// averages and its saturation counters, bit for bit what a single-chain engine returns.
    pub fn relax_average(
        &mut self,
        s: &Substrate,
        b: &[Vec<f64>],
        burn_in: u64,
        sweeps: u64,
        observe: Observe,
    ) -> Vec<(Vec<f64>, Saturation)> {
        assert_eq!(b.len(), self.chains(), "one bias vector per chain");
        for (c, bc) in b.iter().enumerate() {
            self.set_bias(s, c, bc);
        }
        let n = sweeps.max(1);
        let d = self.units();
        let prog = &self.prog;
        let sums = for_each_mut(&self.pool, &mut self.groups, |_, g| {
            for _ in 0..burn_in {
                g.sweep(prog);
            }
            let mut sum = vec![0.0; d * g.b];
            // the modules' ranges in the chain-minor layout
            let ranges: Vec<_> = prog
                .modules
                .iter()
                .map(|r| r.start * g.b..r.end * g.b)
                .collect();
            for _ in 0..n {
                g.sweep(prog);
                observe.accumulate(&prog.arith, &ranges, &mut sum, &g.x);
            }
            sum
        });
        self.sweeps += burn_in + n;
        let nf = n as f64;
        let mut out = Vec::with_capacity(self.chains());
        let mut chain = 0;
        for (g, sum) in self.groups.iter().zip(&sums) {
            for c in 0..g.b {
                let mean = sum[c..].iter().step_by(g.b).map(|v| v / nf).collect();
                out.push((mean, self.saturation_total(chain)));
                chain += 1;
            }
        }
        out
    }
}
