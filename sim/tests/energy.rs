//! Energy accounting (`thermo_sim::energy`): the counts against an independent count over the
//! substrate description, the cycle model against the reference build, the energies and ratios
//! consistent with their formulas, and bad assumptions refused by name; the same for a generated
//! sample (inference).

use std::path::Path;
use thermo_sim::energy::{
    self, Assumption, Assumptions, Counts, CpuMeasurement, DigitalReference, GpuFlops, Report,
    SampleCounts, SampleCpu, SampleReport, SampleSettings, StepSettings, GPU_FLOPS, GPU_LATENCY,
};
use thermo_sim::eqprop::{Budget, Estimator, Groups};
use thermo_sim::example::{random_substrate, ExampleSpec};
use thermo_sim::model::SubstrateConfig;
use thermo_sim::schedule::Schedule;
use thermo_sim::Substrate;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn shipped_config() -> SubstrateConfig {
    SubstrateConfig::load(&root().join("examples/three-module.toml")).unwrap()
}

fn random_config(seed: u64) -> SubstrateConfig {
    random_substrate(&ExampleSpec {
        seed,
        ..ExampleSpec::default()
    })
}

fn settings(
    batch: usize,
    burn_in: u32,
    sweeps: u32,
    est: Estimator,
    groups: Groups,
) -> StepSettings {
    StepSettings {
        budget: Budget { burn_in, sweeps },
        batch,
        estimator: est,
        groups,
    }
}

/// The counts of a step, counted operation by operation from the description (its coupling
/// list and bus matrices), walking every example, phase and sweep.
fn brute_force(cfg: &SubstrateConfig, st: &StepSettings) -> Counts {
    let units: usize = cfg.modules.iter().map(|m| m.size).sum();
    let size_of = |name: &str| cfg.modules.iter().find(|m| m.name == name).unwrap().size;
    let phases_per_example = match st.estimator {
        Estimator::Symmetric => 3,
        Estimator::OneSided => 2,
    };
    let mut c = Counts {
        phases: 0,
        sweeps: 0,
        unit_updates: 0,
        coupling_macs: 0,
        bus_macs: 0,
        readouts: 0,
        gradient_macs: 0,
        weight_writes: 0,
        link_bytes: None,
    };
    for _example in 0..st.batch {
        for _phase in 0..phases_per_example {
            c.phases += 1;
            for _sweep in 0..(st.budget.burn_in + st.budget.sweeps) {
                c.sweeps += 1;
                c.unit_updates += units as u64;
                for _entry in &cfg.couplings {
                    c.coupling_macs += 1; // the description lists (i, j) and (j, i): unit i reads j
                }
                for bus in &cfg.buses {
                    // line sums over each side's units, then every unit of a side reads each line
                    for row in bus.u.iter().chain(&bus.v) {
                        c.bus_macs += row.len() as u64; // the line's sum
                        c.bus_macs += row.len() as u64; // each unit reads it back
                    }
                }
            }
            c.readouts += units as u64;
        }
        // the periphery: two phases' derivatives, then one multiply-add per parameter
        let mut per_phase = 0u64;
        let mut params = 0u64;
        if st.groups.stiffness {
            per_phase += units as u64;
            params += units as u64;
        }
        if st.groups.bias {
            params += units as u64;
        }
        if st.groups.couplings {
            let pairs = cfg.couplings.iter().filter(|&&(i, j, _)| i < j).count() as u64;
            per_phase += pairs;
            params += pairs;
        }
        if st.groups.buses {
            for bus in &cfg.buses {
                let (ne, nd) = (size_of(&bus.encoder), size_of(&bus.decoder));
                for _r in &bus.sigma {
                    per_phase += (ne + nd) as u64 + 1 + 2 * (ne + nd) as u64;
                    params += 1 + (ne + nd) as u64;
                }
            }
        }
        c.gradient_macs += 2 * per_phase + params;
    }
    if st.groups.stiffness {
        c.weight_writes += units as u64;
    }
    if st.groups.bias {
        c.weight_writes += units as u64;
    }
    if st.groups.couplings {
        c.weight_writes += cfg.couplings.len() as u64;
    }
    if st.groups.buses {
        for bus in &cfg.buses {
            c.weight_writes += (bus.sigma.len()
                + bus.u.iter().chain(&bus.v).map(|r| r.len()).sum::<usize>())
                as u64;
        }
    }
    c
}

#[test]
fn counts_equal_a_brute_force_count() {
    let all = [Groups::ALL, Groups::WEIGHTS];
    for (name, cfg) in [
        ("shipped", shipped_config()),
        ("random 5", random_config(5)),
        ("random 23", random_config(23)),
    ] {
        let s = Substrate::from_config(&cfg).unwrap();
        assert!(
            !cfg.buses.is_empty(),
            "{name}: a bus is what the count checks"
        );
        for (batch, b, n, est, g) in [
            (1, 0, 1, Estimator::OneSided, all[0]),
            (3, 2, 5, Estimator::Symmetric, all[1]),
            (2, 7, 3, Estimator::Symmetric, all[0]),
        ] {
            let st = settings(batch, b, n, est, g);
            assert_eq!(
                energy::counts(&s, &st).unwrap(),
                brute_force(&cfg, &st),
                "{name}, batch {batch}, {b}+{n}"
            );
        }
    }
}

#[test]
fn per_sweep_macs_equal_the_schedule_and_cycles_the_reference_build() {
    for cfg in [shipped_config(), random_config(9)] {
        let s = Substrate::from_config(&cfg).unwrap();
        let c = energy::SweepCounts::of(&s);
        // the schedule counts the self term of every unit among its MACs
        assert_eq!(
            c.unit_updates + c.coupling_macs + c.bus_macs,
            Schedule::new(&s).macs_per_sweep
        );
    }
    // bitstreams/ulx3s-85f is the shipped example on 4 lanes: 179 cycles a sweep (banked state,
    // pipelined finish), 474 MACs
    let report: String =
        std::fs::read_to_string(root().join("bitstreams/ulx3s-85f/report.json")).unwrap();
    let s = Substrate::from_config(&shipped_config()).unwrap();
    let sched = Schedule::new(&s);
    assert!(report.contains(&format!("\"cycles_per_sweep\": {}", sched.cycles_per_sweep)));
    assert!(report.contains(&format!("\"macs_per_sweep\": {}", sched.macs_per_sweep)));
    let st = settings(4, 10, 30, Estimator::Symmetric, Groups::WEIGHTS);
    let per_run = 40 * sched.cycles_per_sweep + energy::run_overhead_cycles(64, 4, 64);
    assert_eq!(energy::fpga_cycles(&s, &st).unwrap(), 12 * per_run);
}

fn cpu() -> CpuMeasurement {
    CpuMeasurement {
        eqprop_seconds: 0.01,
        exact_seconds: Some(0.001),
        threads: 2,
        rapl_watts_eqprop: None,
        rapl_watts_exact: Some(35.0),
    }
}

#[test]
fn energies_follow_their_formulas_and_ratios_are_consistent() {
    let s = Substrate::from_config(&random_config(11)).unwrap();
    let st = settings(16, 100, 400, Estimator::Symmetric, Groups::WEIGHTS);
    let mut c = energy::counts(&s, &st).unwrap();
    c.link_bytes = Some(30_000);
    let a = Assumptions::default();
    let r = Report::new(&s, &st, c, cpu(), &a).unwrap();
    let row = |n: &str| r.row(n).unwrap().joules;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1e-300);
    // CPU: wall time x power (assumed per core for EqProp, RAPL for the exact step)
    assert!(close(
        row("CPU, EqProp on the fixed engine"),
        0.01 * 2.0 * a.cpu_watts_per_core
    ));
    assert!(close(row("CPU, exact gradient (digital)"), 0.001 * 35.0));
    // FPGA: cycles over the clock plus the line time, times the board power
    let t = energy::fpga_cycles(&s, &st).unwrap() as f64 / a.clock_hz + 30_000.0 * 10.0 / a.baud;
    assert!(close(row("FPGA emulation (board)"), t * a.board_watts));
    // analog: counts x per-operation energies in joules (C V V, times eta per Euler step)
    let e_unit = s.eta * a.node_capacitance * a.vdd * a.swing;
    let e_mac = s.eta * a.coupling_capacitance * a.vdd * a.swing;
    let analog = c.unit_updates as f64 * e_unit
        + (c.coupling_macs + c.bus_macs) as f64 * e_mac
        + c.readouts as f64 * a.adc_energy
        + c.weight_writes as f64 * a.write_energy
        + c.gradient_macs as f64 * a.digital_mac_energy;
    assert!(close(row("analog substrate"), analog));
    assert!(close(r.analog_joules(), analog));
    // GPU: FLOPs x W / (FLOP/s x utilisation)
    let f = GpuFlops::of(&s, &st).unwrap();
    assert!(f.feedforward_low_rank < f.feedforward_dense_skip);
    let jpf = a.gpu_watts / (a.gpu_peak_flops * a.gpu_utilisation);
    assert!(close(row(GPU_FLOPS), f.feedforward_low_rank * jpf));
    assert!(close(row(GPU_LATENCY), a.gpu_step_floor * a.gpu_watts));
    // doubling a capacitance doubles its part only; the sensitivity's first column is the ratio
    let mut a2 = a;
    a2.node_capacitance *= 2.0;
    let r2 = Report::new(&s, &st, c, cpu(), &a2).unwrap();
    assert!(close(r2.analog_parts[0].1, 2.0 * r.analog_parts[0].1));
    assert!(close(r2.analog_parts[1].1, r.analog_parts[1].1));
    let sens = energy::sensitivity(&s, &st, c, cpu(), &a).unwrap();
    for x in &sens {
        assert!(
            close(x.gpu_over_analog[0], row(GPU_FLOPS) / analog),
            "{}",
            x.assumption
        );
        assert!(close(
            x.cpu_over_analog[0],
            row("CPU, exact gradient (digital)") / analog
        ));
    }
    // the GPU's power scales its rows and only those; x10 utilisation is capped at the peak
    let watts = sens.iter().find(|x| x.assumption == "gpu-watts").unwrap();
    assert!(close(
        watts.gpu_over_analog[2],
        10.0 * watts.gpu_over_analog[0]
    ));
    assert!(close(watts.cpu_over_analog[2], watts.cpu_over_analog[0]));
    let util = sens
        .iter()
        .find(|x| x.assumption == "gpu-utilisation")
        .unwrap();
    assert!(close(
        util.gpu_over_analog[2],
        util.gpu_over_analog[0] * a.gpu_utilisation
    ));
    // halving the sweeps halves the relaxation's counts, not the periphery's
    let st2 = settings(16, 50, 200, Estimator::Symmetric, Groups::WEIGHTS);
    let c2 = energy::counts(&s, &st2).unwrap();
    assert_eq!(2 * c2.unit_updates, c.unit_updates);
    assert_eq!(c2.gradient_macs, c.gradient_macs);
    assert_eq!(c2.readouts, c.readouts);
}

#[test]
fn bad_assumptions_and_settings_are_refused_by_name() {
    let s = Substrate::from_config(&shipped_config()).unwrap();
    let st = settings(2, 1, 2, Estimator::Symmetric, Groups::WEIGHTS);
    let c = energy::counts(&s, &st).unwrap();
    for x in &Assumption::ALL {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut a = Assumptions::default();
            x.set(&mut a, bad);
            let e = Report::new(&s, &st, c, cpu(), &a).unwrap_err();
            assert!(e.contains(&format!("--{}", x.name)), "{}: {e}", x.name);
        }
    }
    let a = Assumptions {
        gpu_utilisation: 1.5,
        ..Assumptions::default()
    };
    assert!(a.check().unwrap_err().contains("--gpu-utilisation"));
    let e = energy::counts(
        &s,
        &settings(0, 1, 2, Estimator::Symmetric, Groups::WEIGHTS),
    )
    .unwrap_err();
    assert!(e.contains("batch"), "{e}");
    let e = energy::counts(
        &s,
        &settings(1, 1, 0, Estimator::Symmetric, Groups::WEIGHTS),
    )
    .unwrap_err();
    assert!(e.contains("sweeps"), "{e}");
}

fn sample_settings(calls: u64, burn_in: u32, sweeps: u32, batch: usize) -> SampleSettings {
    SampleSettings {
        run: Budget { burn_in, sweeps },
        calls,
        readout_units: 24,
        conditioning_units: 64,
        periphery_macs: 1000,
        batch,
    }
}

/// The counts of a sample walked call by call and sweep by sweep over the description.
fn brute_force_sample(cfg: &SubstrateConfig, ss: &SampleSettings) -> SampleCounts {
    let units: u64 = cfg.modules.iter().map(|m| m.size as u64).sum();
    let mut c = SampleCounts {
        calls: 0,
        sweeps: 0,
        unit_updates: 0,
        coupling_macs: 0,
        bus_macs: 0,
        readouts: 0,
        conditioning_writes: 0,
        periphery_macs: 0,
        link_bytes: None,
    };
    for _call in 0..ss.calls {
        c.calls += 1;
        c.conditioning_writes += ss.conditioning_units;
        for _sweep in 0..(ss.run.burn_in + ss.run.sweeps) {
            c.sweeps += 1;
            c.unit_updates += units;
            c.coupling_macs += cfg.couplings.len() as u64;
            for bus in &cfg.buses {
                for row in bus.u.iter().chain(&bus.v) {
                    c.bus_macs += 2 * row.len() as u64;
                }
            }
        }
        c.readouts += ss.readout_units;
        c.periphery_macs += ss.periphery_macs;
    }
    c
}

#[test]
fn sample_counts_equal_a_brute_force_count_and_cycles_the_run_model() {
    for cfg in [shipped_config(), random_config(5), random_config(31)] {
        let s = Substrate::from_config(&cfg).unwrap();
        for ss in [
            sample_settings(1, 0, 1, 1),
            sample_settings(40, 6, 20, 64),
            sample_settings(3, 11, 2, 5),
        ] {
            assert_eq!(
                energy::sample_counts(&s, &ss).unwrap(),
                brute_force_sample(&cfg, &ss)
            );
            let sched = Schedule::new(&s);
            let per_run = (ss.run.burn_in + ss.run.sweeps) as u64 * sched.cycles_per_sweep
                + (4 * 64 + 3 * 3 * s.lanes as u64 + 8) // set-up: units, seed words
                + 20 // around the sweeps
                + (5 * 24 + 2); // copy of the readout units
            assert_eq!(
                energy::fpga_sample_cycles(&s, &ss).unwrap(),
                ss.calls * per_run
            );
        }
    }
}

#[test]
fn sample_rows_follow_their_formulas() {
    let s = Substrate::from_config(&shipped_config()).unwrap();
    let ss = sample_settings(40, 50, 200, 64);
    let mut c = energy::sample_counts(&s, &ss).unwrap();
    c.link_bytes = Some(20_000);
    let a = Assumptions::default();
    let cpu = SampleCpu {
        engine_seconds: 0.002,
        reference_seconds: Some(0.0005),
        threads: 1,
        rapl_watts_engine: None,
        rapl_watts_reference: Some(20.0),
    };
    let reference = DigitalReference {
        name: "test".into(),
        macs_per_call: 64192.0,
    };
    let r = SampleReport::new(&s, &ss, c, cpu, reference.clone(), &a).unwrap();
    let row = |n: &str| r.row(n).unwrap().joules;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1e-300);
    let t =
        energy::fpga_sample_cycles(&s, &ss).unwrap() as f64 / a.clock_hz + 20_000.0 * 10.0 / a.baud;
    assert!(close(row(energy::SAMPLE_FPGA), t * a.board_watts));
    assert!(close(
        row(energy::SAMPLE_FPGA_BUDGET),
        t * energy::ULX3S_SUPPLY_BUDGET_WATTS
    ));
    assert!(close(
        row(energy::SAMPLE_CPU_ENGINE),
        0.002 * a.cpu_watts_per_core
    ));
    assert!(close(row(energy::SAMPLE_CPU_REFERENCE), 0.0005 * 20.0));
    let e_unit = s.eta * a.node_capacitance * a.vdd * a.swing;
    let e_mac = s.eta * a.coupling_capacitance * a.vdd * a.swing;
    let analog = c.unit_updates as f64 * e_unit
        + (c.coupling_macs + c.bus_macs) as f64 * e_mac
        + (40 * 24) as f64 * a.adc_energy
        + (40 * 64) as f64 * a.write_energy
        + (40 * 1000) as f64 * a.digital_mac_energy;
    assert!(close(row(energy::SAMPLE_ANALOG), analog));
    let flops = 2.0 * 64192.0 * 40.0;
    let jpf = a.gpu_watts / (a.gpu_peak_flops * a.gpu_utilisation);
    assert!(close(row(energy::SAMPLE_GPU_FLOPS), flops * jpf));
    // 64 calls of 128 kFLOP take 0.09 us at 94 TFLOP/s: the 20 us floor bounds each step
    assert!(close(
        row(energy::SAMPLE_GPU_LATENCY),
        40.0 * a.gpu_step_floor / 64.0 * a.gpu_watts
    ));
    assert!(close(
        r.row(energy::SAMPLE_ANALOG).unwrap().seconds,
        40.0 * 250.0 * s.eta * a.tau
    ));
    // without a measured reference there is no CPU reference row; the sensitivity's base ratio
    // is the fixed engine's then
    let cpu2 = SampleCpu {
        reference_seconds: None,
        ..cpu
    };
    let r2 = SampleReport::new(&s, &ss, c, cpu2, reference.clone(), &a).unwrap();
    assert!(r2.row(energy::SAMPLE_CPU_REFERENCE).is_none());
    let sens = energy::sample_sensitivity(&s, &ss, c, cpu2, &reference, &a).unwrap();
    for x in &sens {
        assert!(close(
            x.cpu_over_analog[0],
            r2.row(energy::SAMPLE_CPU_ENGINE).unwrap().joules / analog
        ));
    }
    let w = sens
        .iter()
        .find(|x| x.assumption == "write-energy")
        .unwrap();
    assert!(w.gpu_over_analog[1] > w.gpu_over_analog[0]);
    assert!(w.gpu_over_analog[2] < w.gpu_over_analog[0]);
}

#[test]
fn bad_sample_settings_are_refused_by_name() {
    let s = Substrate::from_config(&shipped_config()).unwrap();
    for (ss, what) in [
        (sample_settings(0, 1, 1, 1), "steps"),
        (sample_settings(1, 1, 0, 1), "sweeps per call"),
        (sample_settings(1, 1, 1, 0), "batch"),
    ] {
        let e = energy::sample_counts(&s, &ss).unwrap_err();
        assert!(e.contains(what), "{e}");
        assert!(energy::fpga_sample_cycles(&s, &ss).is_err());
    }
    let ss = sample_settings(2, 1, 1, 1);
    let c = energy::sample_counts(&s, &ss).unwrap();
    let cpu = SampleCpu {
        engine_seconds: 1.0,
        reference_seconds: None,
        threads: 1,
        rapl_watts_engine: None,
        rapl_watts_reference: None,
    };
    let bad = DigitalReference {
        name: "nothing".into(),
        macs_per_call: 0.0,
    };
    let e = SampleReport::new(&s, &ss, c, cpu, bad, &Assumptions::default()).unwrap_err();
    assert!(e.contains("nothing"), "{e}");
    let good = DigitalReference {
        name: "x".into(),
        macs_per_call: 1.0,
    };
    let a = Assumptions {
        board_watts: 0.0,
        ..Assumptions::default()
    };
    let e = SampleReport::new(&s, &ss, c, cpu, good, &a).unwrap_err();
    assert!(e.contains("--board-watts"), "{e}");
}
