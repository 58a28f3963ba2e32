//! Substrate commands: `simulate`, `noise`, `export`, `example`, `bench`.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use thermo_sim::example::{random_substrate, ExampleSpec};
use thermo_sim::run::{run as run_engine, EngineKind, RunOptions, RunReport};
use thermo_sim::{FixedBatch, FixedEngine, GoldenEngine, Substrate};

/// Substrate commands.
#[derive(Subcommand)]
pub enum SimCommand {
    /// Run the golden model or the fixed engine on a substrate and report statistics.
    Simulate(SimulateArgs),
    /// Measure the hardware noise source (moments, goodness of fit, tails, correlations).
    Noise(NoiseArgs),
    /// Write the substrate's energy as NumPy arrays (.npz).
    Export(ExportArgs),
    /// Write a random valid substrate in the U-Net layout.
    Example(ExampleArgs),
    /// Benchmark the engines (unit updates per second, peak memory).
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    Golden,
    Fixed,
}

/// `thermo simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    /// Substrate description (.toml or .json).
    #[arg(long)]
    config: PathBuf,
    /// Engine.
    #[arg(long, value_enum, default_value = "fixed")]
    engine: EngineArg,
    /// Sweeps after burn-in.
    #[arg(long, default_value_t = 1000)]
    sweeps: u64,
    /// Burn-in sweeps (not in statistics or dumps).
    #[arg(long, default_value_t = 100)]
    burn_in: u64,
    /// Noise seed (default: the description's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (results are identical for any count).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// VCD of every sweep; a GTKWave save file (.gtkw) is written beside it.
    #[arg(long)]
    vcd: Option<PathBuf>,
    /// JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// States after burn-in as .npy, shape (kept sweeps, units).
    #[arg(long)]
    dump_states: Option<PathBuf>,
    /// Keep every N-th sweep in --dump-states.
    #[arg(long, default_value_t = 1)]
    thin: u64,
}

/// `thermo noise`.
#[derive(Args)]
pub struct NoiseArgs {
    /// Samples per lane.
    #[arg(long, default_value_t = 1_000_000)]
    samples: usize,
    /// Lanes.
    #[arg(long, default_value_t = 4)]
    lanes: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Raw samples as .npy, shape (lanes, samples).
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// `thermo export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Substrate description.
    #[arg(long)]
    config: PathBuf,
    /// Output .npz: A (dense, D <= 4096) or A_local_{data,indices,indptr} (CSR), b, T, eta,
    /// module_ranges, module_names, bus<i>_{sigma,u,v,modules}.
    #[arg(long)]
    npz: PathBuf,
}

/// `thermo example`.
#[derive(Args)]
pub struct ExampleArgs {
    /// Units D.
    #[arg(long, default_value_t = 64)]
    units: usize,
    /// Modules M (encoder levels, bottleneck if odd, decoder levels).
    #[arg(long, default_value_t = 3)]
    modules: usize,
    /// Rank k of each skip bus (0 = none).
    #[arg(long, default_value_t = 2)]
    rank: usize,
    /// Average couplings per unit.
    #[arg(long, default_value_t = 8)]
    degree: usize,
    /// Hardware lanes P.
    #[arg(long, default_value_t = 4)]
    lanes: u32,
    /// Temperature.
    #[arg(long, default_value_t = 0.05)]
    temperature: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (.toml or .json); stdout (TOML) if absent.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// `thermo bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Units of the throughput configuration.
    #[arg(long, default_value_t = 1024)]
    units: usize,
    /// Average couplings per unit.
    #[arg(long, default_value_t = 16)]
    degree: usize,
    /// Bus rank.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// Sweeps per engine.
    #[arg(long, default_value_t = 2000)]
    sweeps: u64,
    /// Units of the memory configuration (0 to skip).
    #[arg(long, default_value_t = 65_536)]
    memory_units: usize,
    /// Internal: only build and run the memory configuration, print peak RSS.
    #[arg(long, hide = true)]
    memory_only: bool,
    /// Chains of the batched runs.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed repetitions of every measurement (the median is printed).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The second substrate measured (skipped with a note if the file is missing).
    #[arg(long, default_value = "models/digits-clamped-rank8.json.sim.json")]
    digits: PathBuf,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Threads of the multi-threaded figures (batched chains, large substrate), compared with one.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Run a substrate command.
pub fn run(c: SimCommand) -> Result<(), String> {
    match c {
        SimCommand::Simulate(a) => simulate(a),
        SimCommand::Noise(a) => noise(a),
        SimCommand::Export(a) => {
            let s = Substrate::from_file(&a.config).map_err(|e| e.to_string())?;
            thermo_sim::io::export_npz(&s, &a.npz).map_err(|e| e.to_string())?;
            eprintln!(
                "wrote {} ({} units, {} modules, {} buses)",
                a.npz.display(),
                s.units(),
                s.modules.len(),
                s.buses.len()
            );
            Ok(())
        }
        SimCommand::Example(a) => example(a),
        SimCommand::Bench(a) => bench(a),
    }
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} sweeps {pos}/{len} [{bar:40}] {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

fn simulate(a: SimulateArgs) -> Result<(), String> {
    for (flag, v) in [
        ("--sweeps", a.sweeps),
        ("--thin", a.thin),
        ("--threads", a.threads as u64),
    ] {
        if v == 0 {
            return Err(format!("{flag} 0: must be at least 1"));
        }
    }
    let s = Substrate::from_file(&a.config).map_err(|e| e.to_string())?;
    let seed = a.seed.unwrap_or(s.seed);
    let kind = match a.engine {
        EngineArg::Golden => EngineKind::Golden,
        EngineArg::Fixed => EngineKind::Fixed,
    };
    let opts = RunOptions {
        engine: kind,
        sweeps: a.sweeps,
        burn_in: a.burn_in,
        seed,
        threads: a.threads,
        vcd: a.vcd.clone(),
        dump_states: a.dump_states.clone(),
        thin: a.thin,
    };
    let total = a.sweeps + a.burn_in;
    let pb = progress_bar(total);
    let show = total * s.units() as u64 > 50_000_000;
    let tick = |done: u64, _total: u64| {
        if show {
            pb.set_position(done)
        }
    };
    let report = match kind {
        EngineKind::Golden => run_engine(&s, GoldenEngine::golden(&s, seed), &opts, tick),
        EngineKind::Fixed => run_engine(&s, FixedEngine::fixed(&s, seed), &opts, tick),
    }
    .map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    print_report(&report);
    if let Some(p) = &a.report {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("report: {}", p.display());
    }
    if let Some(p) = &a.vcd {
        println!(
            "vcd: {}  (gtkwave {} )",
            p.display(),
            p.with_extension("gtkw").display()
        );
    }
    if let Some(p) = &a.dump_states {
        println!("states: {}", p.display());
    }
    Ok(())
}

fn print_report(r: &RunReport) {
    println!(
        "{}: {:?} engine, {} units, {} lanes, seed {}, {} sweeps after {} burn-in",
        r.substrate, r.engine, r.units, r.lanes, r.seed, r.sweeps, r.burn_in
    );
    println!(
        "{:<12} {:>6} {:>10} {:>10} {:>10}",
        "module", "units", "mean", "variance", "saturated"
    );
    for m in &r.modules {
        println!(
            "{:<12} {:>6} {:>10.4} {:>10.5} {:>10}",
            m.name,
            m.units,
            m.mean,
            m.variance,
            m.saturation.total()
        );
    }
    println!(
        "hardware: {} cycles/sweep, {} cycles; engine: {:.3} s, {:.3e} unit updates/s; saturation: {} acc, {} state, {} bus",
        r.cycles_per_sweep, r.cycles, r.wall_seconds, r.unit_updates_per_second, r.saturation.acc, r.saturation.state, r.saturation.bus
    );
}

fn noise(a: NoiseArgs) -> Result<(), String> {
    if a.samples < 2 || a.lanes == 0 {
        return Err(format!(
            "--samples must be >= 2 and --lanes >= 1 (got {} and {})",
            a.samples, a.lanes
        ));
    }
    let (r, data) = thermo_sim::stats::noise_report(a.samples, a.lanes, a.seed);
    if let Some(p) = &a.dump {
        let flat: Vec<f64> = data.iter().flatten().copied().collect();
        thermo_sim::io::write_npy(p, &[a.lanes, a.samples], &flat).map_err(|e| e.to_string())?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let minp = |v: &[f64]| v.iter().copied().fold(1.0, f64::min);
    println!("noise: taus88 + 512-entry piecewise-linear inverse CDF, Q3.12 output");
    println!(
        "samples: {} per lane x {} lanes (seed {})",
        r.samples_per_lane, r.lanes, a.seed
    );
    println!(
        "mean {:+.5}  variance {:.5}  skewness {:+.5}  kurtosis {:.5} (Gaussian: 0, 1, 0, 3)",
        r.mean, r.variance, r.skewness, r.kurtosis
    );
    println!(
        "Anderson-Darling per lane: A2 max {:.3}, smallest p {:.4}; Kolmogorov-Smirnov smallest p {:.4}",
        r.ad_statistic.iter().copied().fold(0.0, f64::max),
        minp(&r.ad_p_value),
        minp(&r.ks_p_value)
    );
    println!(
        "tails: samples agree up to {:.1} sigma (as far as the sample count can tell)",
        r.tail_agreement_sigma
    );
    println!(
        "tails: exact transform within 10% of the Gaussian tail up to {:.2} sigma; largest |z| {:.3}; interpolation error {:.2e}",
        r.transform.tail_accurate_sigma, r.transform.max_abs, r.transform.max_abs_error
    );
    println!(
        "exact transform moments: variance {:.6}, kurtosis {:.6}",
        r.transform.variance, r.transform.kurtosis
    );
    println!(
        "|lag-1 autocorrelation| max {:.2e}; |cross-lane correlation| max {:.2e}; bound 3/sqrt(N) = {:.2e}",
        r.max_abs_lag1, r.max_abs_cross_lane, r.correlation_bound
    );
    println!(
        "period: {} words per lane (2 words per sample)",
        r.period_words
    );
    if let Some(p) = &a.dump {
        println!("samples: {}", p.display());
    }
    Ok(())
}

fn example(a: ExampleArgs) -> Result<(), String> {
    if a.units < a.modules.max(1) || a.modules == 0 {
        return Err(format!(
            "--units {} must be at least --modules {} (and modules >= 1)",
            a.units, a.modules
        ));
    }
    let spec = ExampleSpec {
        units: a.units,
        modules: a.modules,
        rank: a.rank,
        degree: a.degree,
        lanes: a.lanes.min(a.units as u32),
        temperature: a.temperature,
        seed: a.seed,
        ..Default::default()
    };
    let cfg = random_substrate(&spec);
    // Refuse to write something that does not validate.
    Substrate::from_config(&cfg)
        .map_err(|e| format!("generated substrate does not validate: {e}"))?;
    match &a.out {
        Some(p) => {
            cfg.save(p).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{}", toml::to_string(&cfg).map_err(|e| e.to_string())?),
    }
    Ok(())
}

/// The 1-minute load average (`/proc/loadavg`; `None` where it is not available).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time the process's threads have run so far, in seconds (Linux scheduler statistics; `None`
/// where they are not available).
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

fn bench(a: BenchArgs) -> Result<(), String> {
    if a.memory_only {
        let spec = ExampleSpec {
            units: a.memory_units,
            modules: 5,
            rank: a.rank,
            degree: a.degree,
            lanes: 64,
            ..Default::default()
        };
        spec.check().map_err(|e| format!("--memory-units: {e}"))?;
        let s = Substrate::from_config(&random_substrate(&spec)).map_err(|e| e.to_string())?;
        let mut e = FixedEngine::fixed(&s, 1);
        for _ in 0..10 {
            e.sweep();
        }
        println!("{}", peak_rss_kib().unwrap_or(0));
        return Ok(());
    }
    let spec = ExampleSpec {
        units: a.units,
        modules: 5,
        rank: a.rank,
        degree: a.degree,
        lanes: 16,
        ..Default::default()
    };
    spec.check().map_err(|e| format!("--units: {e}"))?;
    let s = Substrate::from_config(&random_substrate(&spec)).map_err(|e| e.to_string())?;
    let mut report = serde_json::Map::new();
    report.insert("repeat".into(), a.repeat.max(1).into());
    report.insert("batch".into(), a.batch.into());
    println!(
        "figures: median of {} timed runs each, unit updates per second (one chain's unit update = 1)",
        a.repeat.max(1)
    );
    let nt = a.threads.max(1);
    report.insert("threads".into(), nt.into());
    let load_start = load_average();
    if let Some(l) = load_start {
        println!(
            "machine: {} cores, load average {l:.2} (1 minute, at the start)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    let isa = thermo_sim::isa::Isa::best();
    println!(
        "vector instructions of the fixed engine's fast paths: {} (of {} on this CPU; THERMO_ISA=avx2 or scalar caps them)",
        isa.name(),
        thermo_sim::isa::Isa::supported().name()
    );
    report.insert("isa".into(), isa.name().into());
    let cfg = bench_substrate("configuration", &s, a.sweeps, a.batch, a.repeat, nt);
    report.insert("configuration".into(), cfg);
    if a.digits.exists() {
        let digits = Substrate::from_file(&a.digits).map_err(|e| e.to_string())?;
        let sweeps = (a.sweeps / 4).max(4);
        let r = bench_substrate(
            &format!("digits substrate ({})", a.digits.display()),
            &digits,
            sweeps,
            a.batch,
            a.repeat,
            nt,
        );
        report.insert("digits".into(), r);
    } else {
        println!(
            "digits substrate: {} not found, skipped",
            a.digits.display()
        );
    }
    let time = |f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    // Threads pay off on large substrates only: compare 1 and 2 on the memory configuration.
    if a.memory_units > 0 {
        let big = Substrate::from_config(&random_substrate(&ExampleSpec {
            units: a.memory_units,
            modules: 5,
            rank: a.rank,
            degree: a.degree,
            lanes: 64,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
        let sweeps = 40;
        let mut rate = [0.0; 2];
        for (k, threads) in [1usize, nt].into_iter().enumerate() {
            let mut e = FixedEngine::fixed(&big, 1);
            e.threads = threads;
            let t = time(&mut || (0..sweeps).for_each(|_| e.sweep()));
            rate[k] = sweeps as f64 * big.units() as f64 / t;
        }
        println!(
            "fixed engine, {} units: {:.3e} unit updates/s (1 thread), {:.3e} ({nt} threads), {:.2}x",
            big.units(),
            rate[0],
            rate[1],
            rate[1] / rate[0]
        );
        report.insert(
            "large".into(),
            serde_json::json!({"units": big.units(), "fixed_1_thread": rate[0], "fixed_n_threads": rate[1]}),
        );
    }
    if a.memory_units > 0 {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = std::process::Command::new(exe)
            .args([
                "bench",
                "--memory-only",
                "--memory-units",
                &a.memory_units.to_string(),
                "--degree",
                &a.degree.to_string(),
                "--rank",
                &a.rank.to_string(),
            ])
            .output()
            .map_err(|e| e.to_string())?;
        let kib: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                format!(
                    "memory child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        println!(
            "peak resident memory, {} units (build + validate + fixed engine): {:.1} MiB",
            a.memory_units,
            kib as f64 / 1024.0
        );
        report.insert(
            "memory".into(),
            serde_json::json!({"units": a.memory_units, "peak_mib": kib as f64 / 1024.0}),
        );
    }
    if let (Some(l0), Some(l1)) = (load_start, load_average()) {
        println!("machine load average {l1:.2} at the end ({l0:.2} at the start)");
        report.insert("load_average".into(), serde_json::json!([l0, l1]));
    }
    let own = peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    println!("peak resident memory of this benchmark: {own:.1} MiB");
    report.insert("bench_peak_mib".into(), own.into());
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(report))
            .map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Median of the figures.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times every engine on `s` (`sweeps` sweeps of one chain, fewer for the slower or batched
/// runs), `repeat` times each, prints the medians in unit updates per second and returns them.
fn bench_substrate(
    what: &str,
    s: &Substrate,
    sweeps: u64,
    batch: usize,
    repeat: usize,
    nt: usize,
) -> serde_json::Value {
    let d = s.units() as f64;
    println!(
        "{what}: {} units, {} modules, {:.1} couplings/unit, {} buses of ranks {:?}, {}",
        s.units(),
        s.modules.len(),
        s.nnz() as f64 / d,
        s.buses.len(),
        s.buses.iter().map(|b| b.sigma.len()).collect::<Vec<_>>(),
        match s.activation {
            thermo_sim::model::Activation::Identity => "identity".to_string(),
            thermo_sim::model::Activation::Clamp { lo, hi } => format!("clamp [{lo:.3}, {hi:.3}]"),
        }
    );
    let rate = |n: u64, f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        f();
        n as f64 * d / t.elapsed().as_secs_f64()
    };
    let batch = batch.max(1);
    // Batched runs: about 1.6e7 chain unit updates per timed run.
    let bsweeps = (16_000_000 / (batch * s.units().max(1)) as u64).max(4);
    let gsweeps = (sweeps / 4).max(1);
    let seeds: Vec<u64> = (1..=batch as u64).collect();
    let mut r: [Vec<f64>; 6] = Default::default();
    // The batched figure on the AVX2 paths too when the CPU has wider ones: the same bits, the
    // speed of the narrower instructions, measured in the same run.
    let isa = thermo_sim::isa::Isa::best();
    let narrower = isa > thermo_sim::isa::Isa::Avx2;
    // Cores the batched runs kept busy (CPU time over wall time): on a shared machine a thread
    // count's figure is bounded by the cores it was given.
    let mut busy: [Vec<f64>; 2] = Default::default();
    for _ in 0..repeat.max(1) {
        let mut e = FixedEngine::fixed(s, 1);
        r[0].push(rate(sweeps, &mut || (0..sweeps).for_each(|_| e.sweep())));
        for (k, threads) in [(1, 1), (2, nt)] {
            let mut b = FixedBatch::fixed(s, &seeds, threads);
            let (t, c) = (std::time::Instant::now(), cpu_seconds());
            r[k].push(rate(bsweeps * batch as u64, &mut || b.run(bsweeps)));
            if let (Some(c0), Some(c1)) = (c, cpu_seconds()) {
                busy[k - 1].push((c1 - c0) / t.elapsed().as_secs_f64());
            }
        }
        if narrower {
            thermo_sim::isa::Isa::set_cap(thermo_sim::isa::Isa::Avx2);
            let mut b = FixedBatch::fixed(s, &seeds, 1);
            r[5].push(rate(bsweeps * batch as u64, &mut || b.run(bsweeps)));
            thermo_sim::isa::Isa::set_cap(isa);
        }
        let mut g = GoldenEngine::golden(s, 1);
        r[3].push(rate(gsweeps, &mut || (0..gsweeps).for_each(|_| g.sweep())));
        let mut plain = PlainLoop::new(s, 1);
        r[4].push(rate(sweeps, &mut || {
            (0..sweeps).for_each(|_| plain.sweep())
        }));
    }
    // Step 2 alone for the batch's chains on one thread (their lanes' draws and the transform,
    // as the batched sweep runs it): a bound on one thread's batched figure.
    let lanes = s.lanes as usize;
    let mut noise_rates = Vec::new();
    if lanes > 0 {
        let mut state: [Vec<u32>; 3] = Default::default();
        for l in 0..lanes as u32 {
            for &seed in &seeds {
                let st = thermo_sim::noise::NoiseLane::new(seed, l).rng.s;
                for (comp, v) in state.iter_mut().zip(st) {
                    comp.push(v);
                }
            }
        }
        let mut z = vec![0i16; s.units() * batch];
        for _ in 0..repeat.max(1) {
            noise_rates.push(rate(bsweeps * batch as u64, &mut || {
                for _ in 0..bsweeps {
                    thermo_sim::noise::gaussian_fixed_rounds(&mut state, batch, lanes, &mut z);
                }
            }));
        }
    }
    let noise = median(noise_rates);
    let [fixed, batch1, batch2, golden, plain, batch_avx2] = r.map(median);
    let [busy1, busy2] = busy.map(median);
    println!("  fixed engine, 1 chain        : {fixed:.3e}  ({sweeps} sweeps)");
    println!("  fixed engine, {batch} chains, 1 thread : {batch1:.3e}  ({bsweeps} sweeps, {busy1:.2} cores busy)");
    println!("  fixed engine, {batch} chains, {nt} threads: {batch2:.3e}  ({bsweeps} sweeps, {busy2:.2} cores busy)");
    if narrower {
        println!(
            "  fixed engine, {batch} chains, 1 thread, AVX2 paths: {batch_avx2:.3e}  ({} paths {:.2}x of it)",
            isa.name(),
            batch1 / batch_avx2
        );
    }
    println!("  noise alone (step 2), {batch} chains, 1 thread: {noise:.3e} draws/s, one per unit update: bounds a thread's batched figure");
    println!("  golden model, 1 chain        : {golden:.3e}  ({gsweeps} sweeps)");
    println!("  plain f64 sparse Euler-Maruyama loop (CSR + bus factors, Box-Muller): {plain:.3e}  ({sweeps} sweeps)");
    println!(
        "  ratios: fixed/plain {:.2}x, fixed/golden {:.2}x, batched 1 thread/fixed {:.2}x, batched {nt} threads/1 thread {:.2}x, batched {nt} threads/plain {:.2}x",
        fixed / plain,
        fixed / golden,
        batch1 / fixed,
        batch2 / batch1,
        batch2 / plain
    );
    serde_json::json!({
        "units": s.units(),
        "couplings_per_unit": s.nnz() as f64 / d,
        "sweeps": sweeps,
        "batch_sweeps": bsweeps,
        "golden_sweeps": gsweeps,
        "fixed": fixed,
        "fixed_batch_1_thread": batch1,
        "fixed_batch_n_threads": batch2,
        "fixed_batch_1_thread_cores_busy": busy1,
        "fixed_batch_n_threads_cores_busy": busy2,
        "noise_batch_1_thread": noise,
        "fixed_batch_1_thread_avx2": if narrower { serde_json::json!(batch_avx2) } else { serde_json::Value::Null },
        "golden": golden,
        "plain_f64": plain,
    })
}

/// The loop a user would write first: `f64` Euler–Maruyama on the substrate's sparse couplings
/// (CSR) and its bus factors, Box–Muller noise from xorshift64*. Same update rule and work as the
/// engines (Jacobi, the clamp read through `rho`), none of their bit-exactness.
struct PlainLoop {
    diag: Vec<f64>,
    row_ptr: Vec<usize>,
    col: Vec<usize>,
    val: Vec<f64>,
    h: Vec<f64>,
    gn: f64,
    clamp: Option<(f64, f64)>,
    /// Per bus: encoder range, decoder range, u, v (rank-major), eta sigma.
    buses: Vec<PlainBus>,
    x: Vec<f64>,
    rx: Vec<f64>,
    next: Vec<f64>,
    rng: u64,
}

struct PlainBus {
    enc: std::ops::Range<usize>,
    dec: std::ops::Range<usize>,
    u: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    gain: Vec<f64>,
}

impl PlainLoop {
    fn new(s: &Substrate, seed: u64) -> Self {
        let eta = s.eta;
        let d = s.units();
        PlainLoop {
            diag: s.stiffness.iter().map(|&a| 1.0 - eta * a).collect(),
            row_ptr: s.row_ptr.clone(),
            col: s.col.clone(),
            val: s.val.iter().map(|&v| -eta * v).collect(),
            h: s.bias.iter().map(|&b| eta * b).collect(),
            gn: s.noise_amplitude(),
            clamp: match s.activation {
                thermo_sim::model::Activation::Identity => None,
                thermo_sim::model::Activation::Clamp { lo, hi } => Some((lo, hi)),
            },
            buses: s
                .buses
                .iter()
                .map(|b| PlainBus {
                    enc: s.modules[b.enc].range(),
                    dec: s.modules[b.dec].range(),
                    u: b.u.clone(),
                    v: b.v.clone(),
                    gain: b.sigma.iter().map(|&g| eta * g).collect(),
                })
                .collect(),
            x: vec![0.0; d],
            rx: vec![0.0; d],
            next: vec![0.0; d],
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    fn sweep(&mut self) {
        let d = self.x.len();
        for i in 0..d {
            self.rx[i] = match self.clamp {
                None => self.x[i],
                Some((lo, hi)) => self.x[i].clamp(lo, hi),
            };
        }
        // Noise first (two samples per Box-Muller pair), into `next`.
        let mut i = 0;
        while i < d {
            let (u1, u2) = (self.uniform(), self.uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            self.next[i] = self.gn * r * t.cos();
            if i + 1 < d {
                self.next[i + 1] = self.gn * r * t.sin();
            }
            i += 2;
        }
        for i in 0..d {
            let mut acc = self.diag[i] * self.x[i] + self.h[i];
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                acc += self.val[p] * self.rx[self.col[p]];
            }
            self.next[i] += acc;
        }
        for b in &self.buses {
            for (r, &g) in b.gain.iter().enumerate() {
                let se: f64 = b.u[r]
                    .iter()
                    .zip(&self.rx[b.enc.clone()])
                    .map(|(u, x)| u * x)
                    .sum();
                let sd: f64 = b.v[r]
                    .iter()
                    .zip(&self.rx[b.dec.clone()])
                    .map(|(v, x)| v * x)
                    .sum();
                for (v, o) in b.v[r].iter().zip(&mut self.next[b.dec.clone()]) {
                    *o += v * g * se;
                }
                for (u, o) in b.u[r].iter().zip(&mut self.next[b.enc.clone()]) {
                    *o += u * g * sd;
                }
            }
        }
        std::mem::swap(&mut self.x, &mut self.next);
    }
}
