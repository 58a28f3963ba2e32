//! A small MLP-style denoising U-Net on the 64 pixels of a digit, with hand-written forward and
//! backward passes.
//!
//! Architecture (default sizes; see `diffusion/README.md` for the tensor names):
//!
//! ```text
//! u    = c_in(sigma) * x                        c_in = 1 / sqrt(sigma_data^2 + sigma^2)
//! phi  = rbf(ln sigma)                          16 Gaussian bumps on [ln sigma_min, ln sigma_max]
//! enc0 = relu(W_enc0 u    + b_enc0 + E_enc0 phi)               64 -> 128
//! enc1 = relu(W_enc1 enc0 + b_enc1 + E_enc1 phi)              128 -> 64
//! bott = relu(W_bott enc1 + b_bott + E_bott phi)               64 -> 32
//! dec1 = relu(W_dec1 bott + S_1 enc1 + b_dec1 + E_dec1 phi)    32 -> 64   (skip1: 64x64)
//! dec0 = relu(W_dec0 dec1 + S_0 enc0 + b_dec0 + E_dec0 phi)    64 -> 128  (skip0: 128x128)
//! F    = W_out dec0 + b_out                                   128 -> 64
//! D    = c_skip(sigma) x + c_out(sigma) F                     (the denoised image x0_hat)
//! ```
//!
//! The noisy input is `x = x0 + sigma * eps` (variance exploding). The output is preconditioned
//! as in Karras et al. 2022 (EDM): `c_skip = sd^2 / (sd^2 + sigma^2)`,
//! `c_out = sigma sd / sqrt(sd^2 + sigma^2)` with `sd = sigma_data`, so the network target
//! `(x0 - c_skip x) / c_out` is unit-scale at every noise level: it is `-eps` at small sigma
//! (epsilon prediction) and `x0 / sd` at large sigma (x0 prediction). Every decoder pre-activation is the sum of three parts that
//! [`Activations`] keeps apart: `local` (from the level below), `skip` (through the dense skip
//! block `S_l` from encoder level `l`) and `cond` (bias plus noise-level embedding).

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Architecture and noise-level conventions of a [`Unet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Input/output width (64 pixels).
    pub input: usize,
    /// Encoder widths, level 0 first (decoder level `l` has the same width as encoder level `l`).
    pub enc: Vec<usize>,
    /// Bottleneck width.
    pub bottleneck: usize,
    /// Number of Gaussian bumps of the noise-level embedding.
    pub emb: usize,
    /// Smallest noise level (training range and first embedding centre).
    pub sigma_min: f32,
    /// Largest noise level (training range and last embedding centre).
    pub sigma_max: f32,
    /// Data standard deviation used in the input scaling `c_in`.
    pub sigma_data: f32,
}

impl Default for UnetConfig {
    fn default() -> Self {
        UnetConfig {
            input: 64,
            enc: vec![128, 64],
            bottleneck: 32,
            emb: 16,
            sigma_min: 0.02,
            sigma_max: 10.0,
            sigma_data: 0.75,
        }
    }
}

impl UnetConfig {
    /// Check sizes and noise range.
    pub fn validate(&self) -> Result<(), String> {
        if self.input == 0 || self.bottleneck == 0 || self.emb < 2 {
            return Err("input and bottleneck must be > 0 and emb >= 2".into());
        }
        if self.enc.is_empty() || self.enc.contains(&0) {
            return Err("need at least one encoder level, all widths > 0".into());
        }
        let ok = |v: f32| v.is_finite() && v > 0.0;
        if !ok(self.sigma_min) || !ok(self.sigma_max) || !ok(self.sigma_data) {
            return Err("sigma_min, sigma_max, sigma_data must be finite and > 0".into());
        }
        if self.sigma_min >= self.sigma_max {
            return Err("sigma_min must be < sigma_max".into());
        }
        Ok(())
    }

    /// Number of encoder (= decoder) levels.
    pub fn levels(&self) -> usize {
        self.enc.len()
    }

    /// Input scaling `c_in(sigma) = 1 / sqrt(sigma_data^2 + sigma^2)`.
    pub fn c_in(&self, sigma: f32) -> f32 {
        1.0 / (self.sigma_data * self.sigma_data + sigma * sigma).sqrt()
    }

    /// Output skip weight `c_skip(sigma) = sd^2 / (sd^2 + sigma^2)`.
    pub fn c_skip(&self, sigma: f32) -> f32 {
        let sd2 = self.sigma_data * self.sigma_data;
        sd2 / (sd2 + sigma * sigma)
    }

    /// Output scale `c_out(sigma) = sigma sd / sqrt(sd^2 + sigma^2)`.
    pub fn c_out(&self, sigma: f32) -> f32 {
        sigma * self.sigma_data / (self.sigma_data * self.sigma_data + sigma * sigma).sqrt()
    }

    /// Noise-level embedding: `phi_j = exp(-((ln sigma - mu_j) / w)^2 / 2)` with `mu_j` evenly
    /// spaced from `ln sigma_min` to `ln sigma_max` (`j = 0..emb`) and `w` their spacing.
    pub fn embedding(&self, sigma: f32) -> Vec<f32> {
        let lo = (self.sigma_min as f64).ln();
        let hi = (self.sigma_max as f64).ln();
        let w = (hi - lo) / (self.emb - 1) as f64;
        let s = (sigma.max(1e-30) as f64).ln();
        (0..self.emb)
            .map(|j| {
                let z = (s - (lo + w * j as f64)) / w;
                (-0.5 * z * z).exp() as f32
            })
            .collect()
    }

    /// Names of the hidden modules in forward order: `enc0.., bottleneck, ..dec0`.
    pub fn module_names(&self) -> Vec<String> {
        let l = self.levels();
        let mut v: Vec<String> = (0..l).map(|i| format!("enc{i}")).collect();
        v.push("bottleneck".into());
        v.extend((0..l).rev().map(|i| format!("dec{i}")));
        v
    }

    /// Every tensor of the model with its shape `[out, in]` / `[out]`, in canonical order
    /// (the order of [`Unet::tensors`]).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let l = self.levels();
        let mut v = Vec::new();
        let push_linear = |v: &mut Vec<(String, Vec<usize>)>, name: &str, o: usize, i: usize| {
            v.push((format!("{name}.weight"), vec![o, i]));
            v.push((format!("{name}.bias"), vec![o]));
        };
        for k in 0..l {
            let inp = if k == 0 { self.input } else { self.enc[k - 1] };
            push_linear(&mut v, &format!("enc{k}"), self.enc[k], inp);
            v.push((format!("enc{k}_emb.weight"), vec![self.enc[k], self.emb]));
        }
        push_linear(&mut v, "bottleneck", self.bottleneck, self.enc[l - 1]);
        v.push((
            "bottleneck_emb.weight".into(),
            vec![self.bottleneck, self.emb],
        ));
        for k in (0..l).rev() {
            let inp = if k == l - 1 {
                self.bottleneck
            } else {
                self.enc[k + 1]
            };
            push_linear(&mut v, &format!("dec{k}"), self.enc[k], inp);
            v.push((format!("skip{k}.weight"), vec![self.enc[k], self.enc[k]]));
            v.push((format!("dec{k}_emb.weight"), vec![self.enc[k], self.emb]));
        }
        push_linear(&mut v, "out", self.input, self.enc[0]);
        v
    }

    /// Multiply-adds of one denoiser call ([`Unet::denoise`]): one per weight entry (every
    /// layer, skip block and noise-level table: each entry is used once per call) and three per
    /// pixel (`c_in x`, then `c_skip x + c_out F`). Bias adds, the ReLUs and the embedding's
    /// `emb` exponentials are not counted.
    pub fn macs_per_call(&self) -> usize {
        let weights: usize = self
            .tensor_shapes()
            .iter()
            .filter(|(_, s)| s.len() == 2)
            .map(|(_, s)| s[0] * s[1])
            .sum();
        weights + 3 * self.input
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// A dense layer `y = W x (+ b)`, `W` row-major `[out, in]` like `torch.nn.Linear`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Output width.
    pub n_out: usize,
    /// Input width.
    pub n_in: usize,
    /// Weights, row-major `[n_out, n_in]`.
    pub w: Vec<f32>,
    /// Bias `[n_out]`, or empty for a layer without bias.
    pub b: Vec<f32>,
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

impl Dense {
    fn zeros(n_out: usize, n_in: usize, bias: bool) -> Self {
        Dense {
            n_out,
            n_in,
            w: vec![0.0; n_out * n_in],
            b: if bias { vec![0.0; n_out] } else { vec![] },
        }
    }

    /// PyTorch-style init: weights and bias uniform in `±scale / sqrt(n_in)`.
    fn init(&mut self, rng: &mut Rng, scale: f64) {
        let a = scale / (self.n_in as f64).sqrt();
        for w in self.w.iter_mut().chain(self.b.iter_mut()) {
            *w = ((2.0 * rng.uniform() - 1.0) * a) as f32;
        }
    }

    /// `y = W x` (bias not included).
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        debug_assert_eq!(x.len(), self.n_in);
        self.w.chunks_exact(self.n_in).map(|r| dot(r, x)).collect()
    }

    /// Accumulate the gradients of `y = W x + b` given `g = dL/dy`: `grad.w += g x^T`,
    /// `grad.b += g`, and `g_in += W^T g` if asked.
    fn backward(&self, grad: &mut Dense, x: &[f32], g: &[f32], g_in: Option<&mut [f32]>) {
        for (o, &go) in g.iter().enumerate() {
            if go == 0.0 {
                continue;
            }
            axpy(go, x, &mut grad.w[o * self.n_in..(o + 1) * self.n_in]);
            if !grad.b.is_empty() {
                grad.b[o] += go;
            }
        }
        if let Some(g_in) = g_in {
            for (o, &go) in g.iter().enumerate() {
                if go != 0.0 {
                    axpy(go, &self.w[o * self.n_in..(o + 1) * self.n_in], g_in);
                }
            }
        }
    }
}

/// The activations of one hidden module for one input.
///
/// Pre-activation `= local + skip + cond`; `post = relu(pre)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerActivation {
    /// Module name (`enc0`, `enc1`, `bottleneck`, `dec1`, `dec0`).
    pub name: String,
    /// Contribution of the local input (`W_l` times the previous module's output).
    pub local: Vec<f32>,
    /// Contribution through the skip block (`S_l` times encoder level `l`'s output); decoders only.
    pub skip: Option<Vec<f32>>,
    /// Bias plus noise-level embedding term `b_l + E_l phi(sigma)`.
    pub cond: Vec<f32>,
    /// Post-activation output `relu(local + skip + cond)`.
    pub post: Vec<f32>,
}

impl LayerActivation {
    /// The full pre-activation `local + skip + cond`.
    pub fn pre(&self) -> Vec<f32> {
        let mut p: Vec<f32> = self
            .local
            .iter()
            .zip(&self.cond)
            .map(|(a, b)| a + b)
            .collect();
        if let Some(s) = &self.skip {
            for (pi, si) in p.iter_mut().zip(s) {
                *pi += si;
            }
        }
        p
    }
}

/// All intermediate values of one forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Activations {
    /// Noise level of this pass.
    pub sigma: f32,
    /// Scaled network input `c_in(sigma) x`.
    pub input: Vec<f32>,
    /// Noise-level embedding `phi(sigma)`.
    pub embedding: Vec<f32>,
    /// Hidden modules in forward order (`enc0, enc1, bottleneck, dec1, dec0`).
    pub layers: Vec<LayerActivation>,
    /// Raw network output `F` (see the module docs; the denoised image is
    /// `c_skip x + c_out F`).
    pub output: Vec<f32>,
}

impl Activations {
    /// Post-activation vector of a module by name.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.layer(name).map(|l| l.post.as_slice())
    }
    /// A module's full record by name.
    pub fn layer(&self, name: &str) -> Option<&LayerActivation> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// The denoising U-Net. Fields are the layers; `enc[l]`, `dec[l]` and `skip[l]` are indexed by
/// level (`dec[l]` and `skip[l]` belong to decoder level `l`).
#[derive(Clone, Debug, PartialEq)]
pub struct Unet {
    /// Architecture.
    pub config: UnetConfig,
    /// Encoder layers `enc{l}` (with bias).
    pub enc: Vec<Dense>,
    /// Encoder noise embeddings `enc{l}_emb` (no bias).
    pub enc_emb: Vec<Dense>,
    /// Bottleneck layer.
    pub bottleneck: Dense,
    /// Bottleneck noise embedding.
    pub bottleneck_emb: Dense,
    /// Decoder local layers `dec{l}` (input from the level below; with bias).
    pub dec: Vec<Dense>,
    /// Dense skip blocks `skip{l}`: encoder level `l` -> decoder level `l` (no bias).
    pub skip: Vec<Dense>,
    /// Decoder noise embeddings `dec{l}_emb` (no bias).
    pub dec_emb: Vec<Dense>,
    /// Output layer `out` (raw network output `F`).
    pub out: Dense,
}

impl Unet {
    /// A model with all parameters zero (also used as a gradient buffer).
    pub fn zeros(config: &UnetConfig) -> Self {
        let l = config.levels();
        let e = &config.enc;
        let enc = (0..l)
            .map(|k| Dense::zeros(e[k], if k == 0 { config.input } else { e[k - 1] }, true))
            .collect();
        let enc_emb = (0..l)
            .map(|k| Dense::zeros(e[k], config.emb, false))
            .collect();
        let dec = (0..l)
            .map(|k| {
                let inp = if k == l - 1 {
                    config.bottleneck
                } else {
                    e[k + 1]
                };
                Dense::zeros(e[k], inp, true)
            })
            .collect();
        let skip = (0..l).map(|k| Dense::zeros(e[k], e[k], false)).collect();
        let dec_emb = (0..l)
            .map(|k| Dense::zeros(e[k], config.emb, false))
            .collect();
        Unet {
            config: config.clone(),
            enc,
            enc_emb,
            bottleneck: Dense::zeros(config.bottleneck, e[l - 1], true),
            bottleneck_emb: Dense::zeros(config.bottleneck, config.emb, false),
            dec,
            skip,
            dec_emb,
            out: Dense::zeros(config.input, e[0], true),
        }
    }

    /// A freshly initialised model (PyTorch-like uniform init, seeded).
    pub fn new(config: &UnetConfig, seed: u64) -> Result<Self, String> {
        config.validate()?;
        let mut m = Unet::zeros(config);
        let mut rng = Rng::stream(seed, 0x1417);
        for d in m.enc.iter_mut() {
            d.init(&mut rng, 1.0);
        }
        for d in m.enc_emb.iter_mut() {
            d.init(&mut rng, 1.0);
        }
        m.bottleneck.init(&mut rng, 1.0);
        m.bottleneck_emb.init(&mut rng, 1.0);
        for d in m.dec.iter_mut() {
            d.init(&mut rng, 1.0);
        }
        for d in m.skip.iter_mut() {
            d.init(&mut rng, 1.0);
        }
        for d in m.dec_emb.iter_mut() {
            d.init(&mut rng, 1.0);
        }
        m.out.init(&mut rng, 1.0);
        Ok(m)
    }

    /// All tensors in canonical order with their state-dict names (same order as
    /// [`UnetConfig::tensor_shapes`]).
    pub fn tensors(&self) -> Vec<(String, &[f32])> {
        let l = self.config.levels();
        let mut v: Vec<(String, &[f32])> = Vec::new();
        for k in 0..l {
            v.push((format!("enc{k}.weight"), &self.enc[k].w));
            v.push((format!("enc{k}.bias"), &self.enc[k].b));
            v.push((format!("enc{k}_emb.weight"), &self.enc_emb[k].w));
        }
        v.push(("bottleneck.weight".into(), &self.bottleneck.w));
        v.push(("bottleneck.bias".into(), &self.bottleneck.b));
        v.push(("bottleneck_emb.weight".into(), &self.bottleneck_emb.w));
        for k in (0..l).rev() {
            v.push((format!("dec{k}.weight"), &self.dec[k].w));
            v.push((format!("dec{k}.bias"), &self.dec[k].b));
            v.push((format!("skip{k}.weight"), &self.skip[k].w));
            v.push((format!("dec{k}_emb.weight"), &self.dec_emb[k].w));
        }
        v.push(("out.weight".into(), &self.out.w));
        v.push(("out.bias".into(), &self.out.b));
        v
    }

    /// Mutable tensors in canonical order (same order as [`Unet::tensors`]).
    pub fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let l = self.config.levels();
        let mut v: Vec<&mut Vec<f32>> = Vec::new();
        let Unet {
            enc,
            enc_emb,
            bottleneck,
            bottleneck_emb,
            dec,
            skip,
            dec_emb,
            out,
            ..
        } = self;
        for ((e, ee), _) in enc.iter_mut().zip(enc_emb.iter_mut()).zip(0..l) {
            v.push(&mut e.w);
            v.push(&mut e.b);
            v.push(&mut ee.w);
        }
        v.push(&mut bottleneck.w);
        v.push(&mut bottleneck.b);
        v.push(&mut bottleneck_emb.w);
        for ((d, s), de) in dec
            .iter_mut()
            .zip(skip.iter_mut())
            .zip(dec_emb.iter_mut())
            .rev()
        {
            v.push(&mut d.w);
            v.push(&mut d.b);
            v.push(&mut s.w);
            v.push(&mut de.w);
        }
        v.push(&mut out.w);
        v.push(&mut out.b);
        v
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.config.param_count()
    }

    /// Skip block of decoder level `l` (`skip{l}.weight`, `[n_dec, n_enc]`), if it exists.
    pub fn skip_block(&self, level: usize) -> Option<&Dense> {
        self.skip.get(level)
    }

    fn cond(layer: &Dense, emb: &Dense, phi: &[f32]) -> Vec<f32> {
        let mut c = emb.apply(phi);
        for (ci, bi) in c.iter_mut().zip(&layer.b) {
            *ci += bi;
        }
        c
    }

    fn module(
        name: String,
        local: Vec<f32>,
        skip: Option<Vec<f32>>,
        cond: Vec<f32>,
    ) -> LayerActivation {
        let mut post: Vec<f32> = local.iter().zip(&cond).map(|(a, b)| a + b).collect();
        if let Some(s) = &skip {
            for (p, si) in post.iter_mut().zip(s) {
                *p += si;
            }
        }
        for p in post.iter_mut() {
            *p = p.max(0.0);
        }
        LayerActivation {
            name,
            local,
            skip,
            cond,
            post,
        }
    }

    /// Forward pass on one noisy image `x` (64 values, data range [-1, 1] plus noise) at noise
    /// level `sigma`. Returns the raw network output `F` and all activations (see
    /// [`Unet::denoise`] for the denoised image).
    ///
    /// Panics if `x.len() != config.input` (a programming error, not a data error).
    pub fn forward(&self, x: &[f32], sigma: f32) -> (Vec<f32>, Activations) {
        assert_eq!(x.len(), self.config.input, "input width");
        let l = self.config.levels();
        let c_in = self.config.c_in(sigma);
        let input: Vec<f32> = x.iter().map(|v| v * c_in).collect();
        let phi = self.config.embedding(sigma);
        let mut layers: Vec<LayerActivation> = Vec::with_capacity(2 * l + 1);
        for k in 0..l {
            let prev = if k == 0 { &input } else { &layers[k - 1].post };
            let local = self.enc[k].apply(prev);
            let cond = Self::cond(&self.enc[k], &self.enc_emb[k], &phi);
            layers.push(Self::module(format!("enc{k}"), local, None, cond));
        }
        let local = self.bottleneck.apply(&layers[l - 1].post);
        let cond = Self::cond(&self.bottleneck, &self.bottleneck_emb, &phi);
        layers.push(Self::module("bottleneck".into(), local, None, cond));
        for k in (0..l).rev() {
            let prev = &layers[layers.len() - 1].post;
            let local = self.dec[k].apply(prev);
            let skip = self.skip[k].apply(&layers[k].post);
            let cond = Self::cond(&self.dec[k], &self.dec_emb[k], &phi);
            layers.push(Self::module(format!("dec{k}"), local, Some(skip), cond));
        }
        let last = &layers[layers.len() - 1].post;
        let mut output = self.out.apply(last);
        for (o, b) in output.iter_mut().zip(&self.out.b) {
            *o += b;
        }
        let acts = Activations {
            sigma,
            input,
            embedding: phi,
            layers,
            output: output.clone(),
        };
        (output, acts)
    }

    /// The denoised estimate `x0_hat = c_skip x + c_out F(x, sigma)`.
    pub fn denoise(&self, x: &[f32], sigma: f32) -> Vec<f32> {
        let (f, _) = self.forward(x, sigma);
        let (cs, co) = (self.config.c_skip(sigma), self.config.c_out(sigma));
        x.iter().zip(&f).map(|(xi, fi)| cs * xi + co * fi).collect()
    }

    /// The network's training target `(x0 - c_skip x) / c_out` for clean `x0` and noisy `x`.
    pub fn target(&self, x0: &[f32], x: &[f32], sigma: f32) -> Vec<f32> {
        let (cs, co) = (self.config.c_skip(sigma), self.config.c_out(sigma));
        x0.iter().zip(x).map(|(a, b)| (a - cs * b) / co).collect()
    }

    /// Back-propagate `g_out = dL/d(output)` through the pass recorded in `acts`, accumulating
    /// parameter gradients into `grad` (a [`Unet::zeros`] of the same config). Returns
    /// `dL/dx` with respect to the unscaled input `x`.
    pub fn backward(&self, acts: &Activations, g_out: &[f32], grad: &mut Unet) -> Vec<f32> {
        let l = self.config.levels();
        let phi = &acts.embedding;
        let n_layers = acts.layers.len();
        // gradient w.r.t. each module's post-activation
        let mut g_post: Vec<Vec<f32>> = acts
            .layers
            .iter()
            .map(|a| vec![0.0; a.post.len()])
            .collect();
        let last = n_layers - 1;
        self.out.backward(
            &mut grad.out,
            &acts.layers[last].post,
            g_out,
            Some(&mut g_post[last]),
        );
        let relu_mask = |g: &[f32], post: &[f32]| -> Vec<f32> {
            g.iter()
                .zip(post)
                .map(|(gi, p)| if *p > 0.0 { *gi } else { 0.0 })
                .collect()
        };
        // decoders: layer index l+1+(l-1-k) = 2l - k for level k
        for k in 0..l {
            let idx = 2 * l - k;
            let g = relu_mask(&g_post[idx], &acts.layers[idx].post);
            let (lo, hi) = g_post.split_at_mut(idx);
            let _ = hi;
            let below = idx - 1;
            self.dec[k].backward(
                &mut grad.dec[k],
                &acts.layers[below].post,
                &g,
                Some(&mut lo[below]),
            );
            self.skip[k].backward(
                &mut grad.skip[k],
                &acts.layers[k].post,
                &g,
                Some(&mut lo[k]),
            );
            self.dec_emb[k].backward(&mut grad.dec_emb[k], phi, &g, None);
        }
        // bottleneck
        let g = relu_mask(&g_post[l], &acts.layers[l].post);
        {
            let (lo, _) = g_post.split_at_mut(l);
            self.bottleneck.backward(
                &mut grad.bottleneck,
                &acts.layers[l - 1].post,
                &g,
                Some(&mut lo[l - 1]),
            );
        }
        self.bottleneck_emb
            .backward(&mut grad.bottleneck_emb, phi, &g, None);
        // encoders
        let mut g_input = vec![0.0f32; self.config.input];
        for k in (0..l).rev() {
            let g = relu_mask(&g_post[k], &acts.layers[k].post);
            if k == 0 {
                self.enc[0].backward(&mut grad.enc[0], &acts.input, &g, Some(&mut g_input));
            } else {
                let (lo, _) = g_post.split_at_mut(k);
                self.enc[k].backward(
                    &mut grad.enc[k],
                    &acts.layers[k - 1].post,
                    &g,
                    Some(&mut lo[k - 1]),
                );
            }
            self.enc_emb[k].backward(&mut grad.enc_emb[k], phi, &g, None);
        }
        let c_in = self.config.c_in(acts.sigma);
        g_input.iter_mut().for_each(|g| *g *= c_in);
        g_input
    }
}
