//! The clamped substrate: the U-Net compiled into couplings between clamp units, so that the
//! substrate's own fixed point does the denoising (`docs/compiler.md` §10).
//!
//! Units clamp to `[lo, hi]` (`rho(x) = clamp(x, lo, hi)`, the ReLU of the U-Net when `lo = 0`
//! and `hi` is above every activation), unit stiffness, and module `m`'s state is the U-Net's
//! activation scaled by `s_m = g^m` (`g` = `layer_scale`; modules in forward order
//! `enc0, enc1, bottleneck, dec1, dec0`). In these units a U-Net layer `h_m = relu(W h_{m-1} + c)`
//! is the coupling `J[m, m-1] = (s_m / s_{m-1}) W = g W` with bias `s_m c`; the coupling is
//! symmetric (an energy), so module `m` also pushes back on module `m-1` through `g W^T`, which in
//! module `m-1`'s units is `g^2` of the forward signal: a small `g` keeps the relaxation close to
//! the U-Net's forward pass and contracting. The energy (clamped Hopfield form) is
//!
//! ```text
//! E(x) = 1/2 |x|^2 - 1/2 rho(x)^T J rho(x) - b^T rho(x),     J symmetric, zero diagonal
//! ```
//!
//! and its fixed point is the **projected fixed point** `y = clamp(J y + b, lo, hi)`, `y = rho(x)`.
//!
//! What stays digital per denoiser call, counted by [`ClampedModel::digital`]: the input drive
//! into enc0 (`W_in c_in(sigma) x`), the noise-level table (`E phi(sigma)`, one bias vector per
//! noise level, precomputable) and the output head (`F = W_out y_dec0 + b_out`,
//! `D = c_skip x + c_out F`).
//!
//! Everything here is `f64`; the engines ([`thermo_sim`]) run the same substrate through
//! [`ClampedModel::to_config`].

use crate::gram::{self, ActivationSet, Factorisation};
use crate::unet::{Unet, UnetConfig};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// A local coupling block: `J[to, from] = w` (`rows = size(to)`, `cols = size(from)`, row-major)
/// and, by symmetry, `J[from, to] = w^T`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Module receiving the forward signal.
    pub to: usize,
    /// Module sending it.
    pub from: usize,
    /// Row-major `[size(to), size(from)]` couplings in substrate units.
    pub w: Vec<f64>,
}

/// A rank-k coupling bus: `J[dec, enc] = sum_r sigma_r v_r u_r^T` (and its transpose).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bus {
    /// Encoder module.
    pub enc: usize,
    /// Decoder module.
    pub dec: usize,
    /// Gains `sigma_r`.
    pub sigma: Vec<f64>,
    /// Encoder factors, one row of `size(enc)` per rank.
    pub u: Vec<Vec<f64>>,
    /// Decoder factors, one row of `size(dec)` per rank.
    pub v: Vec<Vec<f64>>,
}

/// Compiler settings of the clamped substrate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClampOptions {
    /// Skip-bus rank (`None`: the skip blocks stay dense couplings).
    pub rank: Option<usize>,
    /// Factorisation of the skip blocks.
    pub method: Factorisation,
    /// Per-module state scale `g` (module `m` holds `g^m` times the U-Net's activation).
    pub layer_scale: f64,
    /// Lower clamp bound (0: ReLU).
    pub lo: f64,
    /// Upper clamp bound in substrate units; `None` chooses 1.5x the largest scaled activation
    /// on the training data.
    pub hi: Option<f64>,
}

impl Default for ClampOptions {
    fn default() -> Self {
        ClampOptions {
            rank: Some(8),
            method: Factorisation::GramWeighted,
            layer_scale: 0.2,
            lo: 0.0,
            hi: None,
        }
    }
}

/// The clamped substrate with its digital periphery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClampedModel {
    /// Format tag.
    pub format: String,
    /// The U-Net's conventions (`c_in`, `c_skip`, `c_out`, embedding).
    pub unet: UnetConfig,
    /// Compile options.
    pub options: ClampOptions,
    /// Module names in unit order.
    pub names: Vec<String>,
    /// Units per module.
    pub sizes: Vec<usize>,
    /// State scale `s_m` per module.
    pub scale: Vec<f64>,
    /// Lower clamp bound.
    pub lo: f64,
    /// Upper clamp bound.
    pub hi: f64,
    /// Local coupling blocks.
    pub blocks: Vec<Block>,
    /// Rank-k skip buses.
    pub buses: Vec<Bus>,
    /// Constant bias per unit (substrate units).
    pub bias: Vec<f64>,
    /// Noise-level table: `[units, emb]` row-major, the bias `E phi(sigma)` (substrate units).
    pub emb: Vec<f64>,
    /// Input drive into module 0: `[size(0), pixels]` row-major, applied to `c_in(sigma) x`.
    pub input: Vec<f64>,
    /// Output head `[pixels, size(last)]` row-major, applied to the last module's `rho(x)`.
    pub out_w: Vec<f64>,
    /// Output bias `[pixels]`.
    pub out_b: Vec<f64>,
    /// Optional digital pixel path of the head, `F += P c_in(sigma) x` (`pixels x pixels`,
    /// row-major; empty: none). A linear map only: what the substrate adds beyond it is
    /// measured by zeroing the substrate's contribution.
    #[serde(default)]
    pub out_x: Vec<f64>,
    /// Optional digital input drive into the last module, `[W_dec c_in(sigma) x]_last`
    /// (`size(last) x pixels`, row-major; empty: none), beside the enc0 drive `input`.
    #[serde(default)]
    pub input_out: Vec<f64>,
    /// Optional noise-level gate of the pixel path: its input becomes `a(sigma) c_in(sigma) x`
    /// with `a(sigma) = 1 + gate . phi(sigma)` (`emb` values; empty: `a = 1`). A linear path
    /// tuned where the noise is small passes the noise on where it is large; the gate lets the
    /// path fade there.
    #[serde(default)]
    pub out_x_gate: Vec<f64>,
    /// The same gate for the decoder drive `input_out`.
    #[serde(default)]
    pub input_out_gate: Vec<f64>,
    /// How the engines run it ([`ClampedModel::calibrate`]); `None` until calibrated.
    #[serde(default)]
    pub engine: Option<Calibration>,
    /// The U-Net file it was compiled from (what `thermo eval` compares it with by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The engines' settings and the data ranges their Q formats were chosen for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Temperature, step and widths.
    pub settings: EngineSettings,
    /// Ranges measured on the calibration inputs.
    pub ranges: crate::compile::Ranges,
    /// Default relaxation of one call on the engines.
    pub run: EngineRun,
}

/// Format tag of [`ClampedModel`] files.
pub const FORMAT: &str = "thermo-clamped-substrate/1";

/// Parameters and multiply-accumulates of what stays digital per denoiser call.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Digital {
    /// Input drive `W_in` (pixels x enc0).
    pub input_params: usize,
    /// Noise-level table `E` (units x emb).
    pub table_params: usize,
    /// Output head `W_out`, `b_out`.
    pub head_params: usize,
    /// MACs per call: input drive + output head (+ the table's `E phi`, which a board
    /// precomputes per noise level; counted here) + the 2 output scalars per pixel.
    pub macs: usize,
    /// Couplings in the substrate (local entries, one direction, plus bus factors and gains).
    pub substrate_params: usize,
}

/// Convergence certificate of the projected iteration `y <- clamp(J y + b)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contraction {
    /// `||J||_2` (largest `|eigenvalue|`, `J` symmetric).
    pub norm2: f64,
    /// Spectral radius of `|J|` (entrywise): below 1 it proves contraction in a weighted
    /// max-norm too.
    pub abs_radius: f64,
    /// Whether the iteration provably contracts (`norm2 < 1`: `clamp` is 1-Lipschitz per
    /// coordinate, so `|F(y) - F(y')|_2 <= ||J||_2 |y - y'|_2`).
    pub proven: bool,
}

/// Result of relaxing a batch.
#[derive(Clone, Debug)]
pub struct Relaxed {
    /// `rho(x)` at the fixed point, `[units, batch]`.
    pub y: DMatrix<f64>,
    /// Pre-activations `J y + b` at the fixed point.
    pub p: DMatrix<f64>,
    /// Iterations used.
    pub iterations: usize,
    /// Final largest change of an iteration.
    pub residual: f64,
}

fn dense(d: &crate::Dense) -> DMatrix<f64> {
    DMatrix::from_fn(d.n_out, d.n_in, |r, c| d.w[r * d.n_in + c] as f64)
}

impl ClampedModel {
    /// Compile `model` (Gram matrices for the rank-k factorisation from `train`).
    pub fn compile(model: &Unet, train: &ActivationSet, o: &ClampOptions) -> Result<Self, String> {
        let g = o.layer_scale;
        if !(g.is_finite() && g > 0.0) {
            return Err(format!("layer scale {g} must be finite and > 0"));
        }
        if !o.lo.is_finite() || o.hi.is_some_and(|h| !h.is_finite() || h <= o.lo) {
            return Err(format!(
                "clamp bounds [{}, {:?}] must be finite with lo < hi",
                o.lo, o.hi
            ));
        }
        if o.rank == Some(0) {
            return Err("skip rank must be at least 1 (or dense)".into());
        }
        for (name, t) in model.tensors() {
            if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                return Err(format!("U-Net tensor `{name}`[{i}] is {}", t[i]));
            }
        }
        let cfg = &model.config;
        let l = cfg.levels();
        let names = cfg.module_names();
        let mut sizes: Vec<usize> = cfg.enc.clone();
        sizes.push(cfg.bottleneck);
        sizes.extend((0..l).rev().map(|k| cfg.enc[k]));
        let scale: Vec<f64> = (0..sizes.len()).map(|m| g.powi(m as i32)).collect();
        let ratio = |to: usize, from: usize| scale[to] / scale[from];
        let block = |to: usize, from: usize, w: &DMatrix<f64>| Block {
            to,
            from,
            w: (0..w.nrows())
                .flat_map(|r| (0..w.ncols()).map(move |c| (r, c)))
                .map(|(r, c)| ratio(to, from) * w[(r, c)])
                .collect(),
        };
        let mut blocks = Vec::new();
        for k in 1..l {
            blocks.push(block(k, k - 1, &dense(&model.enc[k])));
        }
        blocks.push(block(l, l - 1, &dense(&model.bottleneck)));
        for (step, k) in (0..l).rev().enumerate() {
            let to = l + 1 + step;
            blocks.push(block(to, to - 1, &dense(&model.dec[k])));
        }
        let mut buses = Vec::new();
        for k in 0..l {
            let (enc, dec) = (k, 2 * l - k);
            let w = gram::skip_matrix(model, k).ok_or_else(|| format!("no skip block {k}"))?;
            match o.rank {
                None => blocks.push(block(dec, enc, &w)),
                Some(r) => {
                    let f = match o.method {
                        Factorisation::PlainSvd => gram::plain_svd(&w, r)?,
                        Factorisation::GramWeighted => {
                            let e = train
                                .module(&format!("enc{k}"))
                                .ok_or_else(|| format!("no training activations of enc{k}"))?;
                            gram::gram_weighted(&w, &gram::gram(e), r)?
                        }
                        Factorisation::CovarianceWeighted => {
                            return Err("the clamped compile supports gram and plain".into())
                        }
                    };
                    let mut bus = Bus {
                        enc,
                        dec,
                        sigma: vec![],
                        u: vec![],
                        v: vec![],
                    };
                    for rr in 0..f.rank() {
                        let u: Vec<f64> = f.u.column(rr).iter().copied().collect();
                        let v: Vec<f64> = f.v.column(rr).iter().copied().collect();
                        let mu = u.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
                        let mv = v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
                        bus.sigma.push(ratio(dec, enc) * f.s[rr] * mu * mv);
                        bus.u.push(u.iter().map(|x| x / mu).collect());
                        bus.v.push(v.iter().map(|x| x / mv).collect());
                    }
                    buses.push(bus);
                }
            }
        }
        // Biases and noise-level table, module by module, in substrate units.
        let mut bias = Vec::new();
        let mut emb = Vec::new();
        let mut push = |layer: &crate::Dense, e: &crate::Dense, s: f64| {
            bias.extend(layer.b.iter().map(|&v| s * v as f64));
            emb.extend(e.w.iter().map(|&v| s * v as f64));
        };
        for k in 0..l {
            push(&model.enc[k], &model.enc_emb[k], scale[k]);
        }
        push(&model.bottleneck, &model.bottleneck_emb, scale[l]);
        for (step, k) in (0..l).rev().enumerate() {
            push(&model.dec[k], &model.dec_emb[k], scale[l + 1 + step]);
        }
        let last = sizes.len() - 1;
        let input = model.enc[0]
            .w
            .iter()
            .map(|&v| scale[0] * v as f64)
            .collect();
        let out_w = model
            .out
            .w
            .iter()
            .map(|&v| v as f64 / scale[last])
            .collect();
        let out_b = model.out.b.iter().map(|&v| v as f64).collect();
        let mut c = ClampedModel {
            format: FORMAT.into(),
            unet: cfg.clone(),
            options: o.clone(),
            names,
            sizes,
            scale,
            lo: o.lo,
            hi: f64::INFINITY,
            blocks,
            buses,
            bias,
            emb,
            input,
            out_w,
            out_b,
            out_x: Vec::new(),
            input_out: Vec::new(),
            out_x_gate: Vec::new(),
            input_out_gate: Vec::new(),
            engine: None,
            source: None,
        };
        c.hi = match o.hi {
            Some(h) => h,
            None => {
                let mut m = 0.0f64;
                for (k, name) in c.names.iter().enumerate() {
                    if let Some(a) = train.module(name) {
                        m = m.max(a.amax() * c.scale[k]);
                    }
                }
                (1.5 * m).max(o.lo + 1e-3)
            }
        };
        c.validate()?;
        Ok(c)
    }

    /// Check shapes, finiteness and bounds; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format: `{}`, expected `{FORMAT}`", self.format));
        }
        self.unet.validate().map_err(|e| format!("unet: {e}"))?;
        let n = self.sizes.len();
        if n < 2 || self.names.len() != n || self.scale.len() != n {
            return Err(format!(
                "names/sizes/scale: need the same number (>= 2) of modules, got {}/{}/{}",
                self.names.len(),
                n,
                self.scale.len()
            ));
        }
        let fin = |what: &str, v: &[f64]| -> Result<(), String> {
            match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(format!("{what}[{i}] is {}", v[i])),
                None => Ok(()),
            }
        };
        fin("scale", &self.scale)?;
        if !(self.lo.is_finite() && self.hi.is_finite() && self.lo < self.hi) {
            return Err(format!(
                "lo/hi: need finite lo < hi, got [{}, {}]",
                self.lo, self.hi
            ));
        }
        let d = self.units();
        let px = self.unet.input;
        let emb = self.unet.emb;
        for (what, v, want) in [
            ("bias", &self.bias, d),
            ("emb", &self.emb, d * emb),
            ("input", &self.input, self.sizes[0] * px),
            ("out_w", &self.out_w, px * self.sizes[n - 1]),
            ("out_b", &self.out_b, px),
        ] {
            if v.len() != want {
                return Err(format!("{what}: {} values, expected {want}", v.len()));
            }
            fin(what, v)?;
        }
        if !self.input_out.is_empty() {
            if self.input_out.len() != px * self.sizes[n - 1] {
                return Err(format!(
                    "input_out: {} values, expected {} (or none)",
                    self.input_out.len(),
                    px * self.sizes[n - 1]
                ));
            }
            fin("input_out", &self.input_out)?;
        }
        if !self.out_x.is_empty() {
            if self.out_x.len() != px * px {
                return Err(format!(
                    "out_x: {} values, expected {} (or none)",
                    self.out_x.len(),
                    px * px
                ));
            }
            fin("out_x", &self.out_x)?;
        }
        for (what, gate, path) in [
            ("out_x_gate", &self.out_x_gate, &self.out_x),
            ("input_out_gate", &self.input_out_gate, &self.input_out),
        ] {
            if gate.is_empty() {
                continue;
            }
            if path.is_empty() {
                return Err(format!(
                    "{what}: a gate without its path (`{}` is empty)",
                    what.trim_end_matches("_gate")
                ));
            }
            if gate.len() != self.unet.emb {
                return Err(format!(
                    "{what}: {} values, expected {} (one per noise-level bump, or none)",
                    gate.len(),
                    self.unet.emb
                ));
            }
            fin(what, gate)?;
        }
        for (bi, b) in self.blocks.iter().enumerate() {
            if b.to >= n || b.from >= n || b.to == b.from {
                return Err(format!(
                    "blocks[{bi}]: modules {} <- {} invalid",
                    b.to, b.from
                ));
            }
            if b.w.len() != self.sizes[b.to] * self.sizes[b.from] {
                return Err(format!(
                    "blocks[{bi}].w: {} values, expected {}",
                    b.w.len(),
                    self.sizes[b.to] * self.sizes[b.from]
                ));
            }
            fin(&format!("blocks[{bi}].w"), &b.w)?;
        }
        for (bi, b) in self.buses.iter().enumerate() {
            if b.enc >= n || b.dec >= n || b.enc == b.dec {
                return Err(format!("buses[{bi}]: modules invalid"));
            }
            let k = b.sigma.len();
            if k == 0 || b.u.len() != k || b.v.len() != k {
                return Err(format!("buses[{bi}]: sigma, u, v need the same rank >= 1"));
            }
            fin(&format!("buses[{bi}].sigma"), &b.sigma)?;
            for r in 0..k {
                if b.u[r].len() != self.sizes[b.enc] || b.v[r].len() != self.sizes[b.dec] {
                    return Err(format!("buses[{bi}].u/v[{r}]: wrong length"));
                }
                fin(&format!("buses[{bi}].u[{r}]"), &b.u[r])?;
                fin(&format!("buses[{bi}].v[{r}]"), &b.v[r])?;
            }
        }
        Ok(())
    }

    /// Load a JSON file written by [`ClampedModel::save`]; errors name the file and field.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m: ClampedModel = serde_json::from_str(&text).map_err(|e| {
            // Files are written one value per line: name the top-level field around the error.
            let field = text
                .lines()
                .take(e.line())
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .find_map(|l| {
                    l.strip_prefix("  \"")
                        .and_then(|r| r.split_once("\":"))
                        .map(|(k, _)| k.to_string())
                });
            match field {
                Some(f) => format!("{}: field `{f}`: {e}", path.display()),
                None => format!("{}: {e}", path.display()),
            }
        })?;
        m.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(m)
    }

    /// Write as JSON (pretty: one value per line, so a load error names its field).
    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Total units.
    pub fn units(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// First unit of each module.
    pub fn offsets(&self) -> Vec<usize> {
        let mut o = Vec::with_capacity(self.sizes.len());
        let mut s = 0;
        for z in &self.sizes {
            o.push(s);
            s += z;
        }
        o
    }

    /// Unit range of module `m`.
    pub fn range(&self, m: usize) -> std::ops::Range<usize> {
        let o = self.offsets()[m];
        o..o + self.sizes[m]
    }

    /// The last module (the one the output head reads).
    pub fn out_module(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The dense symmetric coupling matrix `J` (buses included).
    pub fn coupling_matrix(&self) -> DMatrix<f64> {
        let d = self.units();
        let off = self.offsets();
        let mut j = DMatrix::zeros(d, d);
        for b in &self.blocks {
            let (rows, cols) = (self.sizes[b.to], self.sizes[b.from]);
            for r in 0..rows {
                for c in 0..cols {
                    let v = b.w[r * cols + c];
                    j[(off[b.to] + r, off[b.from] + c)] += v;
                    j[(off[b.from] + c, off[b.to] + r)] += v;
                }
            }
        }
        for b in &self.buses {
            for k in 0..b.sigma.len() {
                for (ni, &vv) in b.v[k].iter().enumerate() {
                    for (nj, &uu) in b.u[k].iter().enumerate() {
                        let c = b.sigma[k] * vv * uu;
                        j[(off[b.dec] + ni, off[b.enc] + nj)] += c;
                        j[(off[b.enc] + nj, off[b.dec] + ni)] += c;
                    }
                }
            }
        }
        j
    }

    /// The contraction certificate of `J`.
    pub fn contraction(&self) -> Contraction {
        contraction_of(&self.coupling_matrix())
    }

    /// What stays digital per call, and the substrate's size for comparison.
    pub fn digital(&self) -> Digital {
        let px = self.unet.input;
        let (n0, nl) = (self.sizes[0], self.sizes[self.out_module()]);
        let input_params = n0 * px + self.input_out.len();
        let table_params = self.units() * self.unet.emb;
        let head_params = px * nl + px + self.out_x.len() + self.out_x_gate.len();
        let input_params = input_params + self.input_out_gate.len();
        let substrate_params = self.blocks.iter().map(|b| b.w.len()).sum::<usize>()
            + self
                .buses
                .iter()
                .map(|b| b.sigma.len() * (1 + b.u[0].len() + b.v[0].len()))
                .sum::<usize>();
        Digital {
            input_params,
            table_params,
            head_params,
            // the gates' dot products with the noise-level embedding count as MACs too
            macs: input_params
                + table_params
                + px * nl
                + self.out_x.len()
                + self.out_x_gate.len()
                + 2 * px,
            substrate_params,
        }
    }

    /// Per-call biases `b = bias + E phi(sigma) + [W_in c_in(sigma) x]_enc0` of a batch
    /// (`[units, batch]`).
    pub fn biases(&self, xs: &[Vec<f32>], sigmas: &[f32]) -> DMatrix<f64> {
        let d = self.units();
        let (px, ne) = (self.unet.input, self.unet.emb);
        let n0 = self.sizes[0];
        let last = self.range(self.out_module());
        let mut b = DMatrix::zeros(d, xs.len());
        for (c, (x, &s)) in xs.iter().zip(sigmas).enumerate() {
            let phi = self.unet.embedding(s);
            let cin = self.unet.c_in(s) as f64;
            let mut col = b.column_mut(c);
            for i in 0..d {
                let mut v = self.bias[i];
                for (e, p) in self.emb[i * ne..(i + 1) * ne].iter().zip(&phi) {
                    v += e * *p as f64;
                }
                col[i] = v;
            }
            for i in 0..n0 {
                let w = &self.input[i * px..(i + 1) * px];
                let v: f64 = w.iter().zip(x).map(|(a, b)| a * *b as f64).sum();
                col[i] += cin * v;
            }
            if !self.input_out.is_empty() {
                let a = cin * gate_at(&self.input_out_gate, &phi);
                for (k, i) in last.clone().enumerate() {
                    let w = &self.input_out[k * px..(k + 1) * px];
                    let v: f64 = w.iter().zip(x).map(|(a, b)| a * *b as f64).sum();
                    col[i] += a * v;
                }
            }
        }
        b
    }

    /// The network output `F = W_out y_last + b_out (+ P c_in x)` of every column of `y`
    /// (`[pixels, batch]`) for inputs `xs` at `sigmas`.
    pub fn head(&self, y: &DMatrix<f64>, xs: &[Vec<f32>], sigmas: &[f32]) -> DMatrix<f64> {
        let r = self.range(self.out_module());
        let px = self.unet.input;
        let w = DMatrix::from_row_slice(px, r.len(), &self.out_w);
        let mut f = &w * y.rows(r.start, r.len());
        if !self.out_x.is_empty() {
            let p = DMatrix::from_row_slice(px, px, &self.out_x);
            f += p * self.pixel_path_inputs(xs, sigmas);
        }
        for mut col in f.column_iter_mut() {
            for (v, b) in col.iter_mut().zip(&self.out_b) {
                *v += b;
            }
        }
        f
    }

    /// The pixel path's inputs `a(sigma) c_in(sigma) x` as columns (`[pixels, batch]`; `a` the
    /// path's gate, 1 without one).
    pub fn pixel_path_inputs(&self, xs: &[Vec<f32>], sigmas: &[f32]) -> DMatrix<f64> {
        let mut xin = self.scaled_inputs(xs, sigmas);
        if !self.out_x_gate.is_empty() {
            for (c, &s) in sigmas.iter().enumerate() {
                let a = gate_at(&self.out_x_gate, &self.unet.embedding(s));
                xin.column_mut(c).scale_mut(a);
            }
        }
        xin
    }

    /// The inputs `c_in(sigma) x` as columns (`[pixels, batch]`).
    pub fn scaled_inputs(&self, xs: &[Vec<f32>], sigmas: &[f32]) -> DMatrix<f64> {
        let px = self.unet.input;
        DMatrix::from_fn(px, xs.len(), |p, c| {
            self.unet.c_in(sigmas[c]) as f64 * xs[c][p] as f64
        })
    }

    /// The denoised images `c_skip x + c_out F` (not clipped).
    pub fn denoised(&self, xs: &[Vec<f32>], sigmas: &[f32], f: &DMatrix<f64>) -> Vec<Vec<f32>> {
        xs.iter()
            .zip(sigmas)
            .enumerate()
            .map(|(c, (x, &s))| {
                let (cs, co) = (self.unet.c_skip(s), self.unet.c_out(s));
                x.iter()
                    .zip(f.column(c).iter())
                    .map(|(xi, fi)| cs * xi + co * *fi as f32)
                    .collect()
            })
            .collect()
    }

    /// Exact denoiser: the projected fixed point of every image, then the head.
    pub fn denoise_exact(
        &self,
        j: &DMatrix<f64>,
        xs: &[Vec<f32>],
        sigma: f32,
    ) -> Result<Vec<Vec<f32>>, String> {
        let sig = vec![sigma; xs.len()];
        let b = self.biases(xs, &sig);
        let r = relax_exact(j, &b, self.lo, self.hi, &RelaxOptions::default())?;
        Ok(self.denoised(xs, &sig, &self.head(&r.y, xs, &sig)))
    }
}

/// A noise-level gate `1 + gate . phi` (1 without a gate).
pub fn gate_at(gate: &[f64], phi: &[f32]) -> f64 {
    1.0 + gate
        .iter()
        .zip(phi)
        .map(|(g, p)| g * *p as f64)
        .sum::<f64>()
}

/// Contraction certificate of a symmetric coupling matrix.
pub fn contraction_of(j: &DMatrix<f64>) -> Contraction {
    let e = j.clone().symmetric_eigenvalues();
    let norm2 = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let a = j.map(|v| v.abs());
    let mut x = DVector::from_element(a.nrows(), 1.0);
    let mut r = 0.0;
    for _ in 0..200 {
        let y = &a * &x;
        let n = y.norm();
        if n == 0.0 {
            r = 0.0;
            break;
        }
        r = n / x.norm();
        x = y / n;
    }
    Contraction {
        norm2,
        abs_radius: r,
        proven: norm2 < 1.0,
    }
}

/// Settings of [`relax_exact`].
#[derive(Clone, Copy, Debug)]
pub struct RelaxOptions {
    /// Stop when the largest change of an iteration is below `tol`.
    pub tol: f64,
    /// Give up (error) after this many iterations.
    pub max_iter: usize,
}

impl Default for RelaxOptions {
    fn default() -> Self {
        RelaxOptions {
            tol: 1e-9,
            max_iter: 2000,
        }
    }
}

/// The projected fixed point `y = clamp(J y + b, lo, hi)` of every column of `b`, by the
/// iteration `y <- clamp(J y + b)` from `y = clamp(b)`. Errors when it does not converge
/// within `max_iter` iterations (the relaxation does not contract).
pub fn relax_exact(
    j: &DMatrix<f64>,
    b: &DMatrix<f64>,
    lo: f64,
    hi: f64,
    o: &RelaxOptions,
) -> Result<Relaxed, String> {
    relax_exact_from(j, b, lo, hi, o, b.map(|v| v.clamp(lo, hi)))
}

/// [`relax_exact`] from the states `y0` (`[units, batch]`) instead of `clamp(b)`: the fixed
/// point is the same (it is unique when `||J||_2 < 1`); a start near it saves iterations.
pub fn relax_exact_from(
    j: &DMatrix<f64>,
    b: &DMatrix<f64>,
    lo: f64,
    hi: f64,
    o: &RelaxOptions,
    y0: DMatrix<f64>,
) -> Result<Relaxed, String> {
    if y0.shape() != b.shape() || j.nrows() != b.nrows() || !j.is_square() {
        return Err(format!(
            "relaxation: J is {}x{}, the biases {}x{} and the start {}x{} (units x batch expected)",
            j.nrows(),
            j.ncols(),
            b.nrows(),
            b.ncols(),
            y0.nrows(),
            y0.ncols()
        ));
    }
    let mut y = y0;
    let mut p = b.clone();
    let mut residual = f64::INFINITY;
    for it in 1..=o.max_iter {
        p.copy_from(b);
        p.gemm(1.0, j, &y, 1.0);
        let mut change = 0.0f64;
        for (yv, pv) in y.iter_mut().zip(p.iter()) {
            let n = pv.clamp(lo, hi);
            change = change.max((n - *yv).abs());
            *yv = n;
        }
        if !change.is_finite() {
            return Err(format!(
                "the relaxation diverges (iteration {it}): the couplings do not contract; lower the layer scale"
            ));
        }
        residual = change;
        if change <= o.tol {
            return Ok(Relaxed {
                y,
                p,
                iterations: it,
                residual,
            });
        }
    }
    Err(format!(
        "the relaxation does not converge: largest change {residual:.3e} after {} iterations \
         (the clamped dynamics do not contract; lower the layer scale)",
        o.max_iter
    ))
}

/// How the engines run a clamped substrate: the settings of the emitted description that are
/// not couplings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Temperature `T` (a small one dithers the fixed engine's rounding).
    pub temperature: f64,
    /// `eta` as a fraction of the stability limit `2 / lambda_max(I - J)`.
    pub eta_fraction: f64,
    /// Hardware lanes.
    pub lanes: u32,
    /// Width of stored constants (couplings, bus factors and gains).
    pub coupling_bits: u32,
    /// Width of states and bus lines.
    pub state_bits: u32,
    /// Decoder-side bus factors are emitted as `v * v_scale` with `sigma / v_scale`, the same
    /// couplings: a small `v_scale` raises the encoder lines `eta sigma u^T rho` (stored in the
    /// bus format with the sums) out of its rounding, at the cost of `v`'s relative precision.
    #[serde(default = "one")]
    pub v_scale: f64,
    /// Give each module a state shift (`thermo_sim::model::ModuleConfig::shift`) chosen from
    /// its own measured state range, so that small-scale modules (the `g^m` of the layer scale)
    /// keep their resolution in the fixed arithmetic.
    #[serde(default)]
    pub state_shifts: bool,
}

fn one() -> f64 {
    1.0
}

/// Default engine temperature: its noise only dithers the fixed engine's rounding (higher
/// temperatures cost MSE through the head's `1 / g^4`; `docs/clamped.md` §3).
pub const DEFAULT_TEMPERATURE: f64 = 1e-7;
/// Default [`EngineSettings::v_scale`] (`docs/clamped.md` §7).
pub const DEFAULT_V_SCALE: f64 = 1.0 / 16.0;

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            temperature: DEFAULT_TEMPERATURE,
            eta_fraction: 0.5,
            lanes: 16,
            coupling_bits: 16,
            state_bits: 16,
            v_scale: DEFAULT_V_SCALE,
            state_shifts: false,
        }
    }
}

/// How long the engines relax one input, and what they average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineRun {
    /// Sweeps discarded from state zero.
    pub burn_in: u64,
    /// Sweeps `rho(x)` is averaged over.
    pub sweeps: u64,
}

impl Default for EngineRun {
    /// 60 burn-in sweeps (the noiseless relaxation converges in 14–20) and 200 averaged.
    fn default() -> Self {
        EngineRun {
            burn_in: 60,
            sweeps: 200,
        }
    }
}

impl ClampedModel {
    /// The largest eigenvalue of `A = I - J`, the engines' stiffness matrix.
    pub fn lambda_max(&self, j: &DMatrix<f64>) -> f64 {
        let e = j.clone().symmetric_eigenvalues();
        1.0 - e.iter().fold(f64::INFINITY, |m, v| m.min(*v))
    }

    /// The data ranges the Q formats must hold, from fixed points `r` of biases `b` (e.g. of the
    /// training images) at step `eta`: a unit inside `[lo, hi]` moves to the convex combination
    /// `(1 - eta) x + eta p` of its state and its pre-activation `p = J y + b`, and a unit outside
    /// decays towards 0, so states stay within `[(1-eta) lo + eta min p, (1-eta) hi + eta max p]`
    /// (and `[lo, hi]`); bus sums are the partial sums of `u^T y` over the encoder in ascending
    /// order (and `v^T y` over the decoder).
    pub fn ranges(&self, r: &Relaxed, b: &DMatrix<f64>, eta: f64) -> crate::compile::Ranges {
        let (pmin, pmax) =
            r.p.iter()
                .fold((0.0f64, 0.0f64), |(a, z), &v| (a.min(v), z.max(v)));
        let upper = ((1.0 - eta) * self.hi + eta * pmax).max(self.hi);
        let lower = ((1.0 - eta) * self.lo + eta * pmin).min(self.lo);
        let off = self.offsets();
        let mut bus_max = 0.0f64;
        for bus in &self.buses {
            for (side, m) in [(&bus.u, bus.enc), (&bus.v, bus.dec)] {
                for w in side.iter() {
                    for col in r.y.column_iter() {
                        let mut s = 0.0f64;
                        for (n, wv) in w.iter().enumerate() {
                            s += wv * col[off[m] + n];
                            bus_max = bus_max.max(s.abs());
                        }
                    }
                }
            }
        }
        // Per module: its units move towards their pre-activations from 0 while inside [lo, hi]
        // (the same bound, from the module's own pre-activations and fixed points).
        let module_state_max = (0..self.sizes.len())
            .map(|m| {
                let rows = self.range(m);
                let (mut pmin, mut pmax) = (0.0f64, 0.0f64);
                let mut ymax = 0.0f64;
                for i in rows {
                    for (&p, &y) in r.p.row(i).iter().zip(r.y.row(i).iter()) {
                        pmin = pmin.min(p);
                        pmax = pmax.max(p);
                        ymax = ymax.max(y.abs());
                    }
                }
                let up = if pmax > self.hi {
                    (1.0 - eta) * self.hi + eta * pmax
                } else {
                    pmax
                };
                let lo = if pmin < self.lo {
                    (1.0 - eta) * self.lo + eta * pmin
                } else {
                    pmin
                };
                up.abs().max(lo.abs()).max(ymax)
            })
            .collect();
        crate::compile::Ranges {
            state_max: upper.abs().max(lower.abs()),
            module_state_max,
            bus_max,
            bias_max: b.iter().fold(0.0f64, |m, v| m.max(v.abs())),
        }
    }

    /// The engines' description of this substrate: unit stiffness, `A = I - J` (local couplings
    /// both directions, buses with the same sign convention, `E = -sum sigma (u^T rho) (v^T rho)`),
    /// `rho = clamp(lo, hi)`, constant biases `bias` (a run sets the per-call bias), Q formats by
    /// [`crate::compile::choose_formats`] from `ranges`.
    pub fn to_config(
        &self,
        name: &str,
        s: &EngineSettings,
        ranges: &crate::compile::Ranges,
    ) -> Result<thermo_sim::SubstrateConfig, String> {
        use thermo_sim::model::{Activation, BusConfig, Formats, ModuleConfig, PerUnit, Role};
        if !(s.eta_fraction > 0.0 && s.eta_fraction < 1.0) {
            return Err(format!(
                "eta fraction {} must lie in (0, 1) of the stability limit",
                s.eta_fraction
            ));
        }
        if !(s.temperature.is_finite() && s.temperature >= 0.0) {
            return Err(format!(
                "temperature {} must be finite and >= 0",
                s.temperature
            ));
        }
        let j = self.coupling_matrix();
        let c = contraction_of(&j);
        if !c.proven {
            return Err(format!(
                "||J||_2 = {:.4} >= 1: I - J is not positive definite, so the engines' energy has no \
                 minimum; lower the layer scale",
                c.norm2
            ));
        }
        let eta = s.eta_fraction * 2.0 / self.lambda_max(&j);
        let l = self.unet.levels();
        let off = self.offsets();
        let modules = self
            .names
            .iter()
            .enumerate()
            .map(|(m, n)| {
                let (role, level) = if m < l {
                    (Role::Encoder, m as u32)
                } else if m == l {
                    (Role::Bottleneck, l as u32)
                } else {
                    (Role::Decoder, (2 * l - m) as u32)
                };
                ModuleConfig {
                    name: n.clone(),
                    role,
                    level,
                    size: self.sizes[m],
                    stiffness: PerUnit::Uniform(1.0),
                    bias: PerUnit::Each(self.bias[self.range(m)].to_vec()),
                    shift: 0,
                }
            })
            .collect();
        let mut couplings = Vec::new();
        for b in &self.blocks {
            let (rows, cols) = (self.sizes[b.to], self.sizes[b.from]);
            for r in 0..rows {
                for cc in 0..cols {
                    let v = b.w[r * cols + cc];
                    if v != 0.0 {
                        let (i, jj) = (off[b.to] + r, off[b.from] + cc);
                        couplings.push((i, jj, -v));
                        couplings.push((jj, i, -v));
                    }
                }
            }
        }
        couplings.sort_by_key(|&(i, jj, _)| (i, jj));
        let buses = self
            .buses
            .iter()
            .map(|b| BusConfig {
                encoder: self.names[b.enc].clone(),
                decoder: self.names[b.dec].clone(),
                sigma: b.sigma.iter().map(|x| x / s.v_scale).collect(),
                u: b.u.clone(),
                v: b.v
                    .iter()
                    .map(|r| r.iter().map(|x| x * s.v_scale).collect())
                    .collect(),
            })
            .collect();
        let mut cfg = thermo_sim::SubstrateConfig {
            name: name.to_string(),
            temperature: s.temperature,
            eta,
            lanes: s.lanes,
            seed: 1,
            activation: Activation::Clamp {
                lo: self.lo,
                hi: self.hi,
            },
            formats: Formats::default(),
            modules,
            couplings,
            buses,
        };
        cfg.formats = crate::compile::choose_formats(&cfg, ranges, s.coupling_bits, s.state_bits)?;
        if s.state_shifts {
            crate::compile::choose_shifts(&mut cfg, ranges)?;
        }
        Ok(cfg)
    }
}

/// Relax `engine` with per-call bias `b` from its current state and return the time average of
/// `rho(x)` over `run.sweeps` sweeps (at least one) after `run.burn_in`, and the saturation
/// counters ([`thermo_sim::engine::Engine::relax_average`]).
pub fn engine_relax<A: thermo_sim::engine::Arith>(
    sub: &thermo_sim::Substrate,
    engine: &mut thermo_sim::engine::Engine<A>,
    b: &[f64],
    run: &EngineRun,
) -> (Vec<f64>, thermo_sim::engine::Saturation) {
    engine.relax_average(
        sub,
        b,
        run.burn_in,
        run.sweeps,
        thermo_sim::engine::Observe::Activation,
    )
}

/// Which engine relaxes the substrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The `f64` golden model.
    Golden,
    /// The bit-exact fixed-point engine, started as the board starts a RUN (state zero, lane `l`
    /// keyed by `run_key(seed)`).
    Fixed,
}

/// `rho(x)` averages of every column of `b` (`[units, batch]`) on an engine, column `c` run as
/// the board runs a RUN with seed `seed + c` (state zero, lanes keyed by `run_key`); the columns
/// run as the chains of one batched engine ([`thermo_sim::BatchEngine`]), split over `threads`
/// threads (results do not depend on the thread count). Returns the averages `[units, batch]`
/// and the summed saturation counters.
pub fn engine_batch(
    sub: &thermo_sim::Substrate,
    kind: EngineKind,
    b: &DMatrix<f64>,
    run: &EngineRun,
    seed: u64,
    threads: usize,
) -> (DMatrix<f64>, thermo_sim::engine::Saturation) {
    use crate::substrate::relax_many_observed;
    use thermo_sim::engine::{Observe, Saturation};
    let n = b.ncols();
    let cols: Vec<Vec<f64>> = (0..n)
        .map(|c| b.column(c).iter().copied().collect())
        .collect();
    let seeds: Vec<u64> = (0..n).map(|c| seed.wrapping_add(c as u64)).collect();
    let (burn_in, sweeps, act) = (run.burn_in, run.sweeps, Observe::Activation);
    let results = match kind {
        EngineKind::Golden => {
            let g = thermo_sim::Golden::new(sub);
            relax_many_observed(sub, g, &cols, &seeds, burn_in, sweeps, threads, act)
        }
        EngineKind::Fixed => {
            let f = thermo_sim::Fixed::new(sub);
            relax_many_observed(sub, f, &cols, &seeds, burn_in, sweeps, threads, act)
        }
    };
    let mut y = DMatrix::zeros(b.nrows(), n);
    let mut sat = Saturation::default();
    for (c, (v, s)) in results.into_iter().enumerate() {
        y.column_mut(c).copy_from_slice(&v);
        sat.add(&s);
    }
    (y, sat)
}

/// Sweeps the noiseless golden engine (`T = 0`, same `eta`) needs from state zero until no
/// `rho(x)` changes by more than `tol` in a sweep, for every column of `b`; `None` where it
/// did not within `max_sweeps`.
pub fn sweeps_to_converge(
    sub: &thermo_sim::Substrate,
    b: &DMatrix<f64>,
    tol: f64,
    max_sweeps: u64,
) -> Vec<Option<u64>> {
    let mut quiet = sub.clone();
    quiet.temperature = 0.0;
    b.column_iter()
        .map(|col| {
            let mut e = thermo_sim::GoldenEngine::golden(&quiet, 0);
            let col: Vec<f64> = col.iter().copied().collect();
            e.prog.set_bias(&quiet, &col);
            use thermo_sim::engine::Arith;
            let a = e.prog.arith.clone();
            let mut prev: Vec<f64> = e.x.iter().map(|&x| a.rho(0, x)).collect();
            for s in 1..=max_sweeps {
                e.sweep();
                let mut change = 0.0f64;
                for (p, &x) in prev.iter_mut().zip(&e.x) {
                    let r = a.rho(0, x); // the golden clamp: the same in every module
                    change = change.max((r - *p).abs());
                    *p = r;
                }
                if change <= tol {
                    return Some(s);
                }
            }
            None
        })
        .collect()
}

/// Which path relaxes the substrate for a denoiser call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// The projected fixed point in `f64` ([`relax_exact`]).
    Exact,
    /// The golden engine, time-averaged `rho(x)`.
    Golden,
    /// The bit-exact fixed-point engine, time-averaged `rho(x)`.
    Fixed,
}

impl std::str::FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(Path::Exact),
            "golden" => Ok(Path::Golden),
            "fixed" => Ok(Path::Fixed),
            o => Err(format!("`{o}`: expected exact, golden or fixed")),
        }
    }
}

/// The result of relaxing a batch of calls.
#[derive(Clone, Debug)]
pub struct Relaxation {
    /// `rho(x)` (exact) or its time average (engines), `[units, batch]`.
    pub y: DMatrix<f64>,
    /// Saturation counters summed over the batch (engines).
    pub saturation: thermo_sim::engine::Saturation,
    /// Iterations of the exact path.
    pub iterations: usize,
}

/// Noise levels the calibration draws training inputs at (the sampler's range, log-spaced).
pub const CALIBRATION_SIGMAS: [f32; 8] = [0.002, 0.02, 0.1, 0.5, 1.0, 2.0, 10.0, 80.0];

/// Training images the calibration relaxes (the first of the training split).
pub const CALIBRATION_IMAGES: usize = 480;

/// The calibration inputs of `thermo compile`: the first [`CALIBRATION_IMAGES`] of `train`
/// (data scale), image `k` noised at `CALIBRATION_SIGMAS[k % 8]` (noise stream `(5, 0xca1)`).
/// Returns the noisy images and their noise levels.
pub fn calibration_inputs(train: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<f32>) {
    let train = &train[..train.len().min(CALIBRATION_IMAGES)];
    let mut rng = crate::rng::Rng::stream(5, 0xca1);
    let sig: Vec<f32> = (0..train.len())
        .map(|k| CALIBRATION_SIGMAS[k % CALIBRATION_SIGMAS.len()])
        .collect();
    let xs = train
        .iter()
        .zip(&sig)
        .map(|(x0, s)| x0.iter().map(|v| v + s * rng.normal() as f32).collect())
        .collect();
    (xs, sig)
}

impl ClampedModel {
    /// What `thermo compile` does: compile `model` (Gram matrices from the activations of the
    /// `train` images, 2 noise draws each, seed 7) and calibrate its engines on
    /// [`calibration_inputs`] of the same images.
    pub fn compile_calibrated(
        model: &Unet,
        train: &[Vec<f32>],
        o: &ClampOptions,
        settings: EngineSettings,
        run: EngineRun,
    ) -> Result<Self, String> {
        let flat: Vec<f32> = train.iter().flatten().copied().collect();
        let acts = gram::collect_activations(model, &flat, 2, 7);
        let mut c = ClampedModel::compile(model, &acts, o)?;
        c.calibrate_on(train, settings, run)?;
        Ok(c)
    }

    /// [`ClampedModel::calibrate`] on the [`calibration_inputs`] of `train` images.
    pub fn calibrate_on(
        &mut self,
        train: &[Vec<f32>],
        settings: EngineSettings,
        run: EngineRun,
    ) -> Result<(), String> {
        let (xs, sig) = calibration_inputs(train);
        self.calibrate(&xs, &sig, settings, run)
    }
}

impl ClampedModel {
    /// Choose the engines' Q formats for `settings` from the fixed points of `xs` (noisy
    /// training images at `sigmas`) and store them with the default run `run`.
    pub fn calibrate(
        &mut self,
        xs: &[Vec<f32>],
        sigmas: &[f32],
        settings: EngineSettings,
        run: EngineRun,
    ) -> Result<(), String> {
        let j = self.coupling_matrix();
        let b = self.biases(xs, sigmas);
        let r = relax_exact(&j, &b, self.lo, self.hi, &RelaxOptions::default())?;
        let eta = settings.eta_fraction * 2.0 / self.lambda_max(&j);
        let ranges = self.ranges(&r, &b, eta);
        self.to_config("calibration", &settings, &ranges)?;
        self.engine = Some(Calibration {
            settings,
            ranges,
            run,
        });
        Ok(())
    }

    /// The engines' substrate (needs [`ClampedModel::calibrate`]).
    pub fn engine_substrate(&self, name: &str) -> Result<thermo_sim::Substrate, String> {
        let c = self.engine.as_ref().ok_or(
            "engine: the substrate has no calibration for the engines (run thermo compile)",
        )?;
        let cfg = self.to_config(name, &c.settings, &c.ranges)?;
        thermo_sim::Substrate::from_config(&cfg).map_err(|e| e.to_string())
    }

    /// Relax a batch of biases `b` (`[units, batch]`) on `path`; `sub` is the engines' substrate
    /// (from [`ClampedModel::engine_substrate`], unused by the exact path), column `c` seeded
    /// with `seed + c`.
    #[allow(clippy::too_many_arguments)]
    pub fn relax(
        &self,
        path: Path,
        j: &DMatrix<f64>,
        sub: Option<&thermo_sim::Substrate>,
        b: &DMatrix<f64>,
        run: &EngineRun,
        seed: u64,
        threads: usize,
    ) -> Result<Relaxation, String> {
        match path {
            Path::Exact => {
                let r = relax_exact(j, b, self.lo, self.hi, &RelaxOptions::default())?;
                Ok(Relaxation {
                    y: r.y,
                    saturation: Default::default(),
                    iterations: r.iterations,
                })
            }
            Path::Golden | Path::Fixed => {
                let sub = sub.ok_or("the engine paths need the engines' substrate")?;
                let kind = if path == Path::Golden {
                    EngineKind::Golden
                } else {
                    EngineKind::Fixed
                };
                let (y, saturation) = engine_batch(sub, kind, b, run, seed, threads);
                Ok(Relaxation {
                    y,
                    saturation,
                    iterations: 0,
                })
            }
        }
    }

    /// Denoise a batch (`xs` at `sigmas`) on `path`: the relaxation, the head, `c_skip x +
    /// c_out F`, clipped to the data range [-1, 1].
    #[allow(clippy::too_many_arguments)]
    pub fn denoise(
        &self,
        path: Path,
        j: &DMatrix<f64>,
        sub: Option<&thermo_sim::Substrate>,
        xs: &[Vec<f32>],
        sigmas: &[f32],
        run: &EngineRun,
        seed: u64,
        threads: usize,
    ) -> Result<(Vec<Vec<f32>>, Relaxation), String> {
        self.denoise_by(xs, sigmas, |b| {
            self.relax(path, j, sub, b, run, seed, threads)
        })
    }

    /// Denoise a batch (`xs` at `sigmas`) with the relaxation `relax` gives for the biases
    /// ([`ClampedModel::biases`], `[units, batch]`): the head, `c_skip x + c_out F`, clipped to
    /// the data range [-1, 1]. The head reads only the last module's rows of the relaxation.
    pub fn denoise_by(
        &self,
        xs: &[Vec<f32>],
        sigmas: &[f32],
        relax: impl FnOnce(&DMatrix<f64>) -> Result<Relaxation, String>,
    ) -> Result<(Vec<Vec<f32>>, Relaxation), String> {
        let b = self.biases(xs, sigmas);
        let r = relax(&b)?;
        let d = self
            .denoised(xs, sigmas, &self.head(&r.y, xs, sigmas))
            .into_iter()
            .map(|v| v.into_iter().map(|p| p.clamp(-1.0, 1.0)).collect())
            .collect();
        Ok((d, r))
    }

    /// The last module's states in the U-Net's units (`y / scale`), `[units of dec0, batch]`,
    /// for comparison against the U-Net's activations.
    pub fn out_activations(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        let m = self.out_module();
        let r = self.range(m);
        y.rows(r.start, r.len()) / self.scale[m]
    }
}

impl ClampedModel {
    /// Euler-ancestral samples ([`crate::sample::sample_ancestral_batch`]) with this substrate
    /// as the denoiser, the whole batch relaxed per noise level on `path`; the engines' noise is
    /// keyed by the seed and the step. Returns the samples and the saturation events.
    pub fn sample(
        &self,
        path: Path,
        n: usize,
        steps: usize,
        seed: u64,
        run: &EngineRun,
        threads: usize,
    ) -> Result<(Vec<Vec<f32>>, u64), String> {
        let j = self.coupling_matrix();
        let sub = match path {
            Path::Exact => None,
            _ => Some(self.engine_substrate("sample")?),
        };
        self.sample_by(n, steps, seed, |b, key| {
            self.relax(path, &j, sub.as_ref(), b, run, key, threads)
        })
    }

    /// [`ClampedModel::sample`] with the relaxation of each noise level's batch from
    /// `relax(b, key)`: `b` the batch's biases (`[units, batch]`), column `c` to be run with
    /// seed `key + c` (`key` is the seed and step's, as `sample` keys the engines). Returns the
    /// samples and the relaxations' saturation events.
    pub fn sample_by(
        &self,
        n: usize,
        steps: usize,
        seed: u64,
        mut relax: impl FnMut(&DMatrix<f64>, u64) -> Result<Relaxation, String>,
    ) -> Result<(Vec<Vec<f32>>, u64), String> {
        let mut sat = 0u64;
        let imgs = crate::sample::sample_ancestral_batch(
            &self.unet,
            n,
            steps,
            seed,
            |step, xs, sigma| {
                let sig = vec![sigma; xs.len()];
                let key = seed.wrapping_mul(1_000_003).wrapping_add((step * n) as u64);
                let (d, r) = self.denoise_by(xs, &sig, |b| relax(b, key))?;
                sat += r.saturation.total();
                Ok(d)
            },
        )?;
        Ok((imgs, sat))
    }
}
