//! Diffusion application commands (`thermo train-unet`, ...): owned by the U-Net work (issue 6).

use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thermo_diffusion::data::{self, Digits, Split};
use thermo_diffusion::train::{self, SigmaSampling, TrainConfig, TrainReport, REPORT_SIGMAS};
use thermo_diffusion::{io, sample, UnetConfig};

/// Diffusion application commands.
#[derive(Subcommand)]
pub enum DiffusionCommand {
    /// Train the denoising U-Net on the 8x8 digits; write safetensors, a JSON report and
    /// optionally a PNG grid of samples.
    TrainUnet(TrainUnetArgs),
    /// Draw samples from a trained U-Net with the digital reverse process; write a PNG grid.
    SampleUnet(SampleUnetArgs),
}

/// Arguments of `thermo sample-unet`.
#[derive(Args)]
pub struct SampleUnetArgs {
    /// Model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Output PNG grid.
    #[arg(long)]
    png: PathBuf,
    /// Sampler: `ancestral` (Euler ancestral) or `heun` (deterministic probability-flow ODE).
    #[arg(long, default_value = "ancestral")]
    sampler: String,
    /// Number of samples (8 per row).
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Noise levels of the schedule.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Arguments of `thermo train-unet`.
#[derive(Args)]
pub struct TrainUnetArgs {
    /// Output model file (safetensors); the JSON report is written next to it (`.json`).
    #[arg(long)]
    out: PathBuf,
    /// Training seed (initialisation, batches, noise).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f32,
    /// Training noise levels: `lognormal` (ln sigma ~ N(p_mean, p_std^2)) or `loguniform`.
    #[arg(long, default_value = "lognormal")]
    sigma_sampling: String,
    /// Mean of ln sigma for `--sigma-sampling lognormal`.
    #[arg(long, default_value_t = -0.6)]
    p_mean: f32,
    /// Standard deviation of ln sigma for `--sigma-sampling lognormal`.
    #[arg(long, default_value_t = 1.2)]
    p_std: f32,
    /// Hidden widths `ENC0,ENC1,...,BOTTLENECK` (default 128,64,32).
    #[arg(long)]
    widths: Option<String>,
    /// Write a PNG grid of real test images (same layout as the samples) for comparison.
    #[arg(long)]
    data_png: Option<PathBuf>,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the train/test split.
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Write a PNG grid of samples from the digital reverse process.
    #[arg(long)]
    samples_png: Option<PathBuf>,
    /// Number of samples in the grid.
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Reverse-process steps.
    #[arg(long, default_value_t = 60)]
    sample_steps: usize,
    /// Noise draws per image in the per-level loss evaluation.
    #[arg(long, default_value_t = 4)]
    eval_draws: usize,
}

/// Run a diffusion command.
pub fn run(c: DiffusionCommand) -> Result<(), String> {
    match c {
        DiffusionCommand::TrainUnet(a) => train_unet(a),
        DiffusionCommand::SampleUnet(a) => sample_unet(a),
    }
}

fn sample_unet(a: SampleUnetArgs) -> Result<(), String> {
    let model = io::load(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let sampler: sample::Sampler = a.sampler.parse()?;
    let t = Instant::now();
    let imgs = sample::sample_with(&model, sampler, a.samples, a.steps, a.seed);
    sample::write_png_grid(&imgs, 8, 6, &a.png).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} samples, {:?}, {} noise levels, seed {}, {:.2} s)",
        a.png.display(),
        a.samples,
        sampler,
        a.steps,
        a.seed,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn report_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

fn train_unet(a: TrainUnetArgs) -> Result<(), String> {
    let data_path = a.data.clone().unwrap_or_else(data::default_data_path);
    let digits = Digits::load(&data_path).map_err(|e| e.to_string())?;
    let split = Split::new(digits.len(), data::DEFAULT_TEST_FRACTION, a.split_seed)
        .map_err(|e| e.to_string())?;
    let mut config = UnetConfig::default();
    if let Some(w) = &a.widths {
        let v: Vec<usize> = w
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--widths `{w}`: {e}"))?;
        if v.len() < 2 {
            return Err(format!(
                "--widths `{w}`: need at least one encoder width and the bottleneck"
            ));
        }
        config.bottleneck = v[v.len() - 1];
        config.enc = v[..v.len() - 1].to_vec();
        config
            .validate()
            .map_err(|e| format!("--widths `{w}`: {e}"))?;
    }
    let sigma_sampling = match a.sigma_sampling.as_str() {
        "lognormal" => SigmaSampling::LogNormal {
            p_mean: a.p_mean,
            p_std: a.p_std,
        },
        "loguniform" => SigmaSampling::LogUniform,
        other => {
            return Err(format!(
                "--sigma-sampling `{other}`: expected lognormal or loguniform"
            ))
        }
    };
    let tc = TrainConfig {
        seed: a.seed,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        sigma_sampling,
        ..TrainConfig::default()
    };
    println!(
        "data: {} images from {} ({} train / {} test, split seed {})",
        digits.len(),
        data_path.display(),
        split.train.len(),
        split.test.len(),
        a.split_seed
    );
    println!(
        "model: enc {:?}, bottleneck {}, emb {}, {} parameters; seed {}, {} epochs, batch {}",
        config.enc,
        config.bottleneck,
        config.emb,
        config.param_count(),
        tc.seed,
        tc.epochs,
        tc.batch
    );
    let t0 = Instant::now();
    let every = (tc.epochs / 20).max(1);
    let (model, epoch_loss) = train::train(&config, &tc, &digits, &split, |e, l| {
        if (e + 1) % every == 0 || e == 0 {
            println!(
                "epoch {:5}  loss {:.5}  ({:.1} s)",
                e + 1,
                l,
                t0.elapsed().as_secs_f64()
            );
        }
    })?;
    let train_seconds = t0.elapsed().as_secs_f64();
    println!("trained in {train_seconds:.1} s");
    let eval_seed = 0xE7A1;
    let train_losses = train::eval_losses(
        &model,
        &digits.unit_matrix(&split.train),
        &REPORT_SIGMAS,
        a.eval_draws,
        eval_seed,
    );
    let test_losses = train::eval_losses(
        &model,
        &digits.unit_matrix(&split.test),
        &REPORT_SIGMAS,
        a.eval_draws,
        eval_seed + 1,
    );
    println!("denoising loss per noise level (EMA weights; per pixel, data range [-1, 1]):");
    println!(
        "{:>7}  {:>12} {:>12}  {:>12} {:>12}",
        "sigma", "loss/train", "loss/test", "x0_mse/train", "x0_mse/test"
    );
    for (tr, te) in train_losses.iter().zip(&test_losses) {
        println!(
            "{:>7.3}  {:>12.5} {:>12.5}  {:>12.5} {:>12.5}",
            tr.sigma, tr.loss, te.loss, tr.x0_mse, te.x0_mse
        );
    }
    let report = TrainReport {
        unet: config.clone(),
        params: config.param_count(),
        train: tc.clone(),
        split_seed: a.split_seed,
        test_fraction: data::DEFAULT_TEST_FRACTION,
        n_train: split.train.len(),
        n_test: split.test.len(),
        epoch_loss,
        train_seconds,
        train_losses,
        test_losses,
        eval_draws: a.eval_draws,
        eval_seed,
    };
    let meta = vec![
        ("train_seed".to_string(), tc.seed.to_string()),
        ("epochs".to_string(), tc.epochs.to_string()),
        ("split_seed".to_string(), a.split_seed.to_string()),
        ("prediction".to_string(), "epsilon".to_string()),
        ("weights".to_string(), format!("ema {}", tc.ema_decay)),
    ];
    io::save(&model, &a.out, &meta).map_err(|e| e.to_string())?;
    let rp = report_path(&a.out);
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&rp, json + "\n").map_err(|e| format!("{}: {e}", rp.display()))?;
    println!("wrote {} and {}", a.out.display(), rp.display());
    if let Some(png) = &a.data_png {
        let imgs: Vec<Vec<f32>> = split
            .test
            .iter()
            .take(a.samples)
            .map(|&i| digits.unit_image(i).to_vec())
            .collect();
        sample::write_png_grid(&imgs, 8, 6, png).map_err(|e| e.to_string())?;
        println!("wrote {} ({} real test images)", png.display(), imgs.len());
    }
    if let Some(png) = &a.samples_png {
        let t1 = Instant::now();
        let imgs = sample::sample(&model, a.samples, a.sample_steps, a.seed);
        sample::write_png_grid(&imgs, 8, 6, png).map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({} samples, {} Euler-ancestral steps, seed {}, {:.1} s)",
            png.display(),
            a.samples,
            a.sample_steps,
            a.seed,
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
