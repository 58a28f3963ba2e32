//! The identity-unit compiler (`docs/design.md` §1; derivation in `docs/compiler.md`): a trained
//! U-Net becomes the quadratic energy of a substrate,
//!
//! ```text
//! E(x) = 1/2 sum_i a_i x_i^2 - gamma sum_l x_{l+1}^T W_l x_l
//!        - gamma sum_skips sum_r s_r (u_r^T x_enc)(v_r^T x_dec) - b^T x
//!      = 1/2 x^T A x - b^T x,
//! A    = diag(a) - gamma sym(adjacent blocks W_l) - gamma sym(rank-k skip blocks V diag(s) U^T)
//! ```
//!
//! One module per U-Net layer (`enc0 .. enc{L-1}, bottleneck, dec{L-1} .. dec0`), local couplings
//! from the layer weights (`enc1.weight` between enc0 and enc1, ..., `dec0.weight` between dec1
//! and dec0), scaled by a gain `gamma`; skip blocks as rank-k buses (Gram-weighted or plain SVD)
//! or, for `rank = None`, as dense couplings. The stiffness is the Gershgorin row sum plus a
//! margin, `a_i = sum_j |A_ij| + delta`, so `A` is positive definite with `lambda_min >= delta`.
//! The equilibrium mean `mu = A^-1 b` is linear in the bias `b`.

use crate::gram::{self, ActivationSet, Factorisation, SkipFactor};
use crate::unet::{Activations, Dense, Unet};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use thermo_sim::model::self_coefficient;

/// What to compile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    /// Rank of the skip buses; `None` keeps the skip blocks dense (as couplings).
    pub rank: Option<usize>,
    /// Factorisation of the skip blocks.
    pub method: Factorisation,
    /// Gain `gamma` applied to every coupling (local and bus).
    pub gain: f64,
    /// Stiffness margin `delta` over the Gershgorin row sum (or over `-lambda_min` of the
    /// couplings, for [`Stiffness::Spectral`]).
    pub margin: f64,
    /// How the stiffness is chosen.
    #[serde(default)]
    pub stiffness: Stiffness,
}

/// Choice of the stiffness `a_i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stiffness {
    /// `a_i = sum_j |A_ij| + delta` (diagonally dominant; certified by Gershgorin).
    #[default]
    Gershgorin,
    /// One value for all units, `a = max(1, delta - lambda_min(C))` with `C` the couplings
    /// part of `A`: the smallest uniform stiffness (at least the U-Net's 1) with
    /// `lambda_min(A) >= delta`.
    Spectral,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            rank: Some(8),
            method: Factorisation::GramWeighted,
            gain: 1.0,
            margin: 1.0,
            stiffness: Stiffness::Gershgorin,
        }
    }
}

/// A skip bus in substrate terms: `E = - sum_r sigma_r (u_r . x_enc)(v_r . x_dec)`, with
/// `max |u_r| = max |v_r| = 1` (the scale is in `sigma_r`, which includes `gamma`).
#[derive(Clone, Debug)]
pub struct CompiledBus {
    /// Encoder module index.
    pub enc: usize,
    /// Decoder module index.
    pub dec: usize,
    /// Gains `sigma_r`.
    pub sigma: Vec<f64>,
    /// Encoder factors, k rows.
    pub u: Vec<Vec<f64>>,
    /// Decoder factors, k rows.
    pub v: Vec<Vec<f64>>,
    /// Discarded singular energy of the factorisation.
    pub discarded_energy: f64,
}

/// A compiled substrate (dense `A`, small enough: 416 units by default).
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The options used.
    pub options: CompileOptions,
    /// Module names in unit order.
    pub names: Vec<String>,
    /// First unit of each module.
    pub offsets: Vec<usize>,
    /// Units of each module.
    pub sizes: Vec<usize>,
    /// Stiffness `a_i`.
    pub stiffness: Vec<f64>,
    /// Off-diagonal local couplings `(i, j, A_ij)`, both directions (dense skips included).
    pub couplings: Vec<(usize, usize, f64)>,
    /// Rank-k skip buses (empty when the skips are dense).
    pub buses: Vec<CompiledBus>,
    /// The full matrix `A` (buses included).
    pub a: DMatrix<f64>,
    /// `A^-1`.
    pub a_inv: DMatrix<f64>,
    /// Extreme eigenvalues of `A`.
    pub lambda_min: f64,
    /// Largest eigenvalue of `A`.
    pub lambda_max: f64,
    /// Per skip level: (bus connections, dense connections).
    pub connections: Vec<(usize, usize)>,
    /// Per skip level: discarded singular energy (0 for dense).
    pub discarded_energy: Vec<f64>,
}

impl Compiled {
    /// Total units.
    pub fn units(&self) -> usize {
        self.stiffness.len()
    }

    /// Index of a module by name.
    pub fn module(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Unit range of a module.
    pub fn range(&self, m: usize) -> std::ops::Range<usize> {
        self.offsets[m]..self.offsets[m] + self.sizes[m]
    }

    /// Unit indices of the named modules, concatenated in the given order.
    pub fn units_of(&self, names: &[&str]) -> Result<Vec<usize>, String> {
        let mut v = Vec::new();
        for n in names {
            let m = self.module(n).ok_or_else(|| format!("no module `{n}`"))?;
            v.extend(self.range(m));
        }
        Ok(v)
    }

    /// Equilibrium mean `A^-1 b`.
    pub fn mean(&self, b: &DVector<f64>) -> DVector<f64> {
        &self.a_inv * b
    }

    /// The oracle bias `b* = A a_true`, whose equilibrium mean is `a_true`.
    pub fn oracle_bias(&self, a_true: &DVector<f64>) -> DVector<f64> {
        &self.a * a_true
    }

    /// Couplings-only bias of one input: what the U-Net's own parameters deliver with no digital
    /// interface, `gamma` times (the drive of the clamped noisy input into enc0,
    /// `W_enc0 c_in x`, plus every module's bias and noise-level embedding term). See
    /// `docs/compiler.md`.
    pub fn couplings_bias(&self, acts: &Activations) -> Result<DVector<f64>, String> {
        let mut b = DVector::zeros(self.units());
        for (m, name) in self.names.iter().enumerate() {
            let la = acts
                .layer(name)
                .ok_or_else(|| format!("no activations of `{name}`"))?;
            let r = self.range(m);
            for (k, i) in r.enumerate() {
                let mut v = la.cond[k] as f64;
                if m == 0 {
                    v += la.local[k] as f64;
                }
                b[i] = self.options.gain * v;
            }
        }
        Ok(b)
    }

    /// `(j, i)` block `A[rows, cols]` as a dense matrix.
    pub fn block(&self, rows: &[usize], cols: &[usize]) -> DMatrix<f64> {
        DMatrix::from_fn(rows.len(), cols.len(), |r, c| self.a[(rows[r], cols[c])])
    }

    /// Block of `A^-1`.
    pub fn inv_block(&self, rows: &[usize], cols: &[usize]) -> DMatrix<f64> {
        DMatrix::from_fn(rows.len(), cols.len(), |r, c| {
            self.a_inv[(rows[r], cols[c])]
        })
    }
}

/// Every module's post-activations of one forward pass, stacked in unit order.
pub fn stack(acts: &Activations, names: &[String]) -> Result<DVector<f64>, String> {
    let mut v = Vec::new();
    for n in names {
        let p = acts
            .get(n)
            .ok_or_else(|| format!("no activations of `{n}`"))?;
        v.extend(p.iter().map(|&x| x as f64));
    }
    Ok(DVector::from_vec(v))
}

fn dense_matrix(d: &Dense) -> DMatrix<f64> {
    DMatrix::from_fn(d.n_out, d.n_in, |r, c| d.w[r * d.n_in + c] as f64)
}

/// Rescale a factor so that every `u_r`, `v_r` has max-magnitude 1 (scale moved into `s_r`).
fn normalised(f: &SkipFactor) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut sigma = Vec::new();
    let mut us = Vec::new();
    let mut vs = Vec::new();
    for r in 0..f.rank() {
        let u: Vec<f64> = f.u.column(r).iter().copied().collect();
        let v: Vec<f64> = f.v.column(r).iter().copied().collect();
        let mu = u.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        let mv = v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        sigma.push(f.s[r] * mu * mv);
        us.push(u.iter().map(|x| x / mu).collect());
        vs.push(v.iter().map(|x| x / mv).collect());
    }
    (sigma, us, vs)
}

/// Compile `model` into a substrate. `train` supplies the encoder Gram matrices of the
/// Gram-weighted factorisation (activations on training inputs).
pub fn compile(
    model: &Unet,
    train: &ActivationSet,
    opts: &CompileOptions,
) -> Result<Compiled, String> {
    if !(opts.gain.is_finite() && opts.gain > 0.0) {
        return Err(format!("gain {} must be finite and > 0", opts.gain));
    }
    if !(opts.margin.is_finite() && opts.margin > 0.0) {
        return Err(format!("margin {} must be finite and > 0", opts.margin));
    }
    let cfg = &model.config;
    let levels = cfg.levels();
    let names = cfg.module_names();
    let mut sizes: Vec<usize> = cfg.enc.clone();
    sizes.push(cfg.bottleneck);
    sizes.extend((0..levels).rev().map(|l| cfg.enc[l]));
    let mut offsets = Vec::new();
    let mut o = 0;
    for s in &sizes {
        offsets.push(o);
        o += s;
    }
    let d = o;
    let g = opts.gain;
    // Off-diagonal part of A (without the stiffness).
    let mut off = DMatrix::<f64>::zeros(d, d);
    let put_block = |off: &mut DMatrix<f64>, to: usize, from: usize, w: &DMatrix<f64>| {
        // Energy -gamma x_to^T W x_from: A[to, from] = -gamma W, A[from, to] = -gamma W^T.
        for r in 0..w.nrows() {
            for c in 0..w.ncols() {
                let v = -g * w[(r, c)];
                off[(offsets[to] + r, offsets[from] + c)] += v;
                off[(offsets[from] + c, offsets[to] + r)] += v;
            }
        }
    };
    // Adjacent modules in forward order: module m+1 reads module m.
    // enc{l} (l >= 1) reads enc{l-1}; bottleneck reads enc{L-1}; dec{L-1} reads the bottleneck;
    // dec{l} reads dec{l+1}.
    for l in 1..levels {
        put_block(&mut off, l, l - 1, &dense_matrix(&model.enc[l]));
    }
    put_block(
        &mut off,
        levels,
        levels - 1,
        &dense_matrix(&model.bottleneck),
    );
    for (step, l) in (0..levels).rev().enumerate() {
        let to = levels + 1 + step;
        put_block(&mut off, to, to - 1, &dense_matrix(&model.dec[l]));
    }
    // Skip blocks: encoder level l (module l) -> decoder level l (module 2L - l).
    let mut buses = Vec::new();
    let mut connections = Vec::new();
    let mut discarded = Vec::new();
    for l in 0..levels {
        let (enc, dec) = (l, 2 * levels - l);
        let w = gram::skip_matrix(model, l).ok_or_else(|| format!("no skip block {l}"))?;
        let dense_conn = w.nrows() * w.ncols();
        match opts.rank {
            None => {
                put_block(&mut off, dec, enc, &w);
                connections.push((dense_conn, dense_conn));
                discarded.push(0.0);
            }
            Some(k) => {
                let f = match opts.method {
                    Factorisation::PlainSvd => gram::plain_svd(&w, k)?,
                    Factorisation::GramWeighted => {
                        let e = train
                            .module(&format!("enc{l}"))
                            .ok_or_else(|| format!("no training activations of enc{l}"))?;
                        gram::gram_weighted(&w, &gram::gram(e), k)?
                    }
                    Factorisation::CovarianceWeighted => {
                        return Err(
                            "the covariance-weighted factorisation needs a bias offset; \
                                    compile supports gram and plain"
                                .into(),
                        )
                    }
                };
                put_block(&mut off, dec, enc, &f.matrix());
                let (s, u, v) = normalised(&f);
                connections.push((f.connections(), dense_conn));
                discarded.push(f.discarded_energy);
                buses.push(CompiledBus {
                    enc,
                    dec,
                    sigma: s.iter().map(|x| g * x).collect(),
                    u,
                    v,
                    discarded_energy: f.discarded_energy,
                });
            }
        }
    }
    // Stiffness: Gershgorin row sums plus the margin.
    let stiffness: Vec<f64> = match opts.stiffness {
        Stiffness::Gershgorin => (0..d)
            .map(|i| off.row(i).iter().map(|x| x.abs()).sum::<f64>() + opts.margin)
            .collect(),
        Stiffness::Spectral => {
            let lmin = off.clone().symmetric_eigenvalues().min();
            vec![(opts.margin - lmin).max(1.0); d]
        }
    };
    let mut a = off.clone();
    for (i, s) in stiffness.iter().enumerate() {
        a[(i, i)] = *s;
    }
    // Local couplings = off-diagonal minus the bus blocks (recomputed exactly from the sparse
    // structure: adjacent blocks, plus dense skips when rank is None).
    let mut bus_part = DMatrix::<f64>::zeros(d, d);
    for b in &buses {
        for r in 0..b.sigma.len() {
            for (ni, uv) in b.u[r].iter().enumerate() {
                for (nj, vv) in b.v[r].iter().enumerate() {
                    let c = b.sigma[r] * uv * vv;
                    let (i, j) = (offsets[b.enc] + ni, offsets[b.dec] + nj);
                    bus_part[(i, j)] -= c;
                    bus_part[(j, i)] -= c;
                }
            }
        }
    }
    let local = &off - &bus_part;
    let mut couplings = Vec::new();
    let is_bus = |i: usize, j: usize| {
        buses.iter().any(|b| {
            let (re, rd) = (
                offsets[b.enc]..offsets[b.enc] + sizes[b.enc],
                offsets[b.dec]..offsets[b.dec] + sizes[b.dec],
            );
            (re.contains(&i) && rd.contains(&j)) || (re.contains(&j) && rd.contains(&i))
        })
    };
    for i in 0..d {
        for j in 0..d {
            if i != j && !is_bus(i, j) && local[(i, j)] != 0.0 {
                couplings.push((i, j, local[(i, j)]));
            }
        }
    }
    let eig = a.clone().symmetric_eigenvalues();
    let (lambda_min, lambda_max) = (eig.min(), eig.max());
    if lambda_min <= 0.0 {
        return Err(format!(
            "compiled A is not positive definite (lambda_min {lambda_min:e})"
        ));
    }
    let a_inv = a
        .clone()
        .cholesky()
        .ok_or("compiled A: Cholesky failed")?
        .inverse();
    Ok(Compiled {
        options: opts.clone(),
        names,
        offsets,
        sizes,
        stiffness,
        couplings,
        buses,
        a,
        a_inv,
        lambda_min,
        lambda_max,
        connections,
        discarded_energy: discarded,
    })
}

/// Largest fractional-bit count (at most `max_frac`) such that every value fits a signed
/// `bits`-bit format, scaled by `headroom`.
pub fn frac_for(bits: u32, values: impl Iterator<Item = f64>, headroom: f64, max_frac: u32) -> u32 {
    let m = values.fold(0.0f64, |m, v| m.max(v.abs())) * headroom;
    let mut frac = max_frac;
    while frac > 0 && !thermo_sim::qformat::QFormat::new(bits, frac).fits(m) {
        frac -= 1;
    }
    frac
}

/// Data ranges the Q formats must hold (measured by `thermo compile` on the U-Net's
/// activations and the equilibrium means of the evaluated configurations; see
/// `docs/compiler.md` §6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranges {
    /// Largest state magnitude to hold.
    pub state_max: f64,
    /// Per module (in file order), the largest state magnitude to hold there (empty: not
    /// measured; then no module gets a state shift).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module_state_max: Vec<f64>,
    /// Largest magnitude of any *partial* sum of a bus line sum `sum_j u_rj x_j` (and
    /// `sum_j v_rj x_j`), units in ascending order as the engines add them; the final sums are
    /// among them. These sums run in the accumulator and are stored in the bus format.
    pub bus_max: f64,
    /// Largest bias magnitude `|b_i|` the evaluation sets (0 to ignore).
    pub bias_max: f64,
}

/// Headroom over the measured ranges of states and bus sums.
pub const HEADROOM: f64 = 1.5;

/// Settings of the emitted description that are not part of `A`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmitOptions {
    /// Temperature `T`.
    pub temperature: f64,
    /// `eta` as a fraction of the stability limit `2 / lambda_max`.
    pub eta_fraction: f64,
    /// Hardware lanes.
    pub lanes: u32,
    /// Width of states and couplings.
    pub bits: u32,
    /// Largest state magnitude to hold (from data: activations and equilibrium means).
    pub state_max: f64,
    /// Largest magnitude of a bus sum or any of its partial sums (from data; see
    /// [`Ranges::bus_max`]).
    pub bus_max: f64,
    /// Largest bias magnitude `|b_i|` the evaluation will set (from data; 0 to ignore).
    pub bias_max: f64,
}

impl EmitOptions {
    /// The data ranges.
    pub fn ranges(&self) -> Ranges {
        Ranges {
            state_max: self.state_max,
            module_state_max: Vec::new(),
            bus_max: self.bus_max,
            bias_max: self.bias_max,
        }
    }
}

/// The accumulator bound of a description at state format `state`: the largest magnitude any
/// partial sum in the 32-bit accumulator can take when states stay within `HEADROOM * state_max`
/// and bus sums within `HEADROOM * bus_max`. Two kinds of sums run there:
///
/// - a unit update, `d_i x_i + sum_j c_ij x_j + sum_r w_ri line_r + eta b_i + gn z_i`, each
///   partial sum bounded by `|d_i| X + sum_j eta |A_ij| X + sum_r eta sigma_r |w_ri| L
///   + eta max|b| + gn max|z|`;
/// - a bus line sum `sum_j u_rj x_j` (step 1 of a sweep), whose partial sums the data bound by
///   `L = HEADROOM * bus_max` (measured on the data, like the state range; the worst case
///   `sum_j |u_rj| X` is up to 8x larger on the digits model and would cost three state bits).
///
/// Returns the bound in real units.
pub fn accumulator_bound(cfg: &thermo_sim::SubstrateConfig, r: &Ranges) -> f64 {
    let eta = cfg.eta;
    let (xh, lh) = (HEADROOM * r.state_max, HEADROOM * r.bus_max);
    let (offsets, stiffness) = expand(cfg);
    let d = stiffness.len();
    let mut row_sum = vec![0.0f64; d];
    for &(i, _, v) in &cfg.couplings {
        if i < d {
            row_sum[i] += eta * v.abs();
        }
    }
    let module = |name: &str| cfg.modules.iter().position(|m| m.name == name);
    let mut bus_term = vec![0.0f64; d];
    for b in &cfg.buses {
        for (side, name) in [(&b.u, &b.encoder), (&b.v, &b.decoder)] {
            if let Some(m) = module(name) {
                for (s, f) in b.sigma.iter().zip(side.iter()) {
                    for (n, w) in f.iter().enumerate() {
                        bus_term[offsets[m] + n] += eta * s.abs() * w.abs() * lh;
                    }
                }
            }
        }
    }
    let noise = cfg.noise_amplitude() * thermo_sim::noise::NOISE_FORMAT.max_value();
    let mut worst = lh;
    for i in 0..d {
        let bound = self_coefficient(eta, stiffness[i]).abs() * xh
            + row_sum[i] * xh
            + bus_term[i]
            + eta * r.bias_max
            + noise;
        worst = worst.max(bound);
    }
    worst
}

/// Module offsets and the per-unit stiffness of a description.
fn expand(cfg: &thermo_sim::SubstrateConfig) -> (Vec<usize>, Vec<f64>) {
    use thermo_sim::model::PerUnit;
    let mut offsets = Vec::new();
    let mut stiffness = Vec::new();
    for m in &cfg.modules {
        offsets.push(stiffness.len());
        match &m.stiffness {
            PerUnit::Uniform(v) => stiffness.extend(std::iter::repeat_n(*v, m.size)),
            PerUnit::Each(v) => stiffness.extend(v.iter().copied()),
        }
    }
    (offsets, stiffness)
}

/// The Q formats of a description for `coupling_bits`-wide stored constants (couplings, bus
/// factors, bus gains, noise amplitude) and `state_bits`-wide signals (states, bus lines),
/// integer bits chosen from the data: every stored constant fits; states hold `HEADROOM *
/// state_max`, bus lines `HEADROOM * bus_max` (times the largest bus gain if above 1); then the
/// state gives up fractional bits until the accumulator ([`thermo_sim::model::Formats::acc`]) holds
/// [`accumulator_bound`]. A range that does not fit even with no fractional bits gets 0 of
/// them (the engines count the saturations if the data reach it). The one place where the
/// compiler, `thermo quantize` and the demo choose formats.
pub fn choose_formats(
    cfg: &thermo_sim::SubstrateConfig,
    r: &Ranges,
    coupling_bits: u32,
    state_bits: u32,
) -> Result<thermo_sim::model::Formats, String> {
    use thermo_sim::qformat::QFormat;
    for (what, b) in [("coupling", coupling_bits), ("state", state_bits)] {
        if !(2..=16).contains(&b) {
            return Err(format!(
                "{what} bits {b}: stored datapath values take 2 to 16 bits"
            ));
        }
    }
    let eta = cfg.eta;
    let (_, stiffness) = expand(cfg);
    let coupling_vals = stiffness
        .iter()
        .map(|&a| self_coefficient(eta, a))
        .chain(cfg.couplings.iter().map(|x| eta * x.2))
        .chain(
            cfg.buses
                .iter()
                .flat_map(|b| b.u.iter().chain(&b.v).flatten().copied()),
        );
    let cb = coupling_bits;
    let coupling = QFormat::new(cb, frac_for(cb, coupling_vals, 1.0, 24));
    let gains: Vec<f64> = cfg
        .buses
        .iter()
        .flat_map(|b| b.sigma.iter().map(|s| eta * s))
        .collect();
    let gain = QFormat::new(cb, frac_for(cb, gains.iter().copied(), 1.0, 24));
    let amp = cfg.noise_amplitude();
    let noise_gain = QFormat::new(cb, frac_for(cb, std::iter::once(amp), 1.0, 24));
    let sb = state_bits;
    let gmax = gains.iter().fold(1.0f64, |m, g| m.max(g.abs()));
    let bus = QFormat::new(
        sb,
        frac_for(sb, std::iter::once(r.bus_max * gmax), HEADROOM, 24),
    );
    let state = QFormat::new(
        sb,
        frac_for(
            sb,
            std::iter::once(r.state_max),
            HEADROOM,
            24.min(30u32.saturating_sub(coupling.frac)),
        ),
    );
    let worst = accumulator_bound(cfg, r);
    let mut formats = thermo_sim::model::Formats {
        state,
        coupling,
        bus,
        gain,
        noise_gain,
    };
    while formats.state.frac > 0 && !formats.acc().fits(worst) {
        formats.state = QFormat::new(sb, formats.state.frac - 1);
    }
    Ok(formats)
}

/// Give each module of `cfg` (whose formats [`choose_formats`] set) a state shift: the most extra
/// fraction bits that still hold its measured state range `ranges.module_state_max[m]` with twice
/// [`HEADROOM`] (with `HEADROOM` alone the rank-8 digits compile saturated at sigma 0.5: the
/// ranges come from fixed points, relaxation transients overshoot them; at most
/// [`thermo_sim::model::MAX_SHIFT`]); then narrow the coupling format's
/// fraction until every coupling, stored in its row unit's frame (`2^(k_i - k_j)`), fits. Errors
/// when the ranges have no per-module entry for every module.
pub fn choose_shifts(cfg: &mut thermo_sim::SubstrateConfig, ranges: &Ranges) -> Result<(), String> {
    use thermo_sim::model::MAX_SHIFT;
    use thermo_sim::qformat::QFormat;
    let m = cfg.modules.len();
    if ranges.module_state_max.len() != m {
        return Err(format!(
            "state shifts need a measured state range per module: {} ranges for {m} modules \
             (recompile to measure them)",
            ranges.module_state_max.len()
        ));
    }
    let f = cfg.formats;
    for (mc, &r) in cfg.modules.iter_mut().zip(&ranges.module_state_max) {
        let frac = frac_for(
            f.state.bits,
            std::iter::once(r),
            2.0 * HEADROOM,
            f.state.frac + MAX_SHIFT,
        );
        mc.shift = frac.saturating_sub(f.state.frac);
    }
    // the unit -> module map and the couplings as stored
    let mut module = Vec::new();
    for (k, mc) in cfg.modules.iter().enumerate() {
        module.extend(std::iter::repeat(k).take(mc.size));
    }
    let shift = |i: usize| cfg.modules[module[i]].shift as i32;
    let stored: f64 = cfg
        .couplings
        .iter()
        .map(|&(i, j, a)| (cfg.eta * a * 2f64.powi(shift(i) - shift(j))).abs())
        .fold(0.0, f64::max);
    let mut coupling = f.coupling;
    while coupling.frac > 0 && !coupling.fits(stored) {
        coupling = QFormat::new(coupling.bits, coupling.frac - 1);
    }
    cfg.formats.coupling = coupling;
    Ok(())
}

/// The substrate description of a compiled model. Biases are the model's constant biases
/// (`gamma b_l`); evaluation sets the per-input bias. Q formats by [`choose_formats`] at
/// `e.bits` for constants and signals.
pub fn to_config(
    c: &Compiled,
    model: &Unet,
    name: &str,
    e: &EmitOptions,
) -> Result<thermo_sim::SubstrateConfig, String> {
    use thermo_sim::model::{Activation, BusConfig, Formats, ModuleConfig, PerUnit, Role};
    let eta = e.eta_fraction * 2.0 / c.lambda_max;
    let levels = model.config.levels();
    let mut const_bias: Vec<f64> = Vec::new();
    for l in 0..levels {
        const_bias.extend(model.enc[l].b.iter().map(|&v| c.options.gain * v as f64));
    }
    const_bias.extend(
        model
            .bottleneck
            .b
            .iter()
            .map(|&v| c.options.gain * v as f64),
    );
    for l in (0..levels).rev() {
        const_bias.extend(model.dec[l].b.iter().map(|&v| c.options.gain * v as f64));
    }
    let modules = c
        .names
        .iter()
        .enumerate()
        .map(|(m, n)| {
            let (role, level) = if n == "bottleneck" {
                (Role::Bottleneck, levels as u32)
            } else if let Some(l) = n.strip_prefix("enc") {
                (Role::Encoder, l.parse().unwrap_or(0))
            } else {
                (
                    Role::Decoder,
                    n.trim_start_matches("dec").parse().unwrap_or(0),
                )
            };
            ModuleConfig {
                name: n.clone(),
                role,
                level,
                size: c.sizes[m],
                stiffness: PerUnit::Each(c.stiffness[c.range(m)].to_vec()),
                bias: PerUnit::Each(const_bias[c.range(m)].to_vec()),
                shift: 0,
            }
        })
        .collect();
    let buses: Vec<BusConfig> = c
        .buses
        .iter()
        .map(|b| BusConfig {
            encoder: c.names[b.enc].clone(),
            decoder: c.names[b.dec].clone(),
            sigma: b.sigma.clone(),
            u: b.u.clone(),
            v: b.v.clone(),
        })
        .collect();
    let mut cfg = thermo_sim::SubstrateConfig {
        name: name.to_string(),
        temperature: e.temperature,
        eta,
        lanes: e.lanes,
        seed: 1,
        activation: Activation::Identity,
        formats: Formats::default(),
        modules,
        couplings: c.couplings.clone(),
        buses,
    };
    cfg.formats = choose_formats(&cfg, &e.ranges(), e.bits, e.bits)?;
    Ok(cfg)
}
