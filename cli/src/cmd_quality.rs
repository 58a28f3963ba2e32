//! Honest metrics: `thermo train-classifier`, `thermo denoise-baselines`,
//! `thermo sample-quality`. Everything is computed in `thermo_diffusion::{classifier, quality}`;
//! this module parses arguments and prints.

use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thermo_diffusion::classifier::Classifier;
use thermo_diffusion::classifier::{self, ClassifierTrainConfig};
use thermo_diffusion::data::{self, Digits, Split};
use thermo_diffusion::{io, quality};

/// Metric commands.
#[derive(Subcommand)]
pub enum QualityCommand {
    /// Train the seeded MLP digit classifier that judges samples (on the U-Net's training split
    /// minus a validation carve-out); print fit / validation / test accuracy; write safetensors
    /// and a JSON report next to it.
    TrainClassifier(TrainClassifierArgs),
    /// Denoising MSE per pixel (outputs clipped to [-1, 1]) of the U-Net, the Wiener filter of
    /// the training data, the mean training image and the clipped noisy input, on every test
    /// image at sigma 0.05, 0.2, 0.5, 1, 2, 5 (seeded).
    DenoiseBaselines(DenoiseBaselinesArgs),
    /// Sample quality judged by the classifier (FD in its features against the training split,
    /// conf90, class entropy, mean max probability, nearest-training-image distance) of images
    /// from a .npy file and/or of U-Net samples over several seeds; the real test images as the
    /// reference row.
    SampleQuality(SampleQualityArgs),
}

/// Arguments of `thermo denoise-baselines`.
#[derive(Args)]
pub struct DenoiseBaselinesArgs {
    /// The U-Net to compare (safetensors).
    #[arg(long, default_value = "models/digits-unet.safetensors")]
    unet: PathBuf,
    /// Noise levels, comma-separated.
    #[arg(long, default_value = "0.05,0.2,0.5,1,2,5")]
    sigmas: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = quality::EVAL_SEED)]
    seed: u64,
    /// Write the table as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of the train/test split (default: the U-Net's).
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Arguments of `thermo sample-quality`.
#[derive(Args)]
pub struct SampleQualityArgs {
    /// Images to judge: .npy, shape [n, 64], data scale (pixel/8 - 1).
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Sample this U-Net (Euler ancestral) and judge the samples, one run per seed.
    #[arg(long)]
    unet: Option<PathBuf>,
    /// Sample these clamped substrates (Euler ancestral, the substrate as the denoiser) and
    /// judge them, one run per seed (the same seeds and starting noise as the U-Net's).
    #[arg(long)]
    substrate: Vec<PathBuf>,
    /// Path of the substrates' relaxation: exact, golden or fixed.
    #[arg(long, default_value = "exact")]
    engine: String,
    /// Number of U-Net sampling seeds (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Samples per seed.
    #[arg(long, default_value_t = 256)]
    n: usize,
    /// Reverse-process steps.
    #[arg(long, default_value_t = quality::SAMPLE_STEPS)]
    steps: usize,
    /// The judging classifier.
    #[arg(long, default_value = "models/digits-classifier.safetensors")]
    classifier: PathBuf,
    /// Write all reports as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of the train/test split (default: the U-Net's).
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Engine threads (fixed and golden engines; results do not depend on it).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Arguments of `thermo train-classifier`.
#[derive(Args)]
pub struct TrainClassifierArgs {
    /// Output classifier file (safetensors); the JSON report goes next to it (`.json`).
    #[arg(long, default_value = "models/digits-classifier.safetensors")]
    out: PathBuf,
    /// Training seed (initialisation, batches, augmentation).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Layer widths `64,H1,...,10`.
    #[arg(long, default_value = "64,256,64,10")]
    widths: String,
    /// Passes over the training images.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().epochs)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().batch)]
    batch: usize,
    /// Peak learning rate (cosine decay).
    #[arg(long, default_value_t = ClassifierTrainConfig::default().lr)]
    lr: f32,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().weight_decay)]
    weight_decay: f32,
    /// Probability of a one-pixel shift of a training image.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().shift_prob)]
    shift_prob: f32,
    /// Standard deviation of Gaussian pixel noise on training images (data scale).
    #[arg(long, default_value_t = ClassifierTrainConfig::default().noise_std)]
    noise_std: f32,
    /// Largest sub-pixel shift (bilinear); 0: whole-pixel shifts by one.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().shift_max)]
    shift_max: f32,
    /// Dropout probability on the hidden activations.
    #[arg(long, default_value_t = ClassifierTrainConfig::default().dropout)]
    dropout: f32,
    /// Fraction of the training split held out for validation.
    #[arg(long, default_value_t = classifier::DEFAULT_VAL_FRACTION)]
    val_fraction: f64,
    /// Seed of the train/test split (default: the U-Net's).
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Return the validation run's model instead of refitting on the whole training split.
    #[arg(long)]
    no_refit: bool,
    /// Hyper-parameter search mode: do not read the test split and do not write files.
    #[arg(long)]
    no_test: bool,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Run a metric command.
pub fn run(c: QualityCommand) -> Result<(), String> {
    match c {
        QualityCommand::TrainClassifier(a) => train_classifier(a),
        QualityCommand::DenoiseBaselines(a) => denoise_baselines(a),
        QualityCommand::SampleQuality(a) => sample_quality(a),
    }
}

fn load_digits(path: &Option<PathBuf>) -> Result<Digits, String> {
    let p = path.clone().unwrap_or_else(data::default_data_path);
    Digits::load(&p).map_err(|e| e.to_string())
}

/// Writes `value` as pretty JSON (with a final newline) to `path`; errors name the file.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    s.split(',')
        .map(|v| v.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} `{s}`: {e}"))
}

fn train_classifier(a: TrainClassifierArgs) -> Result<(), String> {
    let digits = load_digits(&a.data)?;
    let tc = ClassifierTrainConfig {
        widths: parse_list(&a.widths, "--widths")?,
        seed: a.seed,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        shift_prob: a.shift_prob,
        noise_std: a.noise_std,
        shift_max: a.shift_max,
        dropout: a.dropout,
        ..ClassifierTrainConfig::default()
    };
    let t = Instant::now();
    let protocol = classifier::Protocol {
        split_seed: a.split_seed,
        val_fraction: a.val_fraction,
        val_seed: classifier::DEFAULT_VAL_SEED,
        refit: !a.no_refit && !a.no_test,
        read_test: !a.no_test,
    };
    let (model, report) = classifier::train_on_digits(&digits, &tc, &protocol, |_, _| {})
        .map_err(|e| e.to_string())?;
    println!(
        "classifier {:?} ({} parameters), seed {}, {} epochs, batch {}, lr {}, weight decay {}, shift p {} max {}, noise {}, dropout {}; {:.1} s",
        tc.widths,
        report.params,
        tc.seed,
        tc.epochs,
        tc.batch,
        tc.lr,
        tc.weight_decay,
        tc.shift_prob,
        tc.shift_max,
        tc.noise_std,
        tc.dropout,
        t.elapsed().as_secs_f64()
    );
    println!(
        "split seed {}: {} fit / {} validation / {} test images; final training loss {:.4}",
        report.split_seed,
        report.n_fit,
        report.n_val,
        report.n_test,
        report.epoch_loss.last().copied().unwrap_or(f64::NAN)
    );
    let errs = |acc: f64, n: usize| ((1.0 - acc) * n as f64).round() as usize;
    println!(
        "validation run (fitted on {} images): train {:.4} ({} wrong)  val {:.4} ({} wrong)",
        report.n_fit,
        report.acc_fit,
        errs(report.acc_fit, report.n_fit),
        report.acc_val,
        errs(report.acc_val, report.n_val)
    );
    let n_final = if report.refit {
        report.n_fit + report.n_val
    } else {
        report.n_fit
    };
    if report.refit {
        println!(
            "refitted with the same hyper-parameters on the whole training split ({n_final} images): train {:.4} ({} wrong)",
            report.acc_train,
            errs(report.acc_train, n_final)
        );
    }
    let Some(acc_test) = report.acc_test else {
        println!("test split not read (--no-test); nothing written");
        return Ok(());
    };
    println!(
        "accuracy: test {:.4} ({} wrong of {})",
        acc_test,
        errs(acc_test, report.n_test),
        report.n_test
    );
    let extra = vec![
        ("train_seed".to_string(), tc.seed.to_string()),
        ("split_seed".to_string(), a.split_seed.to_string()),
        ("acc_test".to_string(), format!("{acc_test:.6}")),
    ];
    model.save(&a.out, &extra).map_err(|e| e.to_string())?;
    let json = a.out.with_extension("json");
    write_json(&json, &report)?;
    println!("wrote {} and {}", a.out.display(), json.display());
    Ok(())
}

fn split_of(digits: &Digits, seed: u64) -> Result<Split, String> {
    Split::new(digits.len(), data::DEFAULT_TEST_FRACTION, seed).map_err(|e| e.to_string())
}

fn denoise_baselines(a: DenoiseBaselinesArgs) -> Result<(), String> {
    let digits = load_digits(&a.data)?;
    let split = split_of(&digits, a.split_seed)?;
    let unet = io::load(&a.unet).map_err(|e| format!("{}: {e}", a.unet.display()))?;
    let sigmas: Vec<f32> = parse_list(&a.sigmas, "--sigmas")?;
    let train = digits.unit_matrix(&split.train);
    let wiener = quality::Wiener::fit(&train).map_err(|e| e.to_string())?;
    let mean = quality::MeanBaseline::fit(&train).map_err(|e| e.to_string())?;
    let set = quality::noisy_set(&digits.unit_matrix(&split.test), &sigmas, a.seed)
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let f_unet = |x: &[f32], s: f32| unet.denoise(x, s);
    let f_wiener = |x: &[f32], s: f32| wiener.denoise(x, s);
    let f_mean = |x: &[f32], s: f32| mean.denoise(x, s);
    let table = quality::denoise_table(
        &set,
        &[
            ("U-Net", &f_unet),
            ("Wiener", &f_wiener),
            ("mean", &f_mean),
            ("identity", &quality::identity_clipped),
        ],
    );
    println!(
        "denoised-image MSE per pixel (outputs clipped to [-1, 1]) on the {} test images (split seed {}), one noise draw per image and level (seed {:#x}); U-Net {}, Wiener and mean fitted to the {} training images; {:.1} s",
        set.n_images(),
        a.split_seed,
        a.seed,
        a.unet.display(),
        split.train.len(),
        t.elapsed().as_secs_f64()
    );
    print!("{}", table.to_markdown());
    if let Some(p) = &a.json {
        write_json(p, &table)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct SampleQualityOut {
    classifier: String,
    split_seed: u64,
    n_train: usize,
    test_images: quality::QualityReport,
    npy: Option<(String, quality::QualityReport)>,
    unet: Option<(String, usize, quality::QualitySummary)>,
    substrates: Vec<(String, String, quality::QualitySummary)>,
}

fn sample_quality(a: SampleQualityArgs) -> Result<(), String> {
    if a.npy.is_none() && a.unet.is_none() && a.substrate.is_empty() {
        return Err("give --npy FILE, --unet MODEL and/or --substrate FILE".into());
    }
    let digits = load_digits(&a.data)?;
    let split = split_of(&digits, a.split_seed)?;
    let clf = Classifier::load(&a.classifier).map_err(|e| e.to_string())?;
    let train = digits.unit_matrix(&split.train);
    let t = Instant::now();
    let reference = quality::QualityReference::new(&clf, &train).map_err(|e| e.to_string())?;
    let real = quality::sample_quality_with(&clf, &digits.unit_matrix(&split.test), &reference)
        .map_err(|e| e.to_string())?;
    let mut out = SampleQualityOut {
        classifier: a.classifier.display().to_string(),
        split_seed: a.split_seed,
        n_train: split.train.len(),
        test_images: real.clone(),
        npy: None,
        unet: None,
        substrates: Vec::new(),
    };
    let mut table = quality::quality_table_header();
    table.push_str(&real.markdown_row("real test images"));
    if let Some(p) = &a.npy {
        let imgs = quality::read_images_npy(p).map_err(|e| e.to_string())?;
        let r = quality::sample_quality_with(&clf, &imgs, &reference).map_err(|e| e.to_string())?;
        table.push_str(&r.markdown_row(&p.display().to_string()));
        out.npy = Some((p.display().to_string(), r));
    }
    if let Some(p) = &a.unet {
        let model = io::load(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let seeds: Vec<u64> = (0..a.seeds).collect();
        let s = quality::unet_sample_quality(&model, &clf, &reference, a.n, a.steps, &seeds)
            .map_err(|e| e.to_string())?;
        for (seed, r) in seeds.iter().zip(&s.runs) {
            table.push_str(&r.markdown_row(&format!("U-Net seed {seed}")));
        }
        table.push_str(&s.markdown_row(&format!(
            "U-Net, {} Euler-ancestral steps, mean ± sd",
            a.steps
        )));
        out.unet = Some((p.display().to_string(), a.steps, s));
    }
    for p in &a.substrate {
        let c = thermo_diffusion::clamped::ClampedModel::load(p)?;
        let path: thermo_diffusion::clamped::Path =
            a.engine.parse().map_err(|e| format!("--engine {e}"))?;
        let run = c.engine.as_ref().map_or(Default::default(), |e| e.run);
        let seeds: Vec<u64> = (0..a.seeds).collect();
        let mut reports = Vec::new();
        for &seed in &seeds {
            let (imgs, _) = c.sample(path, a.n, a.steps, seed, &run, a.threads)?;
            let flat: Vec<f32> = imgs.into_iter().flatten().collect();
            let r =
                quality::sample_quality_with(&clf, &flat, &reference).map_err(|e| e.to_string())?;
            table.push_str(&r.markdown_row(&format!("{} seed {seed}", p.display())));
            reports.push(r);
        }
        let s = quality::aggregate(&seeds, &reports);
        table.push_str(&s.markdown_row(&format!(
            "{} ({} path), {} steps, mean ± sd",
            p.display(),
            a.engine,
            a.steps
        )));
        out.substrates
            .push((p.display().to_string(), a.engine.clone(), s));
    }
    println!(
        "sample quality judged by {} against the {} training images (split seed {}); FD in the classifier's last-hidden features, class entropy in bits (uniform: 3.32), nearest-train L2 in data scale; {:.1} s",
        a.classifier.display(),
        split.train.len(),
        a.split_seed,
        t.elapsed().as_secs_f64()
    );
    print!("{table}");
    if let Some(p) = &a.json {
        write_json(p, &out)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
