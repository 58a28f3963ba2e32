//! `thermo energy`: energy per EqProp training step (or with `--inference` per generated sample)
//! on this machine's CPU (measured), on the FPGA emulation (cycle model), on an analog substrate
//! and on a GPU (projections), with the ratios and their sensitivity to each assumption. The
//! accounting is `thermo_sim::energy`; the link bytes come from `thermo_host::memboard` (a step)
//! and `thermo_host::inference::infer` against its board model (a sample); this module parses,
//! measures, prints and writes.

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use thermo_sim::energy::{self, Assumption, Assumptions, CpuMeasurement, Report, StepSettings};
use thermo_sim::eqprop::{self, Budget, Estimator, Example, Groups};
use thermo_sim::example::{random_substrate, ExampleSpec};
use thermo_sim::model::{readout_units, Activation};
use thermo_sim::noise::SplitDraws;
use thermo_sim::Substrate;

/// The energy command.
#[derive(Subcommand)]
pub enum EnergyCommand {
    /// Energy per EqProp training step: operation counts; CPU wall time of an EqProp step on the
    /// fixed engine and of an exact-gradient step (times RAPL power, or an assumed power per
    /// core); the FPGA emulation (cycles at the reference build's Fmax, link bytes, board power);
    /// an analog projection and a GPU projection from stated assumptions; ratios and their
    /// sensitivity to each assumption (x10 and /10). With --inference: the same per generated
    /// sample (a clamped substrate with --substrate, against its U-Net measured on the CPU).
    Energy(EnergyArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum EstimatorArg {
    OneSided,
    Symmetric,
}

/// Arguments of `thermo energy`.
#[derive(Args)]
pub struct EnergyArgs {
    /// Substrate description (TOML or JSON); the clamped digits substrate is
    /// models/digits-clamped-rank8.json.sim.json.
    #[arg(long, default_value = "examples/three-module.toml")]
    config: PathBuf,
    /// Use a random 64-unit substrate with a rank-2 bus (`thermo example --seed S`) instead.
    #[arg(long)]
    random: bool,
    /// Seed of the --random substrate.
    #[arg(long, default_value_t = 7)]
    random_seed: u64,
    /// Burn-in sweeps per phase [default 100]; with --inference per call [default: the clamped
    /// substrate's calibration, else 50].
    #[arg(long)]
    burn_in: Option<u32>,
    /// Readout sweeps per phase [default 400]; with --inference per call [default: the clamped
    /// substrate's calibration, else 200].
    #[arg(long)]
    sweeps: Option<u32>,
    /// Examples per step [default 16]; with --inference the samples drawn together [default 64].
    #[arg(long)]
    batch: Option<usize>,
    /// Energy per generated sample instead of per training step: a sample is --steps denoiser
    /// calls, each one RUN; the FPGA (cycle model and link), the CPU (fixed engine and, for a
    /// clamped substrate, the U-Net: measured), analog and GPU (projected).
    #[arg(long)]
    inference: bool,
    /// With --inference: a clamped substrate (e.g. models/digits-clamped-rank8.json): its
    /// engine description, calibration run and digital periphery, sampled against the U-Net.
    #[arg(long)]
    substrate: Option<PathBuf>,
    /// With --inference --substrate: the U-Net the substrate was compiled from.
    #[arg(long, default_value = "models/digits-unet.safetensors")]
    unet: PathBuf,
    /// With --inference: sampler steps (Euler ancestral), one denoiser call each.
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// With --inference: seed of the timed samples.
    #[arg(long, default_value_t = 1)]
    sample_seed: u64,
    /// Estimator (symmetric: free + two nudged phases; one-sided: free + one).
    #[arg(long, value_enum, default_value = "symmetric")]
    estimator: EstimatorArg,
    /// Nudge strength of the timed steps.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Seed of the teacher task the timed steps use (identity units).
    #[arg(long, default_value_t = 3)]
    task_seed: u64,
    /// Worker threads of the timed EqProp step (cores counted busy).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed steps of each kind (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Reference build whose Fmax and baud are the FPGA defaults.
    #[arg(long, default_value = "bitstreams/ulx3s-85f/report.json")]
    fpga_report: PathBuf,
    /// CPU power per busy core when RAPL is unreadable (W) [default 15].
    #[arg(long)]
    cpu_watts_per_core: Option<f64>,
    /// FPGA board power (W) [default 1].
    #[arg(long)]
    board_watts: Option<f64>,
    /// FPGA clock (MHz) [default: the reference build's Fmax].
    #[arg(long)]
    clock_mhz: Option<f64>,
    /// Host link line rate (bit/s) [default: the reference build's].
    #[arg(long)]
    baud: Option<f64>,
    /// Analog node capacitance (F) [default 1e-14].
    #[arg(long)]
    node_capacitance: Option<f64>,
    /// Analog coupling element capacitance (F) [default 2e-15].
    #[arg(long)]
    coupling_capacitance: Option<f64>,
    /// Analog supply (V) [default 0.8].
    #[arg(long)]
    vdd: Option<f64>,
    /// Analog signal swing (V) [default 0.2].
    #[arg(long)]
    swing: Option<f64>,
    /// Analog unit time constant (s) [default 1e-9].
    #[arg(long)]
    tau: Option<f64>,
    /// ADC energy per readout (J) [default 1e-12].
    #[arg(long)]
    adc_energy: Option<f64>,
    /// Energy per analog weight write (J) [default 1e-12].
    #[arg(long)]
    write_energy: Option<f64>,
    /// Energy per digital periphery MAC (J) [default 1e-12].
    #[arg(long)]
    digital_mac_energy: Option<f64>,
    /// GPU power (W) [default 400].
    #[arg(long)]
    gpu_watts: Option<f64>,
    /// GPU peak throughput (FLOP/s) [default 3.12e14].
    #[arg(long)]
    gpu_peak_flops: Option<f64>,
    /// Fraction of the GPU peak reached [default 0.3].
    #[arg(long)]
    gpu_utilisation: Option<f64>,
    /// Shortest GPU step time, kernel launches (s) [default 2e-5].
    #[arg(long)]
    gpu_step_floor: Option<f64>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the printed tables as Markdown here (e.g. docs/results/energy-three-module.md).
    #[arg(long)]
    md: Option<PathBuf>,
}

/// `s` on the reference build's lanes when that build is `s`'s own on another lane count (`thermo
/// bitstream --lanes P`: the report's structure hash is the one the current code computes for
/// `s` with `P` lanes), so the cycle model counts the lanes the board has.
fn on_build_lanes(s: &mut thermo_sim::Substrate, build_hash: &str, build_lanes: Option<u32>) {
    let hash = |s: &thermo_sim::Substrate| format!("{:#018x}", thermo_proto::structure_hash(s));
    if let Some(p) = build_lanes.filter(|&p| p != s.lanes && p > 0) {
        let mut t = s.clone();
        t.lanes = p;
        if hash(s) != build_hash && hash(&t) == build_hash {
            *s = t;
        }
    }
}

/// The reference build named with whether it is `s`'s own (the report's structure hash is the
/// one the current code computes for `s`) or another substrate's, whose clock is then assumed.
fn reference_note(board: &str, build_hash: &str, s: &thermo_sim::Substrate) -> String {
    if build_hash == format!("{:#018x}", thermo_proto::structure_hash(s)) {
        format!("{board} (this substrate's own build)")
    } else {
        format!("{board} (built for another substrate: this one's clock is assumed equal)")
    }
}

impl EnergyArgs {
    /// The assumptions: defaults, the reference build's clock and baud, then the flags.
    /// Also the build's lanes.
    fn assumptions(&self) -> Result<(Assumptions, String, String, Option<u32>), String> {
        let mut a = Assumptions::default();
        let text = std::fs::read_to_string(&self.fpga_report)
            .map_err(|e| format!("{}: {e}", self.fpga_report.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: {e}", self.fpga_report.display()))?;
        let fmax = v["clock"]["fmax_mhz"]
            .as_f64()
            .ok_or_else(|| format!("{}: no clock.fmax_mhz", self.fpga_report.display()))?;
        a.clock_hz = fmax * 1e6;
        if let Some(b) = v["uart"]["baud"].as_f64() {
            a.baud = b;
        }
        let board = format!(
            "{} ({}, {} lanes, {} units; {})",
            v["board"].as_str().unwrap_or("?"),
            v["device"].as_str().unwrap_or("?"),
            v["lanes"],
            v["units"],
            self.fpga_report.display()
        );
        let build_hash = v["structure_hash"].as_str().unwrap_or("").to_string();
        let build_lanes = v["lanes"].as_u64().and_then(|p| u32::try_from(p).ok());
        let flags = [
            ("cpu-watts-per-core", self.cpu_watts_per_core),
            ("board-watts", self.board_watts),
            ("clock-mhz", self.clock_mhz),
            ("baud", self.baud),
            ("node-capacitance", self.node_capacitance),
            ("coupling-capacitance", self.coupling_capacitance),
            ("vdd", self.vdd),
            ("swing", self.swing),
            ("tau", self.tau),
            ("adc-energy", self.adc_energy),
            ("write-energy", self.write_energy),
            ("digital-mac-energy", self.digital_mac_energy),
            ("gpu-watts", self.gpu_watts),
            ("gpu-peak-flops", self.gpu_peak_flops),
            ("gpu-utilisation", self.gpu_utilisation),
            ("gpu-step-floor", self.gpu_step_floor),
        ];
        for (name, v) in flags {
            if let Some(v) = v {
                let x = Assumption::ALL
                    .iter()
                    .find(|x| x.name == name)
                    .ok_or_else(|| format!("unknown assumption {name}"))?;
                x.set(&mut a, v);
            }
        }
        a.check()?;
        Ok((a, board, build_hash, build_lanes))
    }

    fn substrate(&self) -> Result<(Substrate, String), String> {
        if self.random {
            let spec = ExampleSpec {
                seed: self.random_seed,
                ..ExampleSpec::default()
            };
            let s = Substrate::from_config(&random_substrate(&spec)).map_err(|e| e.to_string())?;
            Ok((
                s,
                format!(
                    "random substrate (thermo example --seed {})",
                    self.random_seed
                ),
            ))
        } else {
            let s = Substrate::from_file(&self.config)
                .map_err(|e| format!("{}: {e}", self.config.display()))?;
            Ok((s, self.config.display().to_string()))
        }
    }
}

/// Examples for the timed steps: a teacher task for identity units; for clamp units zero
/// conditioning outside the first module (seeded inputs there) and zero targets (the cost of a
/// phase does not depend on the values).
fn examples(s: &Substrate, n: usize, seed: u64) -> Result<Vec<Example>, String> {
    if s.activation == Activation::Identity {
        return eqprop::teacher_task(s, n, 0.3, 0.0, 0.5, seed);
    }
    let mut r = SplitDraws(seed);
    let first = s.modules[0].range();
    Ok((0..n)
        .map(|_| {
            let mut cond = vec![0.0; s.units()];
            for c in &mut cond[first.clone()] {
                *c = 0.1 * r.normal();
            }
            Example {
                cond,
                target: vec![0.0; readout_units(s).len()],
            }
        })
        .collect())
}

/// Run `f`, returning its result and the mean RAPL package power over it, if readable.
fn with_rapl<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(T, Option<f64>), String> {
    let e0 = energy::rapl_microjoules();
    let t0 = std::time::Instant::now();
    let v = f()?;
    let dt = t0.elapsed().as_secs_f64();
    let w = match (e0, energy::rapl_microjoules()) {
        (Some(a), Some(b)) if b > a && dt > 0.0 => Some((b - a) as f64 * 1e-6 / dt),
        _ => None,
    };
    Ok((v, w))
}

#[derive(Serialize)]
struct JsonReport<'a> {
    source: &'a str,
    fpga_reference: &'a str,
    report: &'a Report,
    sensitivity: &'a [energy::Sensitivity],
    link_bytes_sent: u64,
    link_bytes_received: u64,
}

fn si(x: f64, unit: &str) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x} {unit}");
    }
    let prefixes = [
        (1e0, ""),
        (1e-3, "m"),
        (1e-6, "u"),
        (1e-9, "n"),
        (1e-12, "p"),
        (1e-15, "f"),
        (1e-18, "a"),
    ];
    for (scale, p) in prefixes {
        if x.abs() >= scale {
            return format!("{:.3} {p}{unit}", x / scale);
        }
    }
    format!("{x:.3e} {unit}")
}

fn run_energy(a: EnergyArgs) -> Result<(), String> {
    if a.inference {
        return run_inference(a);
    }
    if let Some(p) = &a.substrate {
        return Err(format!(
            "--substrate {}: a clamped substrate is read only with --inference (a training step's substrate is --config)",
            p.display()
        ));
    }
    let (assumptions, board, build_hash, build_lanes) = a.assumptions()?;
    if !(a.beta.is_finite() && a.beta > 0.0) {
        return Err(format!("--beta {}: must be finite and > 0", a.beta));
    }
    let (mut s, source) = a.substrate()?;
    on_build_lanes(&mut s, &build_hash, build_lanes);
    let board = reference_note(&board, &build_hash, &s);
    let batch = a.batch.unwrap_or(16);
    let st = StepSettings {
        budget: Budget {
            burn_in: a.burn_in.unwrap_or(100),
            sweeps: a.sweeps.unwrap_or(400),
        },
        batch,
        estimator: match a.estimator {
            EstimatorArg::OneSided => Estimator::OneSided,
            EstimatorArg::Symmetric => Estimator::Symmetric,
        },
        groups: Groups::WEIGHTS,
    };
    let mut counts = energy::counts(&s, &st)?;
    let ex = examples(&s, batch, a.task_seed)?;
    let traffic =
        thermo_host::memboard::eqprop_step_traffic(&s, &ex, st.budget, a.beta, st.estimator)?;
    counts.link_bytes = Some(traffic.bytes_sent + traffic.bytes_received);
    let (eqprop_seconds, rapl_eq) =
        with_rapl(|| energy::time_eqprop_step(&s, &ex, &st, a.beta, a.threads, a.reps))?;
    let (exact_seconds, rapl_exact) = if s.activation == Activation::Identity {
        let (t, w) = with_rapl(|| energy::time_exact_step(&s, &ex, &st, a.reps))?;
        (Some(t), w)
    } else {
        (None, None)
    };
    let cpu = CpuMeasurement {
        eqprop_seconds,
        exact_seconds,
        threads: a.threads.max(1),
        rapl_watts_eqprop: rapl_eq,
        rapl_watts_exact: rapl_exact,
    };
    let report = Report::new(&s, &st, counts, cpu, &assumptions)?;
    let sens = energy::sensitivity(&s, &st, counts, cpu, &assumptions)?;
    let md = render(
        &a,
        &s,
        &source,
        &board,
        &report,
        &sens,
        traffic.bytes_sent,
        traffic.bytes_received,
    );
    print!("{md}");
    if let Some(p) = &a.md {
        write(p, &md)?;
        println!("\nwrote {}", p.display());
    }
    if let Some(p) = &a.json {
        let j = JsonReport {
            source: &source,
            fpga_reference: &board,
            report: &report,
            sensitivity: &sens,
            link_bytes_sent: traffic.bytes_sent,
            link_bytes_received: traffic.bytes_received,
        };
        write(
            p,
            &serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?,
        )?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn num(x: f64) -> String {
    if (1e-3..1e6).contains(&x.abs()) {
        format!("{}", (x * 1e4).round() / 1e4)
    } else {
        format!("{x:e}")
    }
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    if let Some(d) = p.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
}

#[allow(clippy::too_many_arguments)]
fn render(
    a: &EnergyArgs,
    s: &Substrate,
    source: &str,
    board: &str,
    r: &Report,
    sens: &[energy::Sensitivity],
    sent: u64,
    received: u64,
) -> String {
    let mut o = String::new();
    let c = &r.counts;
    let st = &r.settings;
    let _ = writeln!(
        o,
        "# Energy per EqProp training step: {} ({} units, {} lanes, {:?} units)\n",
        s.name,
        s.units(),
        s.lanes,
        s.activation
    );
    let est = match st.estimator {
        Estimator::Symmetric => "symmetric",
        Estimator::OneSided => "one-sided",
    };
    let _ = writeln!(
        o,
        "Substrate `{source}`; a step: batch {} x {} phases ({est} estimator) x ({} burn-in + {} readout) sweeps; couplings, buses and biases trained.\n",
        st.batch,
        st.phases_per_example(),
        st.budget.burn_in,
        st.budget.sweeps
    );
    let mut cmd = String::from("thermo energy");
    if a.random {
        let _ = write!(cmd, " --random --random-seed {}", a.random_seed);
    } else {
        let _ = write!(cmd, " --config {}", a.config.display());
    }
    let _ = write!(
        cmd,
        " --burn-in {} --sweeps {} --batch {}",
        st.budget.burn_in, st.budget.sweeps, st.batch
    );
    let _ = writeln!(
        o,
        "Command: `{cmd}` (with `--md`/`--json` to write these files).\n"
    );
    let _ = writeln!(o, "## Counts per step\n");
    let _ = writeln!(o, "| quantity | per sweep | per step |");
    let _ = writeln!(o, "|---|---|---|");
    let p = &r.per_sweep;
    let _ = writeln!(o, "| phases (RUNs) | | {} |", c.phases);
    let _ = writeln!(o, "| sweeps | 1 | {} |", c.sweeps);
    let _ = writeln!(
        o,
        "| unit updates | {} | {} |",
        p.unit_updates, c.unit_updates
    );
    let _ = writeln!(
        o,
        "| coupling MACs | {} | {} |",
        p.coupling_macs, c.coupling_macs
    );
    let _ = writeln!(o, "| bus MACs | {} | {} |", p.bus_macs, c.bus_macs);
    let _ = writeln!(o, "| readouts (unit averages) | | {} |", c.readouts);
    let _ = writeln!(
        o,
        "| gradient MACs (digital periphery) | | {} |",
        c.gradient_macs
    );
    let _ = writeln!(
        o,
        "| weight writes (stored codes) | | {} |",
        c.weight_writes
    );
    let _ = writeln!(
        o,
        "| link bytes (host to board + back) | | {} ({sent} + {received}) |",
        c.link_bytes.unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "| board cycles | {} | {} |",
        r.cycles_per_sweep, r.fpga_cycles
    );
    let g = &r.gpu_flops;
    let _ = writeln!(
        o,
        "| GPU FLOPs: direct solve / feed-forward dense skips / low-rank skips | | {:.3e} / {:.3e} / {:.3e} |",
        g.direct_solve, g.feedforward_dense_skip, g.feedforward_low_rank
    );
    let an = r.analog_joules();
    let _ = writeln!(o, "\n## Energy per step\n");
    let _ = writeln!(
        o,
        "| | kind | energy / step | time / step | / analog | how |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.3e} | {} |",
            row.name,
            row.kind,
            si(row.joules, "J"),
            si(row.seconds, "s"),
            row.joules / an,
            row.how
        );
    }
    let _ = writeln!(
        o,
        "\nCPU rows: wall time measured in this process on this machine (median of {} steps; {} thread(s); the machine is shared, so the times vary with its load). FPGA row: the cycle model (`thermo_sim::schedule`, {} cycles a sweep on {} lanes, plus the run sequencer's set-up and copy per RUN) at {:.2} MHz, the link bytes measured against the board model at {} bit/s, times an assumed board power; reference build {board}. Analog and GPU rows are projections from the assumptions below.\n",
        a.reps,
        r.cpu.threads,
        r.cycles_per_sweep,
        s.lanes,
        r.assumptions.clock_hz / 1e6,
        r.assumptions.baud,
    );
    let ac = &r.analog;
    let _ = writeln!(o, "## Analog projection\n");
    let _ = writeln!(
        o,
        "Per unit update `eta C_node V_dd V_swing` = {}; per coupling or bus MAC `eta C_coupling V_dd V_swing` = {} (eta = {:.4}). A phase is `(burn_in + sweeps) eta` = {:.1} time constants tau ({} at tau = {}), i.e. {:.1} slowest relaxation times `1/lambda_min` (lambda_min = {:.4}); reaching one state LSB from state 0 takes at least ln(1/lsb) = {:.1} relaxation times, so the emulation's budget is {:.1}x that.\n",
        si(ac.unit_update, "J"),
        si(ac.mac, "J"),
        s.eta,
        st.sweeps_per_phase() as f64 * s.eta,
        si(ac.phase_seconds, "s"),
        si(r.assumptions.tau, "s"),
        ac.phase_relaxation_times,
        s.lambda_min,
        ac.settle_relaxation_times,
        ac.phase_relaxation_times / ac.settle_relaxation_times
    );
    let _ = writeln!(o, "| part | energy / step | share |");
    let _ = writeln!(o, "|---|---|---|");
    for (name, e) in &r.analog_parts {
        let _ = writeln!(o, "| {name} | {} | {:.1}% |", si(*e, "J"), 100.0 * e / an);
    }
    let relax = r.analog_relaxation_joules();
    let _ = writeln!(
        o,
        "\nThe relaxation alone (unit updates and MACs) is {}: GPU direct solve / relaxation = {:.3e}, GPU low-rank FLOP-bound / relaxation = {:.3e}, CPU EqProp / relaxation = {:.3e}.",
        si(relax, "J"),
        r.row("GPU, exact gradient by direct solve").map_or(f64::NAN, |x| x.joules) / relax,
        r.row(energy::GPU_FLOPS).map_or(f64::NAN, |x| x.joules) / relax,
        r.rows[0].joules / relax,
    );
    let _ = writeln!(o, "\n## Sensitivity (each assumption alone /10 and x10)\n");
    let cpu_name = if r.cpu.exact_seconds.is_some() {
        "CPU exact gradient / analog"
    } else {
        "CPU EqProp / analog"
    };
    let _ = writeln!(
        o,
        "| assumption | GPU low-rank FLOP-bound / analog: default, /10, x10 | GPU latency-bound / analog | {cpu_name} |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for x in sens {
        let _ = writeln!(
            o,
            "| {} | {:.3e}, {:.3e}, {:.3e} | {:.3e}, {:.3e}, {:.3e} | {:.3e}, {:.3e}, {:.3e} |",
            x.assumption,
            x.gpu_over_analog[0],
            x.gpu_over_analog[1],
            x.gpu_over_analog[2],
            x.gpu_latency_over_analog[0],
            x.gpu_latency_over_analog[1],
            x.gpu_latency_over_analog[2],
            x.cpu_over_analog[0],
            x.cpu_over_analog[1],
            x.cpu_over_analog[2]
        );
    }
    let _ = writeln!(o, "\n## Assumptions\n");
    let _ = writeln!(o, "| flag | value | basis |");
    let _ = writeln!(o, "|---|---|---|");
    for x in &Assumption::ALL {
        let _ = writeln!(
            o,
            "| --{} | {} {} | {} |",
            x.name,
            num(x.get(&r.assumptions)),
            x.unit,
            x.basis
        );
    }
    o
}

/// Run the energy command.
pub fn run(c: EnergyCommand) -> Result<(), String> {
    match c {
        EnergyCommand::Energy(a) => run_energy(a),
    }
}

/// What `--inference` runs: the engine substrate, where it came from, the clamped model (if
/// any) and its U-Net.
struct InferenceSubject {
    s: Substrate,
    source: String,
    clamped: Option<(
        thermo_diffusion::clamped::ClampedModel,
        thermo_diffusion::Unet,
    )>,
}

impl EnergyArgs {
    fn inference_subject(&self) -> Result<InferenceSubject, String> {
        let Some(p) = &self.substrate else {
            let (s, source) = self.substrate()?;
            return Ok(InferenceSubject {
                s,
                source,
                clamped: None,
            });
        };
        if self.random {
            return Err("--random and --substrate: give one substrate".into());
        }
        let m = thermo_diffusion::clamped::ClampedModel::load(p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p
            .file_stem()
            .map_or("clamped".into(), |n| n.to_string_lossy().to_string());
        let s = m
            .engine_substrate(&name)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let unet = thermo_diffusion::io::load(&self.unet)
            .map_err(|e| format!("--unet {}: {e}", self.unet.display()))?;
        if unet.config != m.unet {
            return Err(format!(
                "--unet {}: its architecture differs from the one {} was compiled from",
                self.unet.display(),
                p.display()
            ));
        }
        Ok(InferenceSubject {
            s,
            source: p.display().to_string(),
            clamped: Some((m, unet)),
        })
    }
}

/// Bytes on the link per sample: one sampler step's calls of the whole batch go to the board as
/// one `thermo_host::inference::infer` (attach, then SET_CONDITIONING, RUN and READOUT per
/// call), here against the board model in memory. Measured for one call and for `n` calls of
/// different conditioning; per sample: `calls x (per call + (one call's infer - per call) /
/// batch)`. Returns (bytes per sample, bytes per call, bytes of the attach per step).
fn link_bytes_per_sample(
    s: &Substrate,
    conds: &[Vec<f64>],
    ss: &energy::SampleSettings,
) -> Result<(u64, f64, f64), String> {
    use thermo_host::client::Client;
    use thermo_host::inference::{infer, InferOptions};
    use thermo_host::memboard::MemoryBoard;
    let opts = InferOptions {
        sweeps: ss.run.sweeps,
        burn_in: ss.run.burn_in,
        seed: 1,
    };
    let bytes = |inputs: &[Vec<f64>]| -> Result<u64, String> {
        let mut c = Client::new(MemoryBoard::new(s.clone()));
        infer(&mut c, s, inputs, opts, |_, _, _| {})?;
        Ok(c.stats.bytes_sent + c.stats.bytes_received)
    };
    if conds.len() < 2 {
        return Err("the link measurement needs at least two conditioning vectors".into());
    }
    let one = bytes(&conds[..1])? as f64;
    let all = bytes(conds)? as f64;
    let per_call = (all - one) / (conds.len() - 1) as f64;
    let attach = one - per_call;
    let per_sample = ss.calls as f64 * (per_call + attach / ss.batch as f64);
    Ok((per_sample.round() as u64, per_call, attach))
}

#[derive(Serialize)]
struct JsonSampleReport<'a> {
    source: &'a str,
    fpga_reference: &'a str,
    report: &'a energy::SampleReport,
    sensitivity: &'a [energy::SampleSensitivity],
    link_bytes_per_call: f64,
    link_bytes_attach_per_step: f64,
}

fn run_inference(a: EnergyArgs) -> Result<(), String> {
    let (assumptions, board, build_hash, build_lanes) = a.assumptions()?;
    let mut subj = a.inference_subject()?;
    on_build_lanes(&mut subj.s, &build_hash, build_lanes);
    let s = &subj.s;
    let board = reference_note(&board, &build_hash, s);
    let calibrated = subj
        .clamped
        .as_ref()
        .and_then(|(m, _)| m.engine.as_ref().map(|c| c.run));
    let run = Budget {
        burn_in: a
            .burn_in
            .unwrap_or(calibrated.map_or(50, |r| r.burn_in as u32)),
        sweeps: a
            .sweeps
            .unwrap_or(calibrated.map_or(200, |r| r.sweeps as u32)),
    };
    let ss = energy::SampleSettings {
        run,
        calls: a.steps as u64,
        readout_units: readout_units(s).len() as u64,
        conditioning_units: s.units() as u64,
        periphery_macs: subj
            .clamped
            .as_ref()
            .map_or(0, |(m, _)| m.digital().macs as u64),
        batch: a.batch.unwrap_or(64),
    };
    let mut counts = energy::sample_counts(s, &ss)?;
    let threads = a.threads.max(1);
    // Conditioning vectors of real calls: pure noise at the schedule's levels for a clamped
    // substrate (its biases), the substrate's own bias otherwise.
    let conds: Vec<Vec<f64>> = match &subj.clamped {
        Some((m, _)) => {
            let sig = thermo_diffusion::sample::karras_sigmas(
                ss.calls as usize,
                m.unet.sigma_min,
                m.unet.sigma_max,
                7.0,
            );
            let mut r = SplitDraws(a.sample_seed);
            let picks: Vec<f32> = (0..5).map(|k| sig[k * (sig.len() - 2) / 4]).collect();
            let xs: Vec<Vec<f32>> = picks
                .iter()
                .map(|&sg| (0..m.unet.input).map(|_| sg * r.normal() as f32).collect())
                .collect();
            let b = m.biases(&xs, &picks);
            (0..b.ncols())
                .map(|c| b.column(c).iter().copied().collect())
                .collect()
        }
        None => vec![s.bias.clone(); 5],
    };
    let (link_sample, link_call, link_attach) = link_bytes_per_sample(s, &conds, &ss)?;
    counts.link_bytes = Some(link_sample);
    let reference;
    let (engine_seconds, rapl_engine, ref_seconds, rapl_ref) = match &subj.clamped {
        Some((m, unet)) => {
            let erun = thermo_diffusion::clamped::EngineRun {
                burn_in: run.burn_in as u64,
                sweeps: run.sweeps as u64,
            };
            let (t, w) = with_rapl(|| {
                let t0 = std::time::Instant::now();
                m.sample(
                    thermo_diffusion::clamped::Path::Fixed,
                    ss.batch,
                    a.steps,
                    a.sample_seed,
                    &erun,
                    threads,
                )?;
                Ok(t0.elapsed().as_secs_f64() / ss.batch as f64)
            })?;
            let (tu, wu) = with_rapl(|| {
                let t0 = std::time::Instant::now();
                thermo_diffusion::sample::sample_ancestral_batch(
                    &unet.config,
                    ss.batch,
                    a.steps,
                    a.sample_seed,
                    |_, xs, sigma| Ok(xs.iter().map(|x| unet.denoise(x, sigma)).collect()),
                )?;
                Ok(t0.elapsed().as_secs_f64() / ss.batch as f64)
            })?;
            reference = energy::DigitalReference {
                name: format!("U-Net {}", a.unet.display()),
                macs_per_call: unet.config.macs_per_call() as f64,
            };
            (t, w, Some(tu), wu)
        }
        None => {
            let (t, w) = with_rapl(|| energy::time_engine_sample(s, &ss, &s.bias, threads))?;
            reference = energy::DigitalReference {
                name: "feed-forward pass of the substrate's weights (low-rank skips)".into(),
                macs_per_call: energy::FeedForwardMacs::of(s).low_rank,
            };
            (t, w, None, None)
        }
    };
    let cpu = energy::SampleCpu {
        engine_seconds,
        reference_seconds: ref_seconds,
        threads,
        rapl_watts_engine: rapl_engine,
        rapl_watts_reference: rapl_ref,
    };
    let report = energy::SampleReport::new(s, &ss, counts, cpu, reference.clone(), &assumptions)?;
    let sens = energy::sample_sensitivity(s, &ss, counts, cpu, &reference, &assumptions)?;
    let md = render_inference(&a, &subj, &board, &report, &sens, link_call, link_attach);
    print!("{md}");
    if let Some(p) = &a.md {
        write(p, &md)?;
        println!("\nwrote {}", p.display());
    }
    if let Some(p) = &a.json {
        let j = JsonSampleReport {
            source: &subj.source,
            fpga_reference: &board,
            report: &report,
            sensitivity: &sens,
            link_bytes_per_call: link_call,
            link_bytes_attach_per_step: link_attach,
        };
        write(
            p,
            &serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?,
        )?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn render_inference(
    a: &EnergyArgs,
    subj: &InferenceSubject,
    board: &str,
    r: &energy::SampleReport,
    sens: &[energy::SampleSensitivity],
    link_call: f64,
    link_attach: f64,
) -> String {
    let s = &subj.s;
    let ss = &r.settings;
    let c = &r.counts;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Energy per generated sample: {} ({} units, {} lanes, {:?} units)\n",
        s.name,
        s.units(),
        s.lanes,
        s.activation
    );
    let what = if subj.clamped.is_some() {
        "the digital periphery (input drive, noise-level table, head) around each call"
    } else {
        "no digital periphery"
    };
    let _ = writeln!(
        o,
        "Substrate `{}`; a sample: {} Euler-ancestral steps, each one denoiser call = one RUN of {} burn-in + {} averaged sweeps from state zero, {} units read out, with {what}; {} samples drawn together.\n",
        subj.source, ss.calls, ss.run.burn_in, ss.run.sweeps, ss.readout_units, ss.batch
    );
    let mut cmd = String::from("thermo energy --inference");
    match (&a.substrate, a.random) {
        (Some(p), _) => {
            let _ = write!(
                cmd,
                " --substrate {} --unet {}",
                p.display(),
                a.unet.display()
            );
        }
        (None, true) => {
            let _ = write!(cmd, " --random --random-seed {}", a.random_seed);
        }
        (None, false) => {
            let _ = write!(cmd, " --config {}", a.config.display());
        }
    }
    let _ = write!(
        cmd,
        " --steps {} --burn-in {} --sweeps {} --batch {}",
        ss.calls, ss.run.burn_in, ss.run.sweeps, ss.batch
    );
    let _ = writeln!(
        o,
        "Command: `{cmd}` (with `--md`/`--json` to write these files).\n"
    );
    let _ = writeln!(o, "## Counts per sample\n");
    let _ = writeln!(o, "| quantity | per sweep | per call | per sample |");
    let _ = writeln!(o, "|---|---|---|---|");
    let p = &r.per_sweep;
    let spc = ss.sweeps_per_call();
    let _ = writeln!(o, "| denoiser calls (RUNs) | | 1 | {} |", c.calls);
    let _ = writeln!(o, "| sweeps | 1 | {spc} | {} |", c.sweeps);
    for (name, per, tot) in [
        ("unit updates", p.unit_updates, c.unit_updates),
        ("coupling MACs", p.coupling_macs, c.coupling_macs),
        ("bus MACs", p.bus_macs, c.bus_macs),
    ] {
        let _ = writeln!(o, "| {name} | {per} | {} | {tot} |", per * spc);
    }
    let _ = writeln!(
        o,
        "| readouts (unit averages) | | {} | {} |",
        ss.readout_units, c.readouts
    );
    let _ = writeln!(
        o,
        "| conditioning writes (bias entries) | | {} | {} |",
        ss.conditioning_units, c.conditioning_writes
    );
    let _ = writeln!(
        o,
        "| digital periphery MACs | | {} | {} |",
        ss.periphery_macs, c.periphery_macs
    );
    let _ = writeln!(
        o,
        "| link bytes (host to board + back) | | {link_call:.1} + {:.1} attach per step / batch | {} |",
        link_attach,
        c.link_bytes.unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "| board cycles | {} | {} | {} |",
        r.cycles_per_sweep,
        r.fpga_cycles / c.calls,
        r.fpga_cycles
    );
    let _ = writeln!(
        o,
        "| digital reference MACs ({}) | | {} | {} |",
        r.reference.name,
        r.reference.macs_per_call,
        r.reference.macs_per_call * c.calls as f64
    );
    let an = r.analog_joules();
    let cpu_ref = r
        .row(energy::SAMPLE_CPU_REFERENCE)
        .or_else(|| r.row(energy::SAMPLE_CPU_ENGINE))
        .map_or(f64::NAN, |x| x.joules);
    let cpu_ref_name = if r.row(energy::SAMPLE_CPU_REFERENCE).is_some() {
        "/ CPU U-Net"
    } else {
        "/ CPU engine"
    };
    let _ = writeln!(o, "\n## Energy per sample\n");
    let _ = writeln!(
        o,
        "| | kind | energy / sample | time / sample | / analog | {cpu_ref_name} | how |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.3e} | {:.3e} | {} |",
            row.name,
            row.kind,
            si(row.joules, "J"),
            si(row.seconds, "s"),
            row.joules / an,
            row.joules / cpu_ref,
            row.how
        );
    }
    let _ = writeln!(
        o,
        "\nFPGA rows (**derived**): the cycle model (`thermo_sim::schedule`, {} cycles a sweep on {} lanes, plus the run sequencer's set-up and copy of the {} readout units per RUN) at {:.2} MHz, plus the link's line time for the bytes measured against the board model (`thermo_host::inference::infer` through `thermo_host::memboard`) at {} bit/s, 10 bits a byte, in series with the compute (an upper bound: the board's slots can overlap them); the digital periphery runs on the host and is not in these rows. Board power: `--board-watts` {} W is an assumption (not measured); the second row uses the ULX3S manual's supply budget, 5 V x 0.5 A = {} W \"for fully loaded and constantly active FPGA, SDRAM, LEDS, AUDIO, SD, ESP32 WiFi and OLED\" (github.com/emard/ulx3s, doc/MANUAL.md, section Power), an upper bound for the board; no vendor power estimate for this design or published measurement of the ULX3S was found. Reference build {board}.\n",
        r.cycles_per_sweep,
        s.lanes,
        ss.readout_units,
        r.assumptions.clock_hz / 1e6,
        r.assumptions.baud,
        r.assumptions.board_watts,
        energy::ULX3S_SUPPLY_BUDGET_WATTS,
    );
    let _ = writeln!(
        o,
        "CPU rows (**measured**): wall time in this process on this machine for {} samples drawn together, divided by {}; {} thread(s); the machine is shared, so the times vary with its load. The fixed engine row {}. Analog and GPU rows are **projected** from the assumptions below (the GPU rows: the digital reference's `2 x MACs` FLOPs per call; the latency-bound row charges the full GPU power for max(FLOP time of the batch's call, `--gpu-step-floor`) per sampler step, shared by the batch).\n",
        ss.batch,
        ss.batch,
        r.cpu.threads,
        if subj.clamped.is_some() {
            "is `ClampedModel::sample` on the bit-exact engine (the batch's calls on the batched engine, biases and head included); the U-Net row is `sample_ancestral_batch` with the U-Net's denoiser, the same sampler and schedule"
        } else {
            "is the batch's RUNs on the batched bit-exact engine, one per sampler step (no periphery); there is no U-Net for this substrate, so the digital reference is projected only"
        }
    );
    let ac = &r.analog;
    let _ = writeln!(o, "## Analog projection\n");
    let _ = writeln!(
        o,
        "Per unit update `eta C_node V_dd V_swing` = {}; per coupling or bus MAC `eta C_coupling V_dd V_swing` = {} (eta = {:.4}). A call is `(burn_in + sweeps) eta` = {:.1} time constants tau ({} at tau = {}), {:.1} slowest relaxation times `1/lambda_min` (lambda_min = {:.4}). Every readout is one ADC conversion, every conditioning entry one DAC write, the periphery's MACs digital.\n",
        si(ac.unit_update, "J"),
        si(ac.mac, "J"),
        s.eta,
        spc as f64 * s.eta,
        si(ac.phase_seconds, "s"),
        si(r.assumptions.tau, "s"),
        ac.phase_relaxation_times,
        s.lambda_min,
    );
    let _ = writeln!(o, "| part | energy / sample | share |");
    let _ = writeln!(o, "|---|---|---|");
    for (name, e) in &r.analog_parts {
        let _ = writeln!(o, "| {name} | {} | {:.1}% |", si(*e, "J"), 100.0 * e / an);
    }
    let _ = writeln!(o, "\n## Sensitivity (each assumption alone /10 and x10)\n");
    let _ = writeln!(
        o,
        "| assumption | GPU FLOP-bound / analog: default, /10, x10 | CPU {} / analog | FPGA (assumed power) / analog |",
        if r.cpu.reference_seconds.is_some() { "U-Net" } else { "fixed engine" }
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for x in sens {
        let f = |v: &[f64; 3]| format!("{:.3e}, {:.3e}, {:.3e}", v[0], v[1], v[2]);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            x.assumption,
            f(&x.gpu_over_analog),
            f(&x.cpu_over_analog),
            f(&x.fpga_over_analog)
        );
    }
    let _ = writeln!(o, "\n## Assumptions\n");
    let _ = writeln!(o, "| flag | value | basis |");
    let _ = writeln!(o, "|---|---|---|");
    for x in &Assumption::ALL {
        let _ = writeln!(
            o,
            "| --{} | {} {} | {} |",
            x.name,
            num(x.get(&r.assumptions)),
            x.unit,
            x.basis
        );
    }
    o
}
