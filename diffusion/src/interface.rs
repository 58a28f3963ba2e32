//! The minimal digital conditioning interface of the identity-unit compile (`docs/compiler.md`).
//!
//! ```text
//! f = [c_in(sigma) x (64 pixels), s]       s = 2 (ln sigma - ln sigma_min)/(ln sigma_max - ln sigma_min) - 1
//! z = W_e f + b_e                          4-d bottleneck code           65*4 + 4   = 264
//! h = tanh(W_t [z; s] + b_t)               16-unit transfer network       5*16 + 16  =  96
//! b_S = W_o h + b_o                        biases of the injected module 16*n + n    (n = 128: 2,176)
//! ```
//!
//! The biases go into one module `S` of the substrate (added to the couplings-only bias). The
//! equilibrium mean of the decoder units is `mu_D = M b_S + c` with `M = [A^-1]_{D,S}` fixed, so
//! the loss `||mu_D - a_D||^2` is exact and cheap. Training uses the thin SVD `M = U Sigma V^T`:
//! `||M b - t||^2 = ||Sigma V^T b - U^T t||^2 + ||(I - U U^T) t||^2`, so the network is trained
//! with output layer `P = Sigma V^T W_o`, `p = Sigma V^T b_o` against `y = U^T t`, and mapped back
//! by `W_o = V Sigma^-1 P` (exact when `M` has full column rank).

use crate::rng::Rng;
use crate::unet::UnetConfig;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Width of the bottleneck code (the paper's shape; `TrainOptions::code` can change it).
pub const CODE: usize = 4;

fn default_code() -> usize {
    CODE
}
/// Width of the transfer network.
pub const HIDDEN: usize = 16;

/// The interface weights (serialised as the side file of `thermo compile`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Interface {
    /// Module whose units receive the biases.
    pub inject: String,
    /// Pixels of the conditioning input.
    pub pixels: usize,
    /// Noise-level conventions (for `c_in` and the normalised `ln sigma`).
    pub sigma_min: f32,
    /// Largest noise level.
    pub sigma_max: f32,
    /// `sigma_data` of `c_in`.
    pub sigma_data: f32,
    /// Width of the code (4 unless trained otherwise).
    #[serde(default = "default_code")]
    pub code: usize,
    /// Encoder `[code, pixels + 1]`, row-major.
    pub enc_w: Vec<f64>,
    /// Encoder bias `[code]`.
    pub enc_b: Vec<f64>,
    /// Transfer `[HIDDEN, code + 1]`, row-major.
    pub tr_w: Vec<f64>,
    /// Transfer bias `[HIDDEN]`.
    pub tr_b: Vec<f64>,
    /// Output `[n, HIDDEN]`, row-major.
    pub out_w: Vec<f64>,
    /// Output bias `[n]`.
    pub out_b: Vec<f64>,
}

/// Parameter count, by part.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParamCount {
    /// Width of the code.
    #[serde(default = "default_code")]
    pub code: usize,
    /// Encoder weights and biases.
    pub encoder: usize,
    /// Transfer network.
    pub transfer: usize,
    /// Output layer into the injected module.
    pub output: usize,
    /// Sum.
    pub total: usize,
}

impl ParamCount {
    /// The breakdown for `pixels` inputs and `n` injected units (4-d code).
    pub fn of(pixels: usize, n: usize) -> Self {
        Self::with_code(pixels, CODE, n)
    }

    /// The breakdown with a `code`-wide code.
    pub fn with_code(pixels: usize, code: usize, n: usize) -> Self {
        let encoder = (pixels + 1) * code + code;
        let transfer = (code + 1) * HIDDEN + HIDDEN;
        let output = HIDDEN * n + n;
        ParamCount {
            code,
            encoder,
            transfer,
            output,
            total: encoder + transfer + output,
        }
    }

    /// Human-readable breakdown.
    pub fn describe(&self, pixels: usize, n: usize) -> String {
        format!(
            "encoder ({}+1)x{c}+{c} = {}, transfer ({c}+1)x{HIDDEN}+{HIDDEN} = {}, output {HIDDEN}x{n}+{n} = {}, total {}",
            pixels, self.encoder, self.transfer, self.output, self.total, c = self.code
        )
    }
}

/// The paper's budget.
pub const BUDGET: usize = 2560;

/// Interface features of one conditioning input: `[c_in(sigma) x, s]`.
pub fn features(cfg: &UnetConfig, x: &[f32], sigma: f32) -> DVector<f64> {
    let c = cfg.c_in(sigma) as f64;
    let (lo, hi) = ((cfg.sigma_min as f64).ln(), (cfg.sigma_max as f64).ln());
    let s = 2.0 * ((sigma as f64).ln() - lo) / (hi - lo) - 1.0;
    let mut v: Vec<f64> = x.iter().map(|&p| c * p as f64).collect();
    v.push(s);
    DVector::from_vec(v)
}

impl Interface {
    /// Number of injected units.
    pub fn units(&self) -> usize {
        self.out_b.len()
    }

    /// Parameter breakdown.
    pub fn param_count(&self) -> ParamCount {
        ParamCount::with_code(self.pixels, self.code, self.units())
    }

    /// Check the shapes (after loading a side file).
    pub fn validate(&self) -> Result<(), String> {
        let n = self.units();
        let checks = [
            ("enc_w", self.enc_w.len(), self.code * (self.pixels + 1)),
            ("enc_b", self.enc_b.len(), self.code),
            ("tr_w", self.tr_w.len(), HIDDEN * (self.code + 1)),
            ("tr_b", self.tr_b.len(), HIDDEN),
            ("out_w", self.out_w.len(), HIDDEN * n),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(format!("interface `{name}`: {got} values, expected {want}"));
            }
        }
        for (name, v) in [
            ("enc_w", &self.enc_w),
            ("enc_b", &self.enc_b),
            ("tr_w", &self.tr_w),
            ("tr_b", &self.tr_b),
            ("out_w", &self.out_w),
            ("out_b", &self.out_b),
        ] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("interface `{name}`[{i}] is not finite"));
            }
        }
        Ok(())
    }

    /// The code of a feature vector.
    pub fn encode(&self, f: &DVector<f64>) -> DVector<f64> {
        let p1 = self.pixels + 1;
        DVector::from_fn(self.code, |r, _| {
            self.enc_b[r] + (0..p1).map(|c| self.enc_w[r * p1 + c] * f[c]).sum::<f64>()
        })
    }

    /// Biases of the injected module for one conditioning input.
    pub fn biases(&self, f: &DVector<f64>) -> DVector<f64> {
        let z = self.encode(f);
        let k = self.code;
        let s = f[self.pixels];
        let g: Vec<f64> = z.iter().copied().chain(std::iter::once(s)).collect();
        let h: Vec<f64> = (0..HIDDEN)
            .map(|j| {
                (self.tr_b[j]
                    + (0..k + 1)
                        .map(|c| self.tr_w[j * (k + 1) + c] * g[c])
                        .sum::<f64>())
                .tanh()
            })
            .collect();
        let n = self.units();
        DVector::from_fn(n, |i, _| {
            self.out_b[i]
                + (0..HIDDEN)
                    .map(|j| self.out_w[i * HIDDEN + j] * h[j])
                    .sum::<f64>()
        })
    }
}

/// Training settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Seed of initialisation and batches.
    pub seed: u64,
    /// Adam steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate (cosine-decayed to 5 %).
    pub lr: f64,
    /// Width of the code (the paper's shape: 4).
    pub code: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 1,
            steps: 4000,
            batch: 256,
            lr: 3e-3,
            code: CODE,
        }
    }
}

struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Result of training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    /// Mean squared error per decoder unit on the training set, at the end.
    pub train_mse: f64,
    /// The part of it no bias into the injected module can remove (outside the range of `M`).
    pub unreachable_mse: f64,
    /// Capacity bound: the smallest error any output `W_o h + b_o` with `h` in R^16 can reach
    /// (best rank-16 affine fit of the reachable targets, plus the unreachable part).
    pub capacity_mse: f64,
    /// Rank of `M` used.
    pub rank: usize,
    /// Condition number of `M` (largest / smallest kept singular value).
    pub condition: f64,
}

/// Train an interface: `feats` `[n_samples, pixels+1]`, `targets` `[n_samples, |D|]` (decoder
/// activations minus the couplings-only mean), `m = [A^-1]_{D,S}`.
pub fn train(
    cfg: &UnetConfig,
    inject: &str,
    feats: &DMatrix<f64>,
    targets: &DMatrix<f64>,
    m: &DMatrix<f64>,
    opts: &TrainOptions,
) -> Result<(Interface, TrainReport), String> {
    let code = opts.code;
    if code == 0 {
        return Err("interface training: code width must be at least 1".into());
    }
    let ns = feats.nrows();
    let p1 = feats.ncols();
    let (nd, n) = (m.nrows(), m.ncols());
    if targets.nrows() != ns || targets.ncols() != nd {
        return Err("interface training: targets do not match features / M".into());
    }
    if ns == 0 {
        return Err("interface training: no samples".into());
    }
    let svd = m.clone().svd(true, true);
    let (u, vt) = match (svd.u, svd.v_t) {
        (Some(u), Some(vt)) => (u, vt),
        _ => return Err("SVD of M failed".into()),
    };
    let smax = svd.singular_values.max();
    let keep: Vec<usize> = (0..svd.singular_values.len())
        .filter(|&i| svd.singular_values[i] > 1e-10 * smax)
        .collect();
    let r = keep.len();
    let smin = keep
        .iter()
        .map(|&i| svd.singular_values[i])
        .fold(f64::INFINITY, f64::min);
    let uk = DMatrix::from_fn(nd, r, |a, b| u[(a, keep[b])]);
    let sk: Vec<f64> = keep.iter().map(|&i| svd.singular_values[i]).collect();
    let vk = DMatrix::from_fn(n, r, |a, b| vt[(keep[b], a)]);
    // Projected targets y = t U (rows = samples) and the unreachable residual.
    let y = targets * &uk;
    let unreachable = (targets.norm_squared() - y.norm_squared()).max(0.0) / (ns * nd) as f64;
    let capacity = {
        let mean = y.row_mean();
        let mut yc = y.clone();
        for mut row in yc.row_iter_mut() {
            row -= &mean;
        }
        let mut sv: Vec<f64> = yc.singular_values().iter().map(|s| s * s).collect();
        sv.sort_by(|a, b| b.total_cmp(a));
        sv.iter().skip(HIDDEN).sum::<f64>() / (ns * nd) as f64 + unreachable
    };

    let mut rng = Rng::stream(opts.seed, 0x1f7e);
    // Parameters: we [code x p1], be [code], wt [HIDDEN x (code+1)], bt [HIDDEN],
    // pw [r x HIDDEN], pb [r]; flat vector.
    let sizes = [code * p1, code, HIDDEN * (code + 1), HIDDEN, r * HIDDEN, r];
    let mut offs = vec![0usize];
    for s in sizes {
        let last = offs[offs.len() - 1];
        offs.push(last + s);
    }
    let np = offs[6];
    let mut theta = vec![0.0f64; np];
    for i in 0..code * p1 {
        theta[offs[0] + i] = rng.normal() / (p1 as f64).sqrt();
    }
    for i in 0..HIDDEN * (code + 1) {
        theta[offs[2] + i] = rng.normal() / ((code + 1) as f64).sqrt();
    }
    let ymean = y.row_mean();
    for i in 0..r {
        theta[offs[5] + i] = ymean[i];
    }
    let mut adam = Adam::new(np);
    let mut order: Vec<usize> = (0..ns).collect();
    let mut pos = ns;
    let bsz = opts.batch.clamp(1, ns);
    let mut grad = vec![0.0f64; np];
    for step in 0..opts.steps {
        let mut idx = Vec::with_capacity(bsz);
        while idx.len() < bsz {
            if pos >= ns {
                rng.shuffle(&mut order);
                pos = 0;
            }
            idx.push(order[pos]);
            pos += 1;
        }
        grad.iter_mut().for_each(|g| *g = 0.0);
        let scale = 2.0 / (bsz * nd) as f64;
        for &si in &idx {
            let f = feats.row(si);
            let mut g = vec![0.0f64; code + 1];
            for (c, gc) in g.iter_mut().enumerate().take(code) {
                let w = &theta[offs[0] + c * p1..offs[0] + (c + 1) * p1];
                *gc = theta[offs[1] + c] + w.iter().zip(f.iter()).map(|(a, b)| a * b).sum::<f64>();
            }
            g[code] = f[p1 - 1];
            let mut h = [0.0f64; HIDDEN];
            for (j, hj) in h.iter_mut().enumerate() {
                let w = &theta[offs[2] + j * (code + 1)..offs[2] + (j + 1) * (code + 1)];
                *hj = (theta[offs[3] + j]
                    + w.iter().zip(g.iter()).map(|(a, b)| a * b).sum::<f64>())
                .tanh();
            }
            let mut dh = [0.0f64; HIDDEN];
            for o in 0..r {
                let w = &theta[offs[4] + o * HIDDEN..offs[4] + (o + 1) * HIDDEN];
                let yo =
                    theta[offs[5] + o] + w.iter().zip(h.iter()).map(|(a, b)| a * b).sum::<f64>();
                let d = scale * (yo - y[(si, o)]);
                grad[offs[5] + o] += d;
                for j in 0..HIDDEN {
                    grad[offs[4] + o * HIDDEN + j] += d * h[j];
                    dh[j] += d * w[j];
                }
            }
            let mut dg = vec![0.0f64; code + 1];
            for j in 0..HIDDEN {
                let da = dh[j] * (1.0 - h[j] * h[j]);
                grad[offs[3] + j] += da;
                for c in 0..code + 1 {
                    grad[offs[2] + j * (code + 1) + c] += da * g[c];
                    dg[c] += da * theta[offs[2] + j * (code + 1) + c];
                }
            }
            for c in 0..code {
                grad[offs[1] + c] += dg[c];
                for (q, fq) in f.iter().enumerate() {
                    grad[offs[0] + c * p1 + q] += dg[c] * fq;
                }
            }
        }
        let frac = step as f64 / opts.steps.max(1) as f64;
        let lr = opts.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
        adam.step(&mut theta, &grad, lr);
    }
    // Map the output layer back: W_o = V Sigma^-1 P, b_o = V Sigma^-1 p.
    let pw = DMatrix::from_fn(r, HIDDEN, |o, j| theta[offs[4] + o * HIDDEN + j] / sk[o]);
    let pb = DVector::from_fn(r, |o, _| theta[offs[5] + o] / sk[o]);
    let wo = &vk * pw;
    let bo = &vk * pb;
    let iface = Interface {
        code,
        inject: inject.to_string(),
        pixels: p1 - 1,
        sigma_min: cfg.sigma_min,
        sigma_max: cfg.sigma_max,
        sigma_data: cfg.sigma_data,
        enc_w: theta[offs[0]..offs[1]].to_vec(),
        enc_b: theta[offs[1]..offs[2]].to_vec(),
        tr_w: theta[offs[2]..offs[3]].to_vec(),
        tr_b: theta[offs[3]..offs[4]].to_vec(),
        out_w: (0..n)
            .flat_map(|i| (0..HIDDEN).map(move |j| (i, j)))
            .map(|(i, j)| wo[(i, j)])
            .collect(),
        out_b: bo.iter().copied().collect(),
    };
    // Final training error in decoder units.
    let mut sse = 0.0;
    for si in 0..ns {
        let f = DVector::from_iterator(p1, feats.row(si).iter().copied());
        let b = iface.biases(&f);
        let mu = m * b;
        for o in 0..nd {
            sse += (mu[o] - targets[(si, o)]).powi(2);
        }
    }
    let report = TrainReport {
        train_mse: sse / (ns * nd) as f64,
        unreachable_mse: unreachable,
        capacity_mse: capacity,
        rank: r,
        condition: smax / smin,
    };
    Ok((iface, report))
}
