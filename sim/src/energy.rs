//! Energy per EqProp training step: what one step does (counts), what it costs on this machine's
//! CPU (measured wall time times a power), on the FPGA emulation (cycles from the sweep schedule at
//! a clock, times a board power), on an analog substrate (a projection from stated physical
//! assumptions) and on a GPU running a digital step of the same model (FLOPs over a stated
//! efficiency). `thermo energy` prints it; `docs/eqprop.md` §8 has the formulas.
//!
//! # A step
//!
//! One training step of [`crate::eqprop::train`] on a batch of `batch` examples runs, per
//! example, a free phase and one (`OneSided`) or two (`Symmetric`) bias-nudged phases, each
//! `burn_in + sweeps` sweeps of the whole substrate. Per sweep ([`crate::schedule::Schedule`]
//! counts the same MACs):
//!
//! - **unit updates**: one per unit (self term, bias, noise, write-back);
//! - **coupling MACs**: one per stored off-diagonal coupling entry (`nnz`, both directions of a
//!   pair: each unit reads its own row);
//! - **bus MACs**: a rank-`k` bus side of `n` units sums its line in `k n` MACs, and each of its
//!   units reads the `k` lines back (`k` MACs): `2 k (n_enc + n_dec)` per bus.
//!
//! Per phase every unit's average is read out once (**readouts**). The digital periphery forms
//! the estimate (**gradient MACs**: per example, for each of the two phases the estimator
//! differences, one product per trained coupling pair, the bus sums `k (n_enc + n_dec)` and two
//! products per bus factor plus one per gain when buses are trained, one square per unit when
//! stiffness is trained; then one multiply-add per trained parameter into the batch mean), and
//! the update writes every trained stored code (**weight writes**: biases, both CSR entries of a
//! coupling pair, bus gains and factors, stiffness). **Link bytes** are measured by the caller
//! (the host's protocol client against the board model: `thermo_host::memboard`).
//!
//! # Energy models
//!
//! - **Analog** (projection): a unit is a node of capacitance `C_node` relaxing with time
//!   constant `tau` (stiffness 1); one Euler step of the digital update `x <- x - eta (A x - b)`
//!   is `eta tau` of analog time. Relaxing a node through a swing `V_swing` draws the charge
//!   `C V_swing` from the supply `V_dd` once per time constant, so a unit costs `C_node V_dd
//!   V_swing` per `tau` and a coupling (or bus) element, a transconductor with load `C_coupling`,
//!   `C_coupling V_dd V_swing` per `tau`. Per digital unit update (one `eta tau`):
//!   `e_unit = eta C_node V_dd V_swing`, per coupling MAC `e_mac = eta C_coupling V_dd V_swing`.
//!   A phase lasts as long as the emulation's (`(burn_in + sweeps) eta tau`); the noise is the
//!   circuit's own (free). Readouts cost one ADC conversion each (`E_adc`, the average formed by
//!   an integrator), weight writes one DAC write each (`E_write`), gradient MACs `E_mac,digital`
//!   each. `E_analog = unit_updates e_unit + (coupling + bus MACs) e_mac + readouts E_adc +
//!   weight_writes E_write + gradient_macs E_mac,digital`.
//! - **FPGA emulation** (derived): each phase is one RUN: `(burn_in + sweeps) cycles_per_sweep`
//!   plus the run sequencer's set-up and copy ([`run_overhead_cycles`]); time = cycles / clock,
//!   plus the link's line time (10 bits a byte at the baud rate), both at the board's power.
//! - **CPU** (measured): wall time of a step ([`time_eqprop_step`], [`time_exact_step`]) times
//!   the CPU's power (RAPL when readable, else cores times an assumed power per core).
//! - **GPU** (projection): FLOPs of a digital training step of the same model ([`GpuFlops`]) times
//!   `W_gpu / (peak FLOP/s x utilisation)`.
//!
//! # A generated sample (inference)
//!
//! [`SampleReport`] does the same per generated sample: `calls` denoiser calls (one per sampler
//! step), each one RUN of `burn_in + sweeps` sweeps with a fresh conditioning vector (one DAC
//! write per bias entry on an analog substrate), the readout units read once, and the digital
//! periphery's MACs around it. The FPGA row is the cycle model per RUN plus the measured link
//! bytes; the CPU rows are measured per sample over a batch; the GPU rows project the FLOPs of a
//! digital model doing the same job ([`DigitalReference`]: the U-Net the substrate was compiled
//! from, or a feed-forward pass of the substrate's weights, [`FeedForwardMacs`]).

use crate::eqprop::{
    apply_step, guard, Budget, Estimator, Exact, Example, Grad, Groups, Nudge, PhaseRunner,
    Protocol, Rounding,
};
use crate::model::Substrate;
use crate::schedule::Schedule;
use serde::Serialize;

/// What one training step does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StepSettings {
    /// Sweeps per phase.
    pub budget: Budget,
    /// Examples per step.
    pub batch: usize,
    /// Estimator (symmetric: two nudged phases; one-sided: one).
    pub estimator: Estimator,
    /// Trained parameter groups.
    pub groups: Groups,
}

impl StepSettings {
    /// Check the settings; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        if self.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if self.budget.sweeps == 0 {
            return Err("sweeps per phase must be at least 1 (the readout averages them)".into());
        }
        Ok(())
    }

    /// Phases per example: the free phase and the nudged ones.
    pub fn phases_per_example(&self) -> u64 {
        match self.estimator {
            Estimator::Symmetric => 3,
            Estimator::OneSided => 2,
        }
    }

    /// Sweeps of one phase (burn-in and readout).
    pub fn sweeps_per_phase(&self) -> u64 {
        self.budget.burn_in as u64 + self.budget.sweeps as u64
    }
}

/// Per-sweep operations of a substrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SweepCounts {
    /// Unit updates.
    pub unit_updates: u64,
    /// Off-diagonal coupling MACs.
    pub coupling_macs: u64,
    /// Bus line sums and line reads.
    pub bus_macs: u64,
}

impl SweepCounts {
    /// The counts of one sweep of `s`.
    pub fn of(s: &Substrate) -> SweepCounts {
        let mut bus_macs = 0u64;
        for bus in &s.buses {
            let k = bus.rank() as u64;
            let n = (s.modules[bus.enc].size + s.modules[bus.dec].size) as u64;
            bus_macs += 2 * k * n;
        }
        SweepCounts {
            unit_updates: s.units() as u64,
            coupling_macs: s.nnz() as u64,
            bus_macs,
        }
    }
}

/// Operations of one training step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Counts {
    /// Phases (RUNs).
    pub phases: u64,
    /// Sweeps.
    pub sweeps: u64,
    /// Unit updates.
    pub unit_updates: u64,
    /// Off-diagonal coupling MACs.
    pub coupling_macs: u64,
    /// Bus MACs (line sums and reads).
    pub bus_macs: u64,
    /// Averaged unit values read out (every unit, every phase).
    pub readouts: u64,
    /// Multiply-adds of the digital periphery forming the batch gradient.
    pub gradient_macs: u64,
    /// Stored codes the update writes.
    pub weight_writes: u64,
    /// Bytes on the host link (both directions), when measured.
    pub link_bytes: Option<u64>,
}

/// Trained parameters (`pairs` counts a coupling pair once) and stored codes (both entries).
fn trained(s: &Substrate, g: Groups) -> (u64, u64) {
    let d = s.units() as u64;
    let mut params = 0u64;
    let mut codes = 0u64;
    if g.stiffness {
        params += d;
        codes += d;
    }
    if g.bias {
        params += d;
        codes += d;
    }
    if g.couplings {
        params += s.nnz() as u64 / 2;
        codes += s.nnz() as u64;
    }
    if g.buses {
        for bus in &s.buses {
            let k = bus.rank() as u64;
            let n = (s.modules[bus.enc].size + s.modules[bus.dec].size) as u64;
            params += k * (1 + n);
            codes += k * (1 + n);
        }
    }
    (params, codes)
}

/// The operations of one training step of `st` on `s` (link bytes left `None`).
pub fn counts(s: &Substrate, st: &StepSettings) -> Result<Counts, String> {
    st.check()?;
    let per = SweepCounts::of(s);
    let phases = st.batch as u64 * st.phases_per_example();
    let sweeps = phases * st.sweeps_per_phase();
    let d = s.units() as u64;
    let g = st.groups;
    let mut products = 0u64;
    if g.stiffness {
        products += d;
    }
    if g.couplings {
        products += s.nnz() as u64 / 2;
    }
    if g.buses {
        for bus in &s.buses {
            let k = bus.rank() as u64;
            let n = (s.modules[bus.enc].size + s.modules[bus.dec].size) as u64;
            products += k * n + k + 2 * k * n;
        }
    }
    let (params, codes) = trained(s, g);
    Ok(Counts {
        phases,
        sweeps,
        unit_updates: sweeps * per.unit_updates,
        coupling_macs: sweeps * per.coupling_macs,
        bus_macs: sweeps * per.bus_macs,
        readouts: phases * d,
        gradient_macs: st.batch as u64 * (2 * products + params),
        weight_writes: codes,
        link_bytes: None,
    })
}

/// Cycles of a RUN around its sweeps on the board (the run sequencer's set-up: 4 per unit, 3 per
/// taus88 seed word of each lane, 8; about 20 around the sweeps; the copy of the results: 5 per
/// readout unit, 2), as `thermo_hdl`'s run sequencer documents its latency. `readout_units` is
/// every unit for EqProp's all-unit readout.
pub fn run_overhead_cycles(units: u64, lanes: u64, readout_units: u64) -> u64 {
    4 * units + 3 * 3 * lanes + 8 + 20 + 5 * readout_units + 2
}

/// Board cycles of one step: every phase a RUN.
pub fn fpga_cycles(s: &Substrate, st: &StepSettings) -> Result<u64, String> {
    let c = counts(s, st)?;
    let sched = Schedule::new(s);
    let d = s.units() as u64;
    let per_run =
        st.sweeps_per_phase() * sched.cycles_per_sweep + run_overhead_cycles(d, s.lanes as u64, d);
    Ok(c.phases * per_run)
}

/// FLOPs of a digital training step of the same model on a GPU, three ways.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GpuFlops {
    /// What `--engine exact-gradient` computes: a dense Cholesky of `A` (`D^3 / 3`), per example
    /// two triangular solves forward (`m = A^-1 (b + c)`) and two backward (`q = A^-1 g`), `2 D^2`
    /// FLOPs each, and the gradient's products (2 FLOPs per trained parameter and bus sum).
    pub direct_solve: f64,
    /// One feed-forward pass of the same weights (each coupling pair once, every skip bus as a
    /// dense `n_dec x n_enc` block), forward and backward: `6 x MACs` per example.
    pub feedforward_dense_skip: f64,
    /// The same with the skips low rank (`k (n_enc + n_dec + 1)` MACs per bus).
    pub feedforward_low_rank: f64,
}

impl GpuFlops {
    /// The FLOPs of a step of `st` on `s`.
    pub fn of(s: &Substrate, st: &StepSettings) -> Result<GpuFlops, String> {
        st.check()?;
        let d = s.units() as f64;
        let b = st.batch as f64;
        let (params, _) = trained(s, st.groups);
        let mut bus_sums = 0.0;
        for bus in &s.buses {
            let k = bus.rank() as f64;
            let (ne, nd) = (
                s.modules[bus.enc].size as f64,
                s.modules[bus.dec].size as f64,
            );
            bus_sums += k * (ne + nd);
        }
        let direct =
            d * d * d / 3.0 + b * (4.0 * 2.0 * d * d + 2.0 * (params as f64 + 2.0 * bus_sums));
        let ff = FeedForwardMacs::of(s);
        Ok(GpuFlops {
            direct_solve: direct,
            feedforward_dense_skip: b * 6.0 * ff.dense_skip,
            feedforward_low_rank: b * 6.0 * ff.low_rank,
        })
    }
}

/// MACs of one forward pass of a feed-forward network with the substrate's weights: each
/// coupling pair once, one per unit (its self term), and every skip bus either as a dense
/// `n_dec x n_enc` block or low rank (`k (n_enc + n_dec + 1)`: both factors and the gains).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FeedForwardMacs {
    /// With dense skip blocks.
    pub dense_skip: f64,
    /// With low-rank skips.
    pub low_rank: f64,
}

impl FeedForwardMacs {
    /// The MACs of `s`.
    pub fn of(s: &Substrate) -> FeedForwardMacs {
        let d = s.units() as f64;
        let (mut dense_skip, mut low_rank) = (0.0, 0.0);
        for bus in &s.buses {
            let k = bus.rank() as f64;
            let (ne, nd) = (
                s.modules[bus.enc].size as f64,
                s.modules[bus.dec].size as f64,
            );
            dense_skip += ne * nd;
            low_rank += k * (ne + nd + 1.0);
        }
        let pairs = s.nnz() as f64 / 2.0;
        FeedForwardMacs {
            dense_skip: pairs + d + dense_skip,
            low_rank: pairs + d + low_rank,
        }
    }
}

/// The stated assumptions, each with a default and its basis in [`Assumption::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Assumptions {
    /// CPU power per busy core when RAPL is not readable (W).
    pub cpu_watts_per_core: f64,
    /// FPGA board power (W).
    pub board_watts: f64,
    /// FPGA clock (Hz).
    pub clock_hz: f64,
    /// Host link line rate (bit/s; 10 bits a byte).
    pub baud: f64,
    /// Analog unit node capacitance (F).
    pub node_capacitance: f64,
    /// Analog coupling element load capacitance (F).
    pub coupling_capacitance: f64,
    /// Analog supply (V).
    pub vdd: f64,
    /// Analog signal swing (V).
    pub swing: f64,
    /// Analog unit time constant (s).
    pub tau: f64,
    /// ADC energy per readout sample (J).
    pub adc_energy: f64,
    /// Energy per analog weight write (J).
    pub write_energy: f64,
    /// Energy per digital periphery MAC (J).
    pub digital_mac_energy: f64,
    /// GPU board power at full load (W).
    pub gpu_watts: f64,
    /// GPU peak throughput (FLOP/s).
    pub gpu_peak_flops: f64,
    /// Fraction of the GPU's peak the step reaches.
    pub gpu_utilisation: f64,
    /// Shortest time a GPU training step takes whatever its FLOPs (kernel launches) (s).
    pub gpu_step_floor: f64,
}

/// One assumption: its name (the CLI flag without `--`), default and basis.
pub struct Assumption {
    /// Flag name.
    pub name: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Why this default.
    pub basis: &'static str,
    get: fn(&Assumptions) -> f64,
    set: fn(&mut Assumptions, f64),
}

impl Assumption {
    /// The value in `a`.
    pub fn get(&self, a: &Assumptions) -> f64 {
        (self.get)(a)
    }
    /// Set the value in `a`.
    pub fn set(&self, a: &mut Assumptions, v: f64) {
        (self.set)(a, v)
    }

    /// Every assumption.
    pub const ALL: [Assumption; 16] = [
        Assumption {
            name: "cpu-watts-per-core",
            unit: "W",
            basis: "used only when RAPL is unreadable: a server core's share of its package TDP (about 200 W / 16 cores, rounded up)",
            get: |a| a.cpu_watts_per_core,
            set: |a, v| a.cpu_watts_per_core = v,
        },
        Assumption {
            name: "board-watts",
            unit: "W",
            basis: "the whole ULX3S board from USB (5 V x 200 mA); not measured",
            get: |a| a.board_watts,
            set: |a, v| a.board_watts = v,
        },
        Assumption {
            name: "clock-mhz",
            unit: "MHz",
            basis: "Fmax of the reference build (`--fpga-report`; named under the FPGA row)",
            get: |a| a.clock_hz / 1e6,
            set: |a, v| a.clock_hz = v * 1e6,
        },
        Assumption {
            name: "baud",
            unit: "bit/s",
            basis: "the reference build's UART",
            get: |a| a.baud,
            set: |a, v| a.baud = v,
        },
        Assumption {
            name: "node-capacitance",
            unit: "F",
            basis: "a small on-chip capacitor with its wiring (10 fF)",
            get: |a| a.node_capacitance,
            set: |a, v| a.node_capacitance = v,
        },
        Assumption {
            name: "coupling-capacitance",
            unit: "F",
            basis: "a coupling transconductor's load (2 fF), a fifth of a node",
            get: |a| a.coupling_capacitance,
            set: |a, v| a.coupling_capacitance = v,
        },
        Assumption {
            name: "vdd",
            unit: "V",
            basis: "analog supply of a recent CMOS node",
            get: |a| a.vdd,
            set: |a, v| a.vdd = v,
        },
        Assumption {
            name: "swing",
            unit: "V",
            basis: "signal swing a unit's state spans",
            get: |a| a.swing,
            set: |a, v| a.swing = v,
        },
        Assumption {
            name: "tau",
            unit: "s",
            basis: "unit time constant (sets the analog step time only, not its energy)",
            get: |a| a.tau,
            set: |a, v| a.tau = v,
        },
        Assumption {
            name: "adc-energy",
            unit: "J",
            basis: "one 10-bit SAR conversion at 1 fJ per conversion step (2^10 steps)",
            get: |a| a.adc_energy,
            set: |a, v| a.adc_energy = v,
        },
        Assumption {
            name: "write-energy",
            unit: "J",
            basis: "one DAC conversion into a weight's hold capacitor, as an ADC conversion",
            get: |a| a.write_energy,
            set: |a, v| a.write_energy = v,
        },
        Assumption {
            name: "digital-mac-energy",
            unit: "J",
            basis: "a 16-bit MAC with its operands from a small SRAM",
            get: |a| a.digital_mac_energy,
            set: |a, v| a.digital_mac_energy = v,
        },
        Assumption {
            name: "gpu-watts",
            unit: "W",
            basis: "an A100 SXM's board power limit",
            get: |a| a.gpu_watts,
            set: |a, v| a.gpu_watts = v,
        },
        Assumption {
            name: "gpu-peak-flops",
            unit: "FLOP/s",
            basis: "an A100's dense FP16 tensor-core peak",
            get: |a| a.gpu_peak_flops,
            set: |a, v| a.gpu_peak_flops = v,
        },
        Assumption {
            name: "gpu-utilisation",
            unit: "",
            basis: "30% of peak, a well-fed training job; a model this small at this batch reaches far less, so the GPU rows are lower bounds",
            get: |a| a.gpu_utilisation,
            set: |a, v| a.gpu_utilisation = v,
        },
        Assumption {
            name: "gpu-step-floor",
            unit: "s",
            basis: "a step of a few kernels launched as one CUDA graph (20 us); the latency-bound row draws the full board power for it, an upper estimate",
            get: |a| a.gpu_step_floor,
            set: |a, v| a.gpu_step_floor = v,
        },
    ];
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            cpu_watts_per_core: 15.0,
            board_watts: 1.0,
            clock_hz: 39.11e6,
            baud: 3e6,
            node_capacitance: 10e-15,
            coupling_capacitance: 2e-15,
            vdd: 0.8,
            swing: 0.2,
            tau: 1e-9,
            adc_energy: 1e-12,
            write_energy: 1e-12,
            digital_mac_energy: 1e-12,
            gpu_watts: 400.0,
            gpu_peak_flops: 312e12,
            gpu_utilisation: 0.3,
            gpu_step_floor: 20e-6,
        }
    }
}

impl Assumptions {
    /// Every value finite and > 0 (the utilisation at most 1); errors name the flag.
    pub fn check(&self) -> Result<(), String> {
        for a in &Assumption::ALL {
            let v = a.get(self);
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("--{} = {v}: must be finite and > 0", a.name));
            }
        }
        if self.gpu_utilisation > 1.0 {
            return Err(format!(
                "--gpu-utilisation = {}: a fraction of the peak, at most 1",
                self.gpu_utilisation
            ));
        }
        Ok(())
    }

    /// GPU energy per FLOP at the stated utilisation (J).
    pub fn gpu_joules_per_flop(&self) -> f64 {
        self.gpu_watts / (self.gpu_peak_flops * self.gpu_utilisation)
    }
}

/// The analog projection's per-operation energies.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AnalogCosts {
    /// Energy per unit update, `eta C_node V_dd V_swing` (J).
    pub unit_update: f64,
    /// Energy per coupling or bus MAC, `eta C_coupling V_dd V_swing` (J).
    pub mac: f64,
    /// Analog time of one phase, `(burn_in + sweeps) eta tau` (s).
    pub phase_seconds: f64,
    /// A phase's length in the slowest relaxation time `1 / lambda_min(A)` (in units of `tau`).
    pub phase_relaxation_times: f64,
    /// Relaxation times from state 0 to within one state LSB of a unit-scale equilibrium:
    /// `ln(1 / lsb)` (the burn-in a phase needs at least).
    pub settle_relaxation_times: f64,
}

impl AnalogCosts {
    /// The costs for `s` under `a`.
    pub fn of(s: &Substrate, st: &StepSettings, a: &Assumptions) -> AnalogCosts {
        Self::for_run(s, st.sweeps_per_phase(), a)
    }

    /// The costs for `s` under `a` with runs (phases, calls) of `sweeps` sweeps.
    pub fn for_run(s: &Substrate, sweeps: u64, a: &Assumptions) -> AnalogCosts {
        let per_tau_unit = a.node_capacitance * a.vdd * a.swing;
        let per_tau_mac = a.coupling_capacitance * a.vdd * a.swing;
        let t = sweeps as f64 * s.eta;
        AnalogCosts {
            unit_update: s.eta * per_tau_unit,
            mac: s.eta * per_tau_mac,
            phase_seconds: t * a.tau,
            phase_relaxation_times: t * s.lambda_min,
            settle_relaxation_times: (1.0 / s.formats.state.lsb()).ln(),
        }
    }
}

/// The name of the GPU row bounded by the step's latency.
pub const GPU_LATENCY: &str = "GPU, feed-forward low-rank, latency-bound";
/// The name of the GPU row bounded by its FLOPs (low-rank skips).
pub const GPU_FLOPS: &str = "GPU, feed-forward pass, low-rank skips";

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// What runs the step.
    pub name: String,
    /// `measured` (CPU), `derived` (FPGA: cycle model and assumed power), `projected`.
    pub kind: &'static str,
    /// Energy per step (J).
    pub joules: f64,
    /// Time per step (s).
    pub seconds: f64,
    /// How the figure was formed.
    pub how: String,
}

/// CPU wall times of one step, and how the CPU's power is known.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuMeasurement {
    /// Seconds per EqProp step on the fixed engine.
    pub eqprop_seconds: f64,
    /// Seconds per exact-gradient step (`None`: not measured, e.g. clamp units).
    pub exact_seconds: Option<f64>,
    /// Worker threads (cores busy).
    pub threads: usize,
    /// Measured package power during the EqProp steps (RAPL), if readable (W).
    pub rapl_watts_eqprop: Option<f64>,
    /// Measured package power during the exact-gradient steps (RAPL), if readable (W).
    pub rapl_watts_exact: Option<f64>,
}

/// Everything `thermo energy` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Substrate name.
    pub substrate: String,
    /// Units.
    pub units: usize,
    /// Step settings.
    pub settings: StepSettings,
    /// Operations per step.
    pub counts: Counts,
    /// Per sweep.
    pub per_sweep: SweepCounts,
    /// Board cycles per sweep ([`Schedule`]) and per step.
    pub cycles_per_sweep: u64,
    /// Board cycles per step.
    pub fpga_cycles: u64,
    /// GPU FLOPs.
    pub gpu_flops: GpuFlops,
    /// Analog per-operation costs.
    pub analog: AnalogCosts,
    /// Analog energy by part: units, MACs, readouts, writes, gradient (J).
    pub analog_parts: [(String, f64); 5],
    /// The assumptions used.
    pub assumptions: Assumptions,
    /// CPU measurement.
    pub cpu: CpuMeasurement,
    /// The rows: CPU EqProp, CPU exact gradient, FPGA, analog, three GPU rows.
    pub rows: Vec<Row>,
}

/// The CPU's power for a measured run: RAPL's package power when it was read, else `threads`
/// cores at the assumed per-core power; and how it was obtained.
fn cpu_power(rapl: Option<f64>, threads: usize, a: &Assumptions) -> (f64, String) {
    match rapl {
        Some(w) => (w, format!("RAPL package power {w:.1} W")),
        None => (
            threads as f64 * a.cpu_watts_per_core,
            format!(
                "{threads} core(s) x {} W (assumed; RAPL unreadable)",
                a.cpu_watts_per_core
            ),
        ),
    }
}

/// The analog projection's parts, named, in joules: `[unit updates, coupling and bus MACs,
/// readouts]` at the substrate's costs, then the writes (DAC) and the digital MACs of the
/// step or sample, each with its name.
fn analog_parts(
    analog: &AnalogCosts,
    a: &Assumptions,
    [unit_updates, macs, readouts]: [u64; 3],
    (writes_name, writes): (&str, u64),
    (digital_name, digital): (&str, u64),
) -> [(String, f64); 5] {
    [
        (
            "unit updates".to_string(),
            unit_updates as f64 * analog.unit_update,
        ),
        (
            "coupling and bus MACs".to_string(),
            macs as f64 * analog.mac,
        ),
        ("readouts (ADC)".to_string(), readouts as f64 * a.adc_energy),
        (writes_name.to_string(), writes as f64 * a.write_energy),
        (
            digital_name.to_string(),
            digital as f64 * a.digital_mac_energy,
        ),
    ]
}

impl Report {
    /// Form the report from counts (with link bytes), the CPU measurement and the assumptions.
    pub fn new(
        s: &Substrate,
        st: &StepSettings,
        counts: Counts,
        cpu: CpuMeasurement,
        a: &Assumptions,
    ) -> Result<Report, String> {
        a.check()?;
        let sched = Schedule::new(s);
        let fpga_cycles = fpga_cycles(s, st)?;
        let gpu_flops = GpuFlops::of(s, st)?;
        let analog = AnalogCosts::of(s, st, a);
        let c = &counts;
        let parts = analog_parts(
            &analog,
            a,
            [c.unit_updates, c.coupling_macs + c.bus_macs, c.readouts],
            ("weight writes (DAC)", c.weight_writes),
            ("gradient MACs (digital)", c.gradient_macs),
        );
        let analog_joules: f64 = parts.iter().map(|p| p.1).sum();
        let cpu_power = |rapl: Option<f64>| cpu_power(rapl, cpu.threads, a);
        let mut rows = Vec::new();
        let (w, how) = cpu_power(cpu.rapl_watts_eqprop);
        rows.push(Row {
            name: "CPU, EqProp on the fixed engine".into(),
            kind: "measured",
            joules: cpu.eqprop_seconds * w,
            seconds: cpu.eqprop_seconds,
            how: format!("wall time x {how}"),
        });
        if let Some(t) = cpu.exact_seconds {
            let (w, how) = cpu_power(cpu.rapl_watts_exact);
            rows.push(Row {
                name: "CPU, exact gradient (digital)".into(),
                kind: "measured",
                joules: t * w,
                seconds: t,
                how: format!("wall time x {how}"),
            });
        }
        let compute = fpga_cycles as f64 / a.clock_hz;
        let link = c.link_bytes.map_or(0.0, |b| b as f64 * 10.0 / a.baud);
        rows.push(Row {
            name: "FPGA emulation (board)".into(),
            kind: "derived",
            joules: (compute + link) * a.board_watts,
            seconds: compute + link,
            how: format!(
                "{fpga_cycles} cycles at {:.2} MHz ({compute:.3e} s) + link {link:.3e} s, x {} W",
                a.clock_hz / 1e6,
                a.board_watts
            ),
        });
        rows.push(Row {
            name: "analog substrate".into(),
            kind: "projected",
            joules: analog_joules,
            seconds: c.phases as f64 * analog.phase_seconds,
            how: "counts x per-operation energies (phases in series)".into(),
        });
        let jpf = a.gpu_joules_per_flop();
        for (name, f) in [
            (
                "GPU, exact gradient by direct solve",
                gpu_flops.direct_solve,
            ),
            (
                "GPU, feed-forward pass, dense skips",
                gpu_flops.feedforward_dense_skip,
            ),
            (GPU_FLOPS, gpu_flops.feedforward_low_rank),
        ] {
            rows.push(Row {
                name: name.into(),
                kind: "projected",
                joules: f * jpf,
                seconds: f / (a.gpu_peak_flops * a.gpu_utilisation),
                how: format!("{f:.3e} FLOP x {jpf:.2e} J/FLOP"),
            });
        }
        let t = (gpu_flops.feedforward_low_rank / (a.gpu_peak_flops * a.gpu_utilisation))
            .max(a.gpu_step_floor);
        rows.push(Row {
            name: GPU_LATENCY.into(),
            kind: "projected",
            joules: t * a.gpu_watts,
            seconds: t,
            how: format!(
                "max(FLOP time, {:.1e} s floor) x {} W",
                a.gpu_step_floor, a.gpu_watts
            ),
        });
        Ok(Report {
            substrate: s.name.clone(),
            units: s.units(),
            settings: *st,
            counts,
            per_sweep: SweepCounts::of(s),
            cycles_per_sweep: sched.cycles_per_sweep,
            fpga_cycles,
            gpu_flops,
            analog,
            analog_parts: parts,
            assumptions: *a,
            cpu,
            rows,
        })
    }

    /// The row named `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The analog row's energy.
    pub fn analog_joules(&self) -> f64 {
        self.analog_parts.iter().map(|p| p.1).sum()
    }

    /// The analog relaxation alone (unit updates and MACs: no readout, writes or periphery).
    pub fn analog_relaxation_joules(&self) -> f64 {
        self.analog_parts[0].1 + self.analog_parts[1].1
    }
}

/// How the GPU-to-analog and CPU-to-analog ratios move when one assumption is multiplied by 10
/// or divided by 10.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sensitivity {
    /// The assumption (flag name).
    pub assumption: &'static str,
    /// Ratio at the defaults, at `/10`, at `x10`: GPU (low-rank feed-forward, FLOP-bound) /
    /// analog.
    pub gpu_over_analog: [f64; 3],
    /// Same for the latency-bound GPU row.
    pub gpu_latency_over_analog: [f64; 3],
    /// Same for the CPU's exact-gradient step (or the EqProp step without one) / analog.
    pub cpu_over_analog: [f64; 3],
}

/// The sensitivity of the ratios to every assumption that enters the analog or GPU rows.
pub fn sensitivity(
    s: &Substrate,
    st: &StepSettings,
    counts: Counts,
    cpu: CpuMeasurement,
    a: &Assumptions,
) -> Result<Vec<Sensitivity>, String> {
    let ratios = |a: &Assumptions| -> Result<(f64, f64, f64), String> {
        let r = Report::new(s, st, counts, cpu, a)?;
        let an = r.analog_joules();
        let gpu = r.row(GPU_FLOPS).map_or(f64::NAN, |x| x.joules);
        let lat = r.row(GPU_LATENCY).map_or(f64::NAN, |x| x.joules);
        let cpu = r
            .row("CPU, exact gradient (digital)")
            .or_else(|| r.row("CPU, EqProp on the fixed engine"))
            .map_or(f64::NAN, |x| x.joules);
        Ok((gpu / an, cpu / an, lat / an))
    };
    let base = ratios(a)?;
    sweep_assumptions(
        a,
        &[
            "cpu-watts-per-core",
            "board-watts",
            "clock-mhz",
            "baud",
            "tau",
        ],
        ratios,
    )?
    .into_iter()
    .map(|(assumption, l, h)| {
        Ok(Sensitivity {
            assumption,
            gpu_over_analog: [base.0, l.0, h.0],
            gpu_latency_over_analog: [base.2, l.2, h.2],
            cpu_over_analog: [base.1, l.1, h.1],
        })
    })
    .collect()
}

/// Each assumption not in `skip`, with `ratios` at it divided by 10 and multiplied by 10 (the
/// GPU's utilisation capped at 1), the others at `a`.
fn sweep_assumptions<R>(
    a: &Assumptions,
    skip: &[&str],
    ratios: impl Fn(&Assumptions) -> Result<R, String>,
) -> Result<Vec<(&'static str, R, R)>, String> {
    let mut out = Vec::new();
    for x in Assumption::ALL.iter().filter(|x| !skip.contains(&x.name)) {
        let mut lo = *a;
        x.set(&mut lo, x.get(a) / 10.0);
        let mut hi = *a;
        let cap = if x.name == "gpu-utilisation" {
            1.0
        } else {
            f64::INFINITY
        };
        x.set(&mut hi, (x.get(a) * 10.0).min(cap));
        out.push((x.name, ratios(&lo)?, ratios(&hi)?));
    }
    Ok(out)
}

/// Wall time of one EqProp training step on the fixed engine (same-key phases, bias nudge, as
/// `thermo train-eqprop --engine fixed` runs them): the batch's phases on the batched engine,
/// the estimate, the rounded update and the guard. Median of `reps` steps, each on a fresh copy
/// of `s`, over `batch` (the examples, cycled).
pub fn time_eqprop_step(
    s: &Substrate,
    examples: &[Example],
    st: &StepSettings,
    beta: f64,
    threads: usize,
    reps: usize,
) -> Result<f64, String> {
    st.check()?;
    if examples.is_empty() {
        return Err("no examples".into());
    }
    let batch: Vec<&Example> = (0..st.batch)
        .map(|k| &examples[k % examples.len()])
        .collect();
    let mut times = Vec::new();
    for rep in 0..reps.max(1) {
        let mut s = s.clone();
        let mut runner =
            PhaseRunner::new(&s, Protocol::SameKey, st.budget, Nudge::Bias, rep as u64);
        let t0 = std::time::Instant::now();
        let phases = runner.phases_many(&s, &batch, beta, st.estimator, threads.max(1))?;
        let mut g = Grad::zeros(&s);
        let w = 1.0 / batch.len() as f64;
        for p in &phases {
            g.add_scaled(&p.estimate(&s, beta, st.estimator), w);
        }
        step(&mut s, &g, st.groups);
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// Wall time of one exact-gradient training step (`--engine exact-gradient`): factor `A`, the
/// closed-form gradient of every example, the rounded update and the guard. Median of `reps`.
/// Errors for clamp units (no closed form).
pub fn time_exact_step(
    s: &Substrate,
    examples: &[Example],
    st: &StepSettings,
    reps: usize,
) -> Result<f64, String> {
    st.check()?;
    if examples.is_empty() {
        return Err("no examples".into());
    }
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let mut s = s.clone();
        let t0 = std::time::Instant::now();
        let ex = Exact::new(&s)?;
        let mut g = Grad::zeros(&s);
        let w = 1.0 / st.batch as f64;
        for k in 0..st.batch {
            g.add_scaled(&ex.grad(&s, &examples[k % examples.len()]), w);
        }
        step(&mut s, &g, st.groups);
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// The update of a timed step: a small stochastically rounded step and the guard (its outcome
/// does not matter for the timing, only that it runs).
fn step(s: &mut Substrate, g: &Grad, groups: Groups) {
    let mut rng = 1u64;
    apply_step(s, g, 1e-3, groups, Rounding::Stochastic, &mut rng);
    let _ = guard(s, 0.0, 1.99);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Package energy counters (RAPL, microjoules) under `/sys/class/powercap`, summed over the
/// packages; `None` when none is readable.
pub fn rapl_microjoules() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/class/powercap").ok()?;
    let mut total = 0u64;
    let mut any = false;
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // packages only (intel-rapl:N), not their subzones (intel-rapl:N:M)
        if name.starts_with("intel-rapl:") && name.matches(':').count() == 1 {
            if let Ok(t) = std::fs::read_to_string(e.path().join("energy_uj")) {
                if let Ok(v) = t.trim().parse::<u64>() {
                    total += v;
                    any = true;
                }
            }
        }
    }
    any.then_some(total)
}

// ---------------------------------------------------------------------------------------------
// Energy per generated sample (inference)
// ---------------------------------------------------------------------------------------------

/// The ULX3S's supply budget (W): its manual (`emard/ulx3s`, `doc/MANUAL.md`, "Power") states
/// that 5 V at 0.5 A "should be enough for fully loaded and constantly active FPGA, SDRAM, LEDS,
/// AUDIO, SD, ESP32 WiFi and OLED". An upper bound on the whole board, not a measurement of this
/// design.
pub const ULX3S_SUPPLY_BUDGET_WATTS: f64 = 2.5;

/// What one generated sample does on the substrate: `calls` denoiser calls (one per sampler
/// step), each one RUN of `run.burn_in + run.sweeps` sweeps from state zero with a fresh
/// conditioning vector, read out once, plus the digital periphery around it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SampleSettings {
    /// Sweeps of one call (burn-in and averaged).
    pub run: Budget,
    /// Denoiser calls per sample.
    pub calls: u64,
    /// Units read out per call (their averages; the board's readout units).
    pub readout_units: u64,
    /// Bias entries written per call (the conditioning vector).
    pub conditioning_units: u64,
    /// Multiply-adds of the digital periphery per call (input drive, noise-level table, head).
    pub periphery_macs: u64,
    /// Samples drawn together (one call of each per sampler step): the GPU's batch, and the
    /// batch the CPU rows are timed on.
    pub batch: usize,
}

impl SampleSettings {
    /// Check the settings; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        if self.calls == 0 {
            return Err("steps (denoiser calls per sample) must be at least 1".into());
        }
        if self.run.sweeps == 0 {
            return Err("sweeps per call must be at least 1 (the readout averages them)".into());
        }
        if self.batch == 0 {
            return Err("batch (samples drawn together) must be at least 1".into());
        }
        Ok(())
    }

    /// Sweeps of one call.
    pub fn sweeps_per_call(&self) -> u64 {
        self.run.burn_in as u64 + self.run.sweeps as u64
    }
}

/// Operations of one generated sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SampleCounts {
    /// Denoiser calls (RUNs).
    pub calls: u64,
    /// Sweeps.
    pub sweeps: u64,
    /// Unit updates.
    pub unit_updates: u64,
    /// Off-diagonal coupling MACs.
    pub coupling_macs: u64,
    /// Bus MACs (line sums and reads).
    pub bus_macs: u64,
    /// Unit averages read out.
    pub readouts: u64,
    /// Bias entries written (conditioning).
    pub conditioning_writes: u64,
    /// Multiply-adds of the digital periphery.
    pub periphery_macs: u64,
    /// Bytes on the host link per sample (both directions), when measured.
    pub link_bytes: Option<u64>,
}

/// The operations of one sample of `ss` on `s` (link bytes left `None`).
pub fn sample_counts(s: &Substrate, ss: &SampleSettings) -> Result<SampleCounts, String> {
    ss.check()?;
    let per = SweepCounts::of(s);
    let sweeps = ss.calls * ss.sweeps_per_call();
    Ok(SampleCounts {
        calls: ss.calls,
        sweeps,
        unit_updates: sweeps * per.unit_updates,
        coupling_macs: sweeps * per.coupling_macs,
        bus_macs: sweeps * per.bus_macs,
        readouts: ss.calls * ss.readout_units,
        conditioning_writes: ss.calls * ss.conditioning_units,
        periphery_macs: ss.calls * ss.periphery_macs,
        link_bytes: None,
    })
}

/// Board cycles of one sample: every call one RUN (its sweeps and the run sequencer's set-up and
/// copy of the readout units).
pub fn fpga_sample_cycles(s: &Substrate, ss: &SampleSettings) -> Result<u64, String> {
    ss.check()?;
    let sched = Schedule::new(s);
    let per_run = ss.sweeps_per_call() * sched.cycles_per_sweep
        + run_overhead_cycles(s.units() as u64, s.lanes as u64, ss.readout_units);
    Ok(ss.calls * per_run)
}

/// The digital model a GPU would run instead: its name and multiply-adds per denoiser call
/// (2 FLOPs each).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DigitalReference {
    /// What it is (e.g. the U-Net the substrate was compiled from).
    pub name: String,
    /// MACs of one call.
    pub macs_per_call: f64,
}

/// CPU wall times per sample, and how the CPU's power is known.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SampleCpu {
    /// Seconds per sample on the fixed engine (the batch's calls on the batched engine, with the
    /// periphery), divided by the batch.
    pub engine_seconds: f64,
    /// Seconds per sample of the digital reference (`None`: not measured).
    pub reference_seconds: Option<f64>,
    /// Worker threads (cores busy).
    pub threads: usize,
    /// Measured package power during the engine's samples (RAPL), if readable (W).
    pub rapl_watts_engine: Option<f64>,
    /// Measured package power during the reference's samples (RAPL), if readable (W).
    pub rapl_watts_reference: Option<f64>,
}

/// The name of the FPGA row at the assumed board power.
pub const SAMPLE_FPGA: &str = "FPGA emulation (board), assumed power";
/// The name of the FPGA row at the board's stated supply budget.
pub const SAMPLE_FPGA_BUDGET: &str = "FPGA emulation (board), ULX3S supply budget";
/// The name of the CPU row of the fixed engine.
pub const SAMPLE_CPU_ENGINE: &str = "CPU, fixed engine";
/// The name of the CPU row of the digital reference.
pub const SAMPLE_CPU_REFERENCE: &str = "CPU, digital reference";
/// The name of the analog row.
pub const SAMPLE_ANALOG: &str = "analog substrate";
/// The name of the FLOP-bound GPU row.
pub const SAMPLE_GPU_FLOPS: &str = "GPU, digital reference, FLOP-bound";
/// The name of the latency-bound GPU row.
pub const SAMPLE_GPU_LATENCY: &str = "GPU, digital reference, latency-bound";

/// Everything `thermo energy --inference` reports.
#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    /// Substrate name.
    pub substrate: String,
    /// Units.
    pub units: usize,
    /// Sample settings.
    pub settings: SampleSettings,
    /// Operations per sample.
    pub counts: SampleCounts,
    /// Per sweep.
    pub per_sweep: SweepCounts,
    /// Board cycles per sweep ([`Schedule`]).
    pub cycles_per_sweep: u64,
    /// Board cycles per sample.
    pub fpga_cycles: u64,
    /// Board compute time per sample (s).
    pub fpga_compute_seconds: f64,
    /// Link line time per sample (s).
    pub fpga_link_seconds: f64,
    /// The digital reference.
    pub reference: DigitalReference,
    /// GPU FLOPs per sample of the reference (`2 x MACs x calls`).
    pub gpu_flops: f64,
    /// Analog per-operation costs (`phase_seconds`: one call).
    pub analog: AnalogCosts,
    /// Analog energy by part: units, MACs, readouts, conditioning writes, periphery (J).
    pub analog_parts: [(String, f64); 5],
    /// The assumptions used.
    pub assumptions: Assumptions,
    /// CPU measurement.
    pub cpu: SampleCpu,
    /// The rows.
    pub rows: Vec<Row>,
}

impl SampleReport {
    /// Form the report from counts (with link bytes), the CPU measurement, the digital
    /// reference and the assumptions.
    pub fn new(
        s: &Substrate,
        ss: &SampleSettings,
        counts: SampleCounts,
        cpu: SampleCpu,
        reference: DigitalReference,
        a: &Assumptions,
    ) -> Result<SampleReport, String> {
        a.check()?;
        ss.check()?;
        if !(reference.macs_per_call.is_finite() && reference.macs_per_call > 0.0) {
            return Err(format!(
                "digital reference {}: {} MACs per call, must be finite and > 0",
                reference.name, reference.macs_per_call
            ));
        }
        let sched = Schedule::new(s);
        let fpga_cycles = fpga_sample_cycles(s, ss)?;
        let analog = AnalogCosts::for_run(s, ss.sweeps_per_call(), a);
        let c = &counts;
        let parts = analog_parts(
            &analog,
            a,
            [c.unit_updates, c.coupling_macs + c.bus_macs, c.readouts],
            ("conditioning writes (DAC)", c.conditioning_writes),
            ("periphery MACs (digital)", c.periphery_macs),
        );
        let analog_joules: f64 = parts.iter().map(|p| p.1).sum();
        let cpu_power = |rapl: Option<f64>| cpu_power(rapl, cpu.threads, a);
        let compute = fpga_cycles as f64 / a.clock_hz;
        let link = c.link_bytes.map_or(0.0, |b| b as f64 * 10.0 / a.baud);
        let mut rows = Vec::new();
        for (name, watts, what) in [
            (SAMPLE_FPGA, a.board_watts, "assumed"),
            (
                SAMPLE_FPGA_BUDGET,
                ULX3S_SUPPLY_BUDGET_WATTS,
                "the ULX3S manual's supply budget, an upper bound",
            ),
        ] {
            rows.push(Row {
                name: name.into(),
                kind: "derived",
                joules: (compute + link) * watts,
                seconds: compute + link,
                how: format!(
                    "{fpga_cycles} cycles at {:.2} MHz ({compute:.3e} s) + link {link:.3e} s, x {watts} W ({what})",
                    a.clock_hz / 1e6
                ),
            });
        }
        let (w, how) = cpu_power(cpu.rapl_watts_engine);
        rows.push(Row {
            name: SAMPLE_CPU_ENGINE.into(),
            kind: "measured",
            joules: cpu.engine_seconds * w,
            seconds: cpu.engine_seconds,
            how: format!("wall time / sample x {how}"),
        });
        if let Some(t) = cpu.reference_seconds {
            let (w, how) = cpu_power(cpu.rapl_watts_reference);
            rows.push(Row {
                name: SAMPLE_CPU_REFERENCE.into(),
                kind: "measured",
                joules: t * w,
                seconds: t,
                how: format!("{}: wall time / sample x {how}", reference.name),
            });
        }
        rows.push(Row {
            name: SAMPLE_ANALOG.into(),
            kind: "projected",
            joules: analog_joules,
            seconds: c.calls as f64 * analog.phase_seconds,
            how: "counts x per-operation energies (calls in series)".into(),
        });
        let gpu_flops = 2.0 * reference.macs_per_call * c.calls as f64;
        let jpf = a.gpu_joules_per_flop();
        let rate = a.gpu_peak_flops * a.gpu_utilisation;
        rows.push(Row {
            name: SAMPLE_GPU_FLOPS.into(),
            kind: "projected",
            joules: gpu_flops * jpf,
            seconds: gpu_flops / rate,
            how: format!("{gpu_flops:.3e} FLOP x {jpf:.2e} J/FLOP"),
        });
        // The batch's calls of one sampler step run together; the steps run in series.
        let b = ss.batch as f64;
        let per_step = (b * 2.0 * reference.macs_per_call / rate).max(a.gpu_step_floor);
        let t = c.calls as f64 * per_step / b;
        rows.push(Row {
            name: SAMPLE_GPU_LATENCY.into(),
            kind: "projected",
            joules: t * a.gpu_watts,
            seconds: t,
            how: format!(
                "{} steps x max(batch FLOP time, {:.1e} s floor) / batch {} x {} W",
                c.calls, a.gpu_step_floor, ss.batch, a.gpu_watts
            ),
        });
        Ok(SampleReport {
            substrate: s.name.clone(),
            units: s.units(),
            settings: *ss,
            counts,
            per_sweep: SweepCounts::of(s),
            cycles_per_sweep: sched.cycles_per_sweep,
            fpga_cycles,
            fpga_compute_seconds: compute,
            fpga_link_seconds: link,
            reference,
            gpu_flops,
            analog,
            analog_parts: parts,
            assumptions: *a,
            cpu,
            rows,
        })
    }

    /// The row named `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The analog row's energy.
    pub fn analog_joules(&self) -> f64 {
        self.analog_parts.iter().map(|p| p.1).sum()
    }
}

/// How the sample ratios move when one assumption is multiplied or divided by 10.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleSensitivity {
    /// The assumption (flag name).
    pub assumption: &'static str,
    /// GPU (FLOP-bound) / analog at the defaults, at `/10`, at `x10`.
    pub gpu_over_analog: [f64; 3],
    /// The CPU's digital reference (or the fixed engine without one) / analog.
    pub cpu_over_analog: [f64; 3],
    /// FPGA (assumed power) / analog.
    pub fpga_over_analog: [f64; 3],
}

/// The sensitivity of the sample ratios to every assumption that enters the analog or GPU rows.
pub fn sample_sensitivity(
    s: &Substrate,
    ss: &SampleSettings,
    counts: SampleCounts,
    cpu: SampleCpu,
    reference: &DigitalReference,
    a: &Assumptions,
) -> Result<Vec<SampleSensitivity>, String> {
    let ratios = |a: &Assumptions| -> Result<[f64; 3], String> {
        let r = SampleReport::new(s, ss, counts, cpu, reference.clone(), a)?;
        let an = r.analog_joules();
        let j = |n: &str| r.row(n).map_or(f64::NAN, |x| x.joules);
        let cpu = r
            .row(SAMPLE_CPU_REFERENCE)
            .or_else(|| r.row(SAMPLE_CPU_ENGINE))
            .map_or(f64::NAN, |x| x.joules);
        Ok([j(SAMPLE_GPU_FLOPS) / an, cpu / an, j(SAMPLE_FPGA) / an])
    };
    let base = ratios(a)?;
    let skip = [
        "cpu-watts-per-core",
        "board-watts",
        "clock-mhz",
        "baud",
        "tau",
        "gpu-step-floor",
    ];
    Ok(sweep_assumptions(a, &skip, ratios)?
        .into_iter()
        .map(|(assumption, l, h)| SampleSensitivity {
            assumption,
            gpu_over_analog: [base[0], l[0], h[0]],
            cpu_over_analog: [base[1], l[1], h[1]],
            fpga_over_analog: [base[2], l[2], h[2]],
        })
        .collect())
}

/// Wall time per sample of `ss` on the fixed engine for a substrate without periphery: per
/// sampler step one RUN of every sample of the batch from state zero with the conditioning
/// `cond` (the cost of a RUN does not depend on its values), on the batched engine over
/// `threads` threads, as the board runs them (lanes keyed by the seed); the batch's time
/// divided by the batch.
pub fn time_engine_sample(
    s: &Substrate,
    ss: &SampleSettings,
    cond: &[f64],
    threads: usize,
) -> Result<f64, String> {
    ss.check()?;
    if cond.len() != s.units() {
        return Err(format!(
            "conditioning has {} values, the substrate {} units",
            cond.len(),
            s.units()
        ));
    }
    let cols = vec![cond.to_vec(); ss.batch];
    let t0 = std::time::Instant::now();
    for step in 0..ss.calls {
        let seeds: Vec<u64> = (0..ss.batch as u64)
            .map(|c| step * ss.batch as u64 + c)
            .collect();
        let mut e = crate::BatchEngine::new(s, crate::Fixed::new(s), &seeds, threads.max(1));
        let out = e.relax_average(
            s,
            &cols,
            ss.run.burn_in as u64,
            ss.run.sweeps as u64,
            crate::engine::Observe::Activation,
        );
        std::hint::black_box(out);
    }
    Ok(t0.elapsed().as_secs_f64() / ss.batch as f64)
}
