//! Training the denoiser (EDM-preconditioned output, see [`crate::unet`]; Adam, EMA of weights) and measuring its loss per
//! noise level. Everything is seeded; the same seed gives the same weights bit for bit on the
//! same platform (single-threaded, fixed summation order).

use crate::data::{Digits, Split, PIXELS};
use crate::rng::Rng;
use crate::unet::{Unet, UnetConfig};
use serde::{Deserialize, Serialize};

/// How training noise levels are drawn.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum SigmaSampling {
    /// `ln sigma` uniform on `[ln sigma_min, ln sigma_max]`.
    LogUniform,
    /// `ln sigma ~ N(p_mean, p_std^2)` (Karras et al. 2022), clamped to `[sigma_min, sigma_max]`.
    LogNormal {
        /// Mean of `ln sigma`.
        p_mean: f32,
        /// Standard deviation of `ln sigma`.
        p_std: f32,
    },
}

/// Training hyper-parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed of initialisation, batching and noise.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Peak Adam learning rate (cosine-decayed to `lr_final_frac * lr`).
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    pub lr_final_frac: f32,
    /// Adam beta1.
    pub beta1: f32,
    /// Adam beta2.
    pub beta2: f32,
    /// Adam epsilon.
    pub adam_eps: f32,
    /// Decay of the exponential moving average of the weights (the saved model is the EMA).
    pub ema_decay: f32,
    /// Noise draws per training image per epoch.
    pub draws_per_epoch: usize,
    /// Distribution of training noise levels.
    pub sigma_sampling: SigmaSampling,
    /// If set, the skip blocks are kept at this rank: after every Adam step each skip block
    /// is replaced by its truncated SVD (projected gradient descent), and the saved EMA weights
    /// are projected the same way. A rank-k bus then represents the skips exactly.
    #[serde(default)]
    pub skip_rank: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            epochs: 1000,
            batch: 64,
            lr: 2e-3,
            lr_final_frac: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            ema_decay: 0.999,
            draws_per_epoch: 1,
            sigma_sampling: SigmaSampling::LogNormal {
                p_mean: -0.6,
                p_std: 1.2,
            },
            skip_rank: None,
        }
    }
}

/// Denoising loss at one noise level.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SigmaLoss {
    /// Noise level.
    pub sigma: f32,
    /// Training objective: mean squared error of the network output against its target
    /// `(x0 - c_skip x) / c_out`, per pixel.
    pub loss: f64,
    /// Mean squared error of the denoised image `x0_hat` against the clean image, per pixel
    /// (data range [-1, 1]); equals `c_out^2 * loss`.
    pub x0_mse: f64,
    /// The same error expressed as noise prediction, `x0_mse / sigma^2`.
    pub eps_mse: f64,
}

/// Noise levels at which losses are reported.
pub const REPORT_SIGMAS: [f32; 10] = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0];

/// Per-noise-level losses of `model` on images `x0` (flattened `[n, 64]`), with `draws` noise
/// draws per image from `Rng::new(seed)`.
pub fn eval_losses(
    model: &Unet,
    x0: &[f32],
    sigmas: &[f32],
    draws: usize,
    seed: u64,
) -> Vec<SigmaLoss> {
    let n = x0.len() / PIXELS;
    sigmas
        .iter()
        .enumerate()
        .map(|(si, &sigma)| {
            let mut rng = Rng::stream(seed, 1000 + si as u64);
            let mut se = 0.0f64;
            let mut count = 0usize;
            let mut x = vec![0f32; PIXELS];
            let mut eps = vec![0f32; PIXELS];
            for _ in 0..draws {
                for i in 0..n {
                    let img = &x0[i * PIXELS..(i + 1) * PIXELS];
                    for p in 0..PIXELS {
                        eps[p] = rng.normal() as f32;
                        x[p] = img[p] + sigma * eps[p];
                    }
                    let x0h = model.denoise(&x, sigma);
                    for p in 0..PIXELS {
                        let d = (x0h[p] - img[p]) as f64;
                        se += d * d;
                    }
                    count += PIXELS;
                }
            }
            let x0_mse = se / count.max(1) as f64;
            let co = model.config.c_out(sigma) as f64;
            SigmaLoss {
                sigma,
                loss: x0_mse / (co * co),
                x0_mse,
                eps_mse: x0_mse / (sigma as f64 * sigma as f64),
            }
        })
        .collect()
}

/// The outcome of a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    /// Architecture.
    pub unet: UnetConfig,
    /// Parameter count.
    pub params: usize,
    /// Hyper-parameters.
    pub train: TrainConfig,
    /// Split seed and sizes.
    pub split_seed: u64,
    /// Test fraction of the split.
    pub test_fraction: f64,
    /// Number of training images.
    pub n_train: usize,
    /// Number of test images.
    pub n_test: usize,
    /// Mean training loss (objective MSE, per pixel) per epoch.
    pub epoch_loss: Vec<f64>,
    /// Wall-clock training time in seconds (not reproducible; everything else is).
    pub train_seconds: f64,
    /// Losses of the saved (EMA) model per noise level on the training images.
    pub train_losses: Vec<SigmaLoss>,
    /// Losses of the saved (EMA) model per noise level on the test images.
    pub test_losses: Vec<SigmaLoss>,
    /// Noise draws per image in the per-level evaluation.
    pub eval_draws: usize,
    /// Seed of the per-level evaluation noise.
    pub eval_seed: u64,
}

/// Adam state: first and second moments, one buffer per tensor.
struct Adam {
    m: Unet,
    v: Unet,
    t: i32,
}

/// Train a fresh model on `data[split.train]`; `progress(epoch, loss)` is called after every
/// epoch. Returns the EMA model and the mean training loss per epoch.
pub fn train(
    config: &UnetConfig,
    tc: &TrainConfig,
    data: &Digits,
    split: &Split,
    mut progress: impl FnMut(usize, f64),
) -> Result<(Unet, Vec<f64>), String> {
    if tc.batch == 0 || tc.epochs == 0 || tc.draws_per_epoch == 0 {
        return Err("batch, epochs and draws_per_epoch must be > 0".into());
    }
    if split.train.is_empty() {
        return Err("empty training set".into());
    }
    let mut model = Unet::new(config, tc.seed)?;
    let mut ema = model.clone();
    let mut grad = Unet::zeros(config);
    let mut adam = Adam {
        m: Unet::zeros(config),
        v: Unet::zeros(config),
        t: 0,
    };
    let x0 = data.unit_matrix(&split.train);
    let n = split.train.len();
    let mut rng = Rng::stream(tc.seed, 0x7a41);
    let (ls_min, ls_max) = (
        (config.sigma_min as f64).ln(),
        (config.sigma_max as f64).ln(),
    );
    let steps_per_epoch = (n * tc.draws_per_epoch).div_ceil(tc.batch);
    let total_steps = (steps_per_epoch * tc.epochs) as f64;
    let mut epoch_loss = Vec::with_capacity(tc.epochs);
    let mut x = vec![0f32; PIXELS];
    let mut eps = vec![0f32; PIXELS];
    let mut g_out = vec![0f32; PIXELS];
    let mut order: Vec<usize> = Vec::with_capacity(n * tc.draws_per_epoch);
    for epoch in 0..tc.epochs {
        order.clear();
        for _ in 0..tc.draws_per_epoch {
            order.extend(0..n);
        }
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(tc.batch) {
            for t in grad.tensors_mut() {
                t.iter_mut().for_each(|g| *g = 0.0);
            }
            let scale = 2.0 / (batch.len() * PIXELS) as f32;
            for &i in batch {
                let ls = match tc.sigma_sampling {
                    SigmaSampling::LogUniform => ls_min + (ls_max - ls_min) * rng.uniform(),
                    SigmaSampling::LogNormal { p_mean, p_std } => {
                        (p_mean as f64 + p_std as f64 * rng.normal()).clamp(ls_min, ls_max)
                    }
                };
                let sigma = ls.exp() as f32;
                let img = &x0[i * PIXELS..(i + 1) * PIXELS];
                for p in 0..PIXELS {
                    eps[p] = rng.normal() as f32;
                    x[p] = img[p] + sigma * eps[p];
                }
                let (out, acts) = model.forward(&x, sigma);
                let (cs, co) = (config.c_skip(sigma), config.c_out(sigma));
                for p in 0..PIXELS {
                    let d = out[p] - (img[p] - cs * x[p]) / co;
                    loss_sum += (d * d) as f64;
                    g_out[p] = scale * d;
                }
                model.backward(&acts, &g_out, &mut grad);
            }
            // Adam step with cosine-decayed learning rate.
            adam.t += 1;
            let progress_frac = (adam.t - 1) as f64 / total_steps;
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress_frac).cos());
            let lr =
                tc.lr as f64 * (tc.lr_final_frac as f64 + (1.0 - tc.lr_final_frac as f64) * cos);
            let bc1 = 1.0 - (tc.beta1 as f64).powi(adam.t);
            let bc2 = 1.0 - (tc.beta2 as f64).powi(adam.t);
            let step = (lr / bc1) as f32;
            let inv_bc2 = (1.0 / bc2) as f32;
            let decay = tc.ema_decay.min((1 + adam.t) as f32 / (10 + adam.t) as f32);
            let (b1, b2, ae) = (tc.beta1, tc.beta2, tc.adam_eps);
            for (((p, g), m), v) in model
                .tensors_mut()
                .into_iter()
                .zip(grad.tensors_mut())
                .zip(adam.m.tensors_mut())
                .zip(adam.v.tensors_mut())
            {
                for k in 0..p.len() {
                    let gk = g[k];
                    m[k] = b1 * m[k] + (1.0 - b1) * gk;
                    v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
                    p[k] -= step * m[k] / ((v[k] * inv_bc2).sqrt() + ae);
                }
            }
            if let Some(k) = tc.skip_rank {
                project_skips(&mut model, k)?;
            }
            for (p, e) in model.tensors_mut().into_iter().zip(ema.tensors_mut()) {
                for (ek, pk) in e.iter_mut().zip(p.iter()) {
                    *ek = decay * *ek + (1.0 - decay) * *pk;
                }
            }
        }
        let l = loss_sum / (order.len() * PIXELS) as f64;
        epoch_loss.push(l);
        progress(epoch, l);
    }
    if let Some(k) = tc.skip_rank {
        project_skips(&mut ema, k)?;
    }
    Ok((ema, epoch_loss))
}

/// Replace every skip block of `model` by its best rank-`k` approximation (truncated SVD).
pub fn project_skips(model: &mut Unet, k: usize) -> Result<(), String> {
    for level in 0..model.config.levels() {
        let w = crate::gram::skip_matrix(model, level).ok_or("skip block")?;
        if k >= w.nrows().min(w.ncols()) {
            continue;
        }
        let m = crate::gram::plain_svd(&w, k)?.matrix();
        let d = &mut model.skip[level];
        for r in 0..d.n_out {
            for c in 0..d.n_in {
                d.w[r * d.n_in + c] = m[(r, c)] as f32;
            }
        }
    }
    Ok(())
}
