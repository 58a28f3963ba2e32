//! `thermo energy`: energy per EqProp training step on this machine's CPU (measured), on the FPGA
//! emulation (cycle model), on an analog substrate and on a GPU (projections), with the ratios
//! and their sensitivity to each assumption. The accounting is `thermo_sim::energy`; the link
//! bytes come from `thermo_host::memboard`; this module parses, measures, prints and writes.

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
    /// sensitivity to each assumption (x10 and /10).
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
    /// Burn-in sweeps per phase.
    #[arg(long, default_value_t = 100)]
    burn_in: u32,
    /// Readout sweeps per phase.
    #[arg(long, default_value_t = 400)]
    sweeps: u32,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
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

impl EnergyArgs {
    /// The assumptions: defaults, the reference build's clock and baud, then the flags.
    fn assumptions(&self) -> Result<(Assumptions, String), String> {
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
            "{} ({}, {} lanes, {} units)",
            v["board"].as_str().unwrap_or("?"),
            v["device"].as_str().unwrap_or("?"),
            v["lanes"],
            v["units"]
        );
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
        Ok((a, board))
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
    let (assumptions, board) = a.assumptions()?;
    if !(a.beta.is_finite() && a.beta > 0.0) {
        return Err(format!("--beta {}: must be finite and > 0", a.beta));
    }
    let (s, source) = a.substrate()?;
    let st = StepSettings {
        budget: Budget {
            burn_in: a.burn_in,
            sweeps: a.sweeps,
        },
        batch: a.batch,
        estimator: match a.estimator {
            EstimatorArg::OneSided => Estimator::OneSided,
            EstimatorArg::Symmetric => Estimator::Symmetric,
        },
        groups: Groups::WEIGHTS,
    };
    let mut counts = energy::counts(&s, &st)?;
    let ex = examples(&s, a.batch, a.task_seed)?;
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
        a.burn_in, a.sweeps, a.batch
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
        "\nCPU rows: wall time measured in this process on this machine (median of {} steps; {} thread(s); the machine is shared, so the times vary with its load). FPGA row: the cycle model (`thermo_sim::schedule`, {} cycles a sweep on {} lanes, plus the run sequencer's set-up and copy per RUN) at {:.2} MHz, the link bytes measured against the board model at {} bit/s, times an assumed board power; reference build {board}{}. Analog and GPU rows are projections from the assumptions below.\n",
        a.reps,
        r.cpu.threads,
        r.cycles_per_sweep,
        s.lanes,
        r.assumptions.clock_hz / 1e6,
        r.assumptions.baud,
        if s.units() != 64 || s.lanes != 4 {
            " (built for the 64-unit shipped example on 4 lanes: this substrate has no reference build, its clock is assumed equal)"
        } else {
            " (the shipped example's build; another 64-unit substrate on 4 lanes is assumed to reach the same clock)"
        }
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
