//! The ordinary digital reverse process with the trained denoiser, and PNG grids.
//!
//! Samplers ([`Sampler`]): Euler ancestral steps of the variance-exploding SDE (the DDPM ancestral sampler in
//! sigma parametrisation) on the Karras et al. schedule
//! `sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho`, `rho = 7`, followed by
//! a final denoising step to `sigma = 0`. At each step the denoised estimate is clipped to the
//! data range [-1, 1] (as in DDPM's sampler). Alternatively the deterministic second-order
//! Heun integrator of the probability-flow ODE (Karras et al. 2022, Algorithm 1) on the same
//! schedule.

use crate::data::{PIXELS, SIDE};
use crate::error::{DiffusionError, Result};
use crate::rng::Rng;
use crate::unet::Unet;
use std::path::Path;

/// The Karras noise schedule with `n` levels from `smax` down to `smin`, then 0.
pub fn karras_sigmas(n: usize, smin: f32, smax: f32, rho: f32) -> Vec<f32> {
    let (a, b) = (smax.powf(1.0 / rho), smin.powf(1.0 / rho));
    let mut v: Vec<f32> = (0..n)
        .map(|i| {
            let t = if n > 1 {
                i as f32 / (n - 1) as f32
            } else {
                0.0
            };
            (a + t * (b - a)).powf(rho)
        })
        .collect();
    v.push(0.0);
    v
}

fn clipped_denoise(model: &Unet, x: &[f32], sigma: f32) -> Vec<f32> {
    model
        .denoise(x, sigma)
        .into_iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect()
}

/// Reverse-process integrators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// Euler ancestral (stochastic; DDPM ancestral sampling in sigma form).
    EulerAncestral,
    /// Heun's second-order method on the probability-flow ODE (deterministic given the start).
    Heun,
}

impl std::str::FromStr for Sampler {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ancestral" | "euler-ancestral" => Ok(Sampler::EulerAncestral),
            "heun" => Ok(Sampler::Heun),
            other => Err(format!("unknown sampler `{other}` (ancestral, heun)")),
        }
    }
}

/// Draw `n` samples with `steps` Euler-ancestral steps, seeded. Images in [-1, 1].
pub fn sample(model: &Unet, n: usize, steps: usize, seed: u64) -> Vec<Vec<f32>> {
    sample_with(model, Sampler::EulerAncestral, n, steps, seed)
}

/// Draw `n` samples with the given sampler and number of noise levels, seeded.
pub fn sample_with(
    model: &Unet,
    sampler: Sampler,
    n: usize,
    steps: usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    match sampler {
        Sampler::EulerAncestral => sample_ancestral(model, n, steps, seed),
        Sampler::Heun => sample_heun(model, n, steps, seed),
    }
}

fn sample_heun(model: &Unet, n: usize, steps: usize, seed: u64) -> Vec<Vec<f32>> {
    let c = &model.config;
    let sigmas = karras_sigmas(steps.max(1), c.sigma_min, c.sigma_max, 7.0);
    let mut rng = Rng::stream(seed, 0x5a3b);
    (0..n)
        .map(|_| {
            let mut x: Vec<f32> = (0..PIXELS)
                .map(|_| sigmas[0] * rng.normal() as f32)
                .collect();
            for w in sigmas.windows(2) {
                let (s, s_next) = (w[0], w[1]);
                let x0 = clipped_denoise(model, &x, s);
                if s_next == 0.0 {
                    x = x0;
                    break;
                }
                let d: Vec<f32> = x.iter().zip(&x0).map(|(a, b)| (a - b) / s).collect();
                let xp: Vec<f32> = x
                    .iter()
                    .zip(&d)
                    .map(|(a, di)| a + (s_next - s) * di)
                    .collect();
                let x0p = clipped_denoise(model, &xp, s_next);
                for p in 0..PIXELS {
                    let dp = (xp[p] - x0p[p]) / s_next;
                    x[p] += (s_next - s) * 0.5 * (d[p] + dp);
                }
            }
            x
        })
        .collect()
}

fn sample_ancestral(model: &Unet, n: usize, steps: usize, seed: u64) -> Vec<Vec<f32>> {
    let c = &model.config;
    let sigmas = karras_sigmas(steps.max(1), c.sigma_min, c.sigma_max, 7.0);
    let mut rng = Rng::stream(seed, 0x5a3b);
    (0..n)
        .map(|_| {
            let mut x: Vec<f32> = (0..PIXELS)
                .map(|_| sigmas[0] * rng.normal() as f32)
                .collect();
            for w in sigmas.windows(2) {
                let (s, s_next) = (w[0], w[1]);
                let x0 = clipped_denoise(model, &x, s);
                if s_next == 0.0 {
                    x = x0;
                    break;
                }
                let s_up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
                let s_down = (s_next * s_next - s_up * s_up).max(0.0).sqrt();
                for p in 0..PIXELS {
                    let d = (x[p] - x0[p]) / s;
                    x[p] += d * (s_down - s) + s_up * rng.normal() as f32;
                }
            }
            x
        })
        .collect()
}

/// Euler ancestral sampling (the same schedule and update as [`sample`]) with a batch denoiser:
/// `denoise(step, images, sigma)` returns the denoised estimate of every current image at noise
/// level `sigma` (one call per level, so a board can have the whole batch in flight). Sample `s`
/// draws its noise from its own stream, so any denoiser sees the same starting points; the
/// estimates are clipped to [-1, 1] here.
pub fn sample_ancestral_batch(
    config: &crate::UnetConfig,
    n: usize,
    steps: usize,
    seed: u64,
    mut denoise: impl FnMut(usize, &[Vec<f32>], f32) -> std::result::Result<Vec<Vec<f32>>, String>,
) -> std::result::Result<Vec<Vec<f32>>, String> {
    let sigmas = karras_sigmas(steps.max(1), config.sigma_min, config.sigma_max, 7.0);
    let mut rngs: Vec<Rng> = (0..n)
        .map(|s| Rng::stream(seed, 0x5a3c_0000 + s as u64))
        .collect();
    let mut xs: Vec<Vec<f32>> = rngs
        .iter_mut()
        .map(|r| (0..PIXELS).map(|_| sigmas[0] * r.normal() as f32).collect())
        .collect();
    for (step, w) in sigmas.windows(2).enumerate() {
        let (s, s_next) = (w[0], w[1]);
        let x0s = denoise(step, &xs, s)?;
        if x0s.len() != n || x0s.iter().any(|v| v.len() != PIXELS) {
            return Err(format!(
                "denoiser returned {} images for {n} at step {step}",
                x0s.len()
            ));
        }
        if s_next == 0.0 {
            return Ok(x0s
                .into_iter()
                .map(|v| v.into_iter().map(|p| p.clamp(-1.0, 1.0)).collect())
                .collect());
        }
        let s_up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
        let s_down = (s_next * s_next - s_up * s_up).max(0.0).sqrt();
        for ((x, x0), r) in xs.iter_mut().zip(&x0s).zip(rngs.iter_mut()) {
            for p in 0..PIXELS {
                let d = (x[p] - x0[p].clamp(-1.0, 1.0)) / s;
                x[p] += d * (s_down - s) + s_up * r.normal() as f32;
            }
        }
    }
    Ok(xs)
}

/// Write 8x8 images (values in [-1, 1]; ink dark on white) as a grayscale PNG grid with `cols`
/// columns, each pixel upscaled to a `scale` x `scale` block, 1-block gaps between images.
pub fn write_png_grid(images: &[Vec<f32>], cols: usize, scale: usize, path: &Path) -> Result<()> {
    if images.is_empty() || cols == 0 || scale == 0 {
        return Err(DiffusionError::Invalid("empty image grid".into()));
    }
    let rows = images.len().div_ceil(cols);
    let cell = (SIDE + 1) * scale;
    let (w, h) = (cols * cell + scale, rows * cell + scale);
    let mut buf = vec![200u8; w * h];
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        for py in 0..SIDE {
            for px in 0..SIDE {
                let v = img.get(py * SIDE + px).copied().unwrap_or(-1.0);
                let ink = ((v.clamp(-1.0, 1.0) + 1.0) * 0.5 * 255.0).round() as u8;
                let g = 255 - ink;
                for dy in 0..scale {
                    for dx in 0..scale {
                        let y = r * cell + scale + py * scale + dy;
                        let x = c * cell + scale + px * scale + dx;
                        buf[y * w + x] = g;
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path).map_err(|e| DiffusionError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| DiffusionError::Png(e.to_string()))?;
    writer
        .write_image_data(&buf)
        .map_err(|e| DiffusionError::Png(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| DiffusionError::Png(e.to_string()))
}
