//! The banked-state schedule (`thermo_sim::schedule::banked`): every generated schedule passes the
//! independent check on many substrates and lane counts, the check catches tampered schedules,
//! and with unlimited ports the schedule is exactly the replicated design's.

use thermo_sim::example::{
    family_config, random_substrate, saturating_config, shipped, ExampleSpec,
};
use thermo_sim::schedule::banked::{
    verify, Banked, BusMode, Issue, Options, Order, PortRule, BANK_READ_PORTS, PARK_LATENCY,
};
use thermo_sim::schedule::Schedule;
use thermo_sim::Substrate;

const MODES: [(Order, BusMode); 6] = [
    (Order::Ascending, BusMode::Sides),
    (Order::Free, BusMode::Sides),
    (Order::Ascending, BusMode::Lanes),
    (Order::Free, BusMode::Lanes),
    (Order::Ascending, BusMode::Beside),
    (Order::Free, BusMode::Beside),
];

fn opts(ports: usize, order: Order, bus: BusMode) -> Options {
    Options {
        ports,
        order,
        bus,
        port_rule: PortRule::Any,
    }
}

fn sub(cfg: &thermo_sim::SubstrateConfig) -> Substrate {
    Substrate::from_config(cfg).expect("example validates")
}

fn with_lanes(mut s: Substrate, p: u32) -> Substrate {
    s.lanes = p;
    s
}

/// Held-out random substrates of 1..=64 lanes, with and without buses.
fn random_cases() -> Vec<Substrate> {
    let mut out = Vec::new();
    for (n, &(units, modules, rank, degree, lanes)) in [
        (64, 3, 2, 8, 1),
        (96, 5, 3, 6, 3),
        (200, 5, 4, 12, 7),
        (256, 3, 0, 8, 16),
        (300, 5, 2, 16, 24),
        (512, 5, 8, 16, 64),
        (130, 4, 2, 5, 33),
    ]
    .iter()
    .enumerate()
    {
        let spec = ExampleSpec {
            units,
            modules,
            rank,
            degree,
            lanes,
            seed: 4000 + n as u64,
            ..ExampleSpec::default()
        };
        out.push(sub(&random_substrate(&spec)));
    }
    out
}

fn all_cases() -> Vec<(String, Substrate)> {
    let mut out = vec![];
    for p in [1, 2, 4, 5, 16, 64] {
        out.push((format!("shipped, {p} lanes"), with_lanes(shipped(), p)));
    }
    for n in 0..6 {
        out.push((format!("family {n}"), sub(&family_config(n))));
        out.push((format!("saturating {n}"), sub(&saturating_config(n))));
    }
    for (n, s) in random_cases().into_iter().enumerate() {
        out.push((format!("random {n} ({} lanes)", s.lanes), s));
    }
    out
}

#[test]
fn every_schedule_passes_the_independent_check() {
    for (name, s) in all_cases() {
        for ports in [1, BANK_READ_PORTS, 3] {
            for (order, bus) in MODES {
                for port_rule in [PortRule::Any, PortRule::ByReader] {
                    let o = Options {
                        port_rule,
                        ..opts(ports, order, bus)
                    };
                    let b = Banked::new(&s, &o);
                    verify(&s, &b).unwrap_or_else(|e| panic!("{name}, {o:?}: {e}"));
                    assert!(
                        b.mac_efficiency() > 0.0 && b.mac_efficiency() <= 1.0,
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn digits_substrate_schedules_check_and_lanes_summing_the_buses_pay() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/digits-clamped-rank8.json.sim.json");
    let s = Substrate::from_file(&path).expect("committed digits substrate");
    for p in [16, 64] {
        let s = with_lanes(s.clone(), p);
        let rep = Schedule::replicated(&s);
        let sides = Banked::new(&s, &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Sides));
        let lanes = Banked::new(&s, &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Lanes));
        verify(&s, &sides).unwrap();
        verify(&s, &lanes).unwrap();
        // banked state costs the crossbar's latency and a few waits, not the replicas' RAMs
        assert!(
            sides.cycles_per_sweep <= rep.cycles_per_sweep + 8,
            "{p} lanes"
        );
        // lanes that sum the buses remove the bus phase
        assert!(lanes.cycles_per_sweep < rep.cycles_per_sweep, "{p} lanes");
        assert!(
            lanes.mac_efficiency() > 0.85,
            "{p} lanes: {}",
            lanes.mac_efficiency()
        );
    }
}

/// With as many ports per bank as there are readers, no reader ever waits: the banked schedule is
/// the replicated one of `thermo_sim::schedule`, lane by lane, plus the crossbar's latency.
#[test]
fn unlimited_ports_give_the_replicated_schedule() {
    for (name, s) in all_cases() {
        let p = s.lanes as usize;
        let rep = Schedule::replicated(&s);
        let b = Banked::new(
            &s,
            &opts(p + 2 * s.buses.len(), Order::Ascending, BusMode::Sides),
        );
        assert_eq!((b.lane_waits, b.bus_waits), (0, 0), "{name}");
        for l in 0..p {
            assert_eq!(
                b.lane_issues[l].len() as u64,
                rep.lane_cycles[l],
                "{name} lane {l}"
            );
        }
        let latency = thermo_sim::schedule::banked::crossbar_latency(s.lanes as usize);
        let bus_latency = if s.buses.is_empty() { 0 } else { latency };
        assert_eq!(
            b.cycles_per_sweep,
            rep.cycles_per_sweep + latency + bus_latency,
            "{name}"
        );
        assert_eq!(b.macs_per_sweep, rep.macs_per_sweep, "{name}");
    }
}

/// In the specification's order a lane issues its row ascending: the recorded row order is the
/// CSR row itself, so the fixed engine's arithmetic needs no change.
#[test]
fn spec_order_keeps_the_rows_ascending() {
    for (name, s) in all_cases() {
        for bus in [BusMode::Sides, BusMode::Lanes, BusMode::Beside] {
            let b = Banked::new(&s, &opts(BANK_READ_PORTS, Order::Ascending, bus));
            for i in 0..s.units() {
                let row: Vec<u32> = s.col[s.row_ptr[i]..s.row_ptr[i + 1]]
                    .iter()
                    .map(|&j| j as u32)
                    .collect();
                assert_eq!(b.row_order[i], row, "{name} unit {i}");
            }
        }
    }
}

fn find_read(iss: &[Issue], from: usize) -> Option<(usize, u32, u8)> {
    iss.iter()
        .enumerate()
        .skip(from)
        .find_map(|(t, i)| match *i {
            Issue::State { unit, port } => Some((t, unit, port)),
            _ => None,
        })
}

/// On the shipped example on 16 lanes (few couplings a unit, so lanes reach their lines early),
/// a lane that waited for the lines and issues its first line MAC one cycle early is caught.
fn early_line_is_caught(bus: BusMode) {
    let s16 = with_lanes(shipped(), 16);
    let good = Banked::new(&s16, &opts(BANK_READ_PORTS, Order::Ascending, bus));
    verify(&s16, &good).unwrap();
    let mut b = good.clone();
    let (l, t) = (0..b.lane_issues.len())
        .find_map(|l| {
            let t = b.lane_issues[l].iter().position(|&i| i == Issue::Line)?;
            (t > 0 && b.lane_issues[l][t - 1] == Issue::Wait).then_some((l, t))
        })
        .expect("some lane waits for the lines");
    b.lane_issues[l].swap(t - 1, t);
    let e = err(&s16, &b);
    assert!(e.contains("before the lines are latched"), "{bus:?}: {e}");
}

fn err(s: &Substrate, b: &Banked) -> String {
    verify(s, b).expect_err("tampered schedule must fail its check")
}

#[test]
fn the_check_catches_tampered_schedules() {
    let s = random_cases().swap_remove(4); // 300 units, 24 lanes, rank-2 buses
    let p = s.lanes as usize;
    let good = Banked::new(&s, &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Sides));
    verify(&s, &good).unwrap();

    // two lanes reading different words of one bank through one port in the same cycle
    let mut b = good.clone();
    let (t, j, port) = find_read(&b.lane_issues[0], 0).unwrap();
    let (l2, t2) = (1..p)
        .find_map(|l| {
            b.lane_issues[l]
                .get(t)
                .filter(|i| matches!(i, Issue::State { .. }))
                .map(|_| (l, t))
        })
        .expect("another lane reads in that cycle");
    let other = (0..s.units())
        .find(|&u| u % p == j as usize % p && u != j as usize)
        .unwrap();
    b.lane_issues[l2][t2] = Issue::State {
        unit: other as u32,
        port,
    };
    assert!(err(&s, &b).contains("reads words"), "{}", err(&s, &b));

    // a port the bank does not have
    let mut b = good.clone();
    b.lane_issues[3][t] = match b.lane_issues[3][t] {
        Issue::State { unit, .. } => Issue::State {
            unit,
            port: BANK_READ_PORTS as u8,
        },
        _ => {
            let (t, unit, _) = find_read(&b.lane_issues[3], 0).unwrap();
            b.lane_issues[3][t] = Issue::State {
                unit,
                port: BANK_READ_PORTS as u8,
            };
            b.lane_issues[3][t]
        }
    };
    assert!(err(&s, &b).contains("port 2 of 2"), "{}", err(&s, &b));

    // a reader off its port under PortRule::ByReader
    let by = Banked::new(
        &s,
        &Options {
            port_rule: PortRule::ByReader,
            ..opts(BANK_READ_PORTS, Order::Ascending, BusMode::Sides)
        },
    );
    verify(&s, &by).unwrap();
    let mut b = by.clone();
    let (t, unit, port) = find_read(&b.lane_issues[6], 0).unwrap();
    assert_eq!(port, 0, "lane 6 reads through port 0");
    b.lane_issues[6][t] = Issue::State { unit, port: 1 };
    assert!(
        err(&s, &b).contains("its reader's port is 0"),
        "{}",
        err(&s, &b)
    );

    // a row out of order (two row reads of one unit swapped)
    let mut b = good.clone();
    let lane = &mut b.lane_issues[5];
    let (t0, _, _) = find_read(lane, 0).unwrap(); // self term
    let (t1, u1, p1) = find_read(lane, t0 + 1).unwrap();
    let (t2, u2, p2) = find_read(lane, t1 + 1).unwrap();
    assert!(
        !lane[t1..t2].contains(&Issue::Finish),
        "two row reads of one unit"
    );
    lane[t1] = Issue::State { unit: u2, port: p2 };
    lane[t2] = Issue::State { unit: u1, port: p1 };
    let e = err(&s, &b);
    assert!(
        e.contains("not in ascending order") || e.contains("reads words"),
        "{e}"
    );

    // a line MAC missing
    let mut b = good.clone();
    let t = b.lane_issues[2]
        .iter()
        .position(|&i| i == Issue::Line)
        .unwrap();
    b.lane_issues[2][t] = Issue::Wait;
    assert!(err(&s, &b).contains("line MACs"), "{}", err(&s, &b));

    // a row read missing
    let mut b = good.clone();
    let (t0, _, _) = find_read(&b.lane_issues[7], 0).unwrap();
    let (t1, _, _) = find_read(&b.lane_issues[7], t0 + 1).unwrap();
    b.lane_issues[7][t1] = Issue::Wait;
    assert!(err(&s, &b).contains("row states"), "{}", err(&s, &b));

    // the cycle count claimed is not the issues'
    let mut b = good.clone();
    b.cycles_per_sweep -= 1;
    assert!(err(&s, &b).contains("cycle counts"), "{}", err(&s, &b));

    // a bus side's reads out of order
    let mut b = good.clone();
    let side = &mut b.bus_issues[1];
    let (a, _, _) = find_read(side, 0).unwrap();
    let (c, _, _) = find_read(side, a + 1).unwrap();
    side.swap(a, c);
    let e = err(&s, &b);
    assert!(e.contains("bus side 1"), "{e}");

    // the lanes sum the buses: a line MAC before the lines are latched, a partial missing
    let good = Banked::new(&s, &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Lanes));
    verify(&s, &good).unwrap();
    let mut b = good.clone();
    b.lines_ready += 1;
    assert!(
        err(&s, &b).contains("lines claimed latched"),
        "{}",
        err(&s, &b)
    );
    // a lane that waited for the lines issues its first line MAC one cycle early (the shipped
    // example on 16 lanes: few couplings per unit, so lanes reach their lines early)
    early_line_is_caught(BusMode::Lanes);
    let mut b = good.clone();
    let t = b.lane_issues[4]
        .iter()
        .position(|i| matches!(i, Issue::BusPartial { .. }))
        .unwrap();
    b.lane_issues[4][t] = Issue::Wait;
    let e = err(&s, &b);
    assert!(
        e.contains("bus partial reads") || e.contains("lines claimed"),
        "{e}"
    );
}

/// The bus sides beside the lanes' first pass: the check catches a state read in the second pass,
/// a unit resumed before its parked accumulator is written, a line MAC before the lines are
/// latched, a unit's second pass out of order and a bus side's read that collides with a lane's.
#[test]
fn the_check_catches_tampered_beside_schedules() {
    let s = random_cases().swap_remove(4); // 300 units, 24 lanes, rank-2 buses
    let good = Banked::new(
        &s,
        &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Beside),
    );
    verify(&s, &good).unwrap();
    assert_eq!(good.bus_phase, 0);
    assert!(good.lines_ready > 0);

    // a state read moved to the end of the lane's second pass (as many ports as readers, so the
    // moved read collides with none)
    let wide = Banked::new(&s, &opts(64, Order::Ascending, BusMode::Beside));
    verify(&s, &wide).unwrap();
    let mut b = wide.clone();
    let lane = &mut b.lane_issues[3];
    let (t, unit, _) = find_read(lane, 0).unwrap();
    lane[t] = Issue::Wait;
    lane.push(Issue::State { unit, port: 63 });
    let e = err(&s, &b);
    assert!(e.contains("in the second pass"), "{e}");

    // a unit resumed too early: the shipped example on 64 lanes has one unit per lane; a unit
    // without bus lines finishes in its second pass PARK_LATENCY cycles after its first
    let s64 = with_lanes(shipped(), 64);
    let one = Banked::new(
        &s64,
        &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Beside),
    );
    verify(&s64, &one).unwrap();
    let mut b = one.clone();
    let l = (0..64)
        .find(|&l| !b.lane_issues[l].contains(&Issue::Line))
        .expect("a lane whose unit has no bus lines");
    let lane = &mut b.lane_issues[l];
    let last_read = lane
        .iter()
        .rposition(|i| matches!(i, Issue::State { .. }))
        .unwrap();
    let fin = lane.iter().position(|&i| i == Issue::Finish).unwrap();
    assert_eq!(fin as u64, last_read as u64 + PARK_LATENCY, "lane {l}");
    lane.swap(fin, fin - 1);
    let e = err(&s64, &b);
    assert!(e.contains("resumed at cycle"), "{e}");

    // a line MAC before the lines are latched (the shipped example on 16 lanes: few couplings
    // per unit, so lanes reach their lines early)
    let mut b = good.clone();
    b.lines_ready += 1;
    let e = err(&s, &b);
    assert!(e.contains("lines claimed latched"), "{e}");
    early_line_is_caught(BusMode::Beside);

    // a line MAC missing from a unit's second pass
    let mut b = good.clone();
    let t = b.lane_issues[2]
        .iter()
        .position(|&i| i == Issue::Line)
        .unwrap();
    b.lane_issues[2][t] = Issue::Wait;
    assert!(err(&s, &b).contains("line MACs"), "{}", err(&s, &b));

    // a bus side reads another word of a lane's bank port in the same cycle
    let by = Banked::new(
        &s,
        &Options {
            port_rule: PortRule::Any,
            ..opts(1, Order::Ascending, BusMode::Beside)
        },
    );
    verify(&s, &by).unwrap();
    let mut b = by.clone();
    let p = s.lanes as usize;
    let (t, l, j) = (0..b.bus_issues[0].len())
        .find_map(|t| {
            (0..p).find_map(|l| match b.lane_issues[l].get(t) {
                Some(&Issue::State { unit, .. }) => Some((t, l, unit)),
                _ => None,
            })
        })
        .expect("a lane reads while side 0 runs");
    let _ = l;
    let other = (0..s.units())
        .find(|&u| u % p == j as usize % p && u != j as usize)
        .unwrap();
    b.bus_issues[0][t] = Issue::State {
        unit: other as u32,
        port: 0,
    };
    let e = err(&s, &b);
    assert!(e.contains("reads words") || e.contains("bus side 0"), "{e}");

    // two finishes in consecutive cycles (units without lines: the shipped example's middle
    // module has no bus side)
    let s4 = shipped();
    let four = Banked::new(
        &s4,
        &opts(BANK_READ_PORTS, Order::Ascending, BusMode::Beside),
    );
    verify(&s4, &four).unwrap();
    let mut b = four.clone();
    let (l, t) = (0..s4.lanes as usize)
        .find_map(|l| {
            let v = &b.lane_issues[l];
            (2..v.len())
                .find(|&t| {
                    v[t - 2] == Issue::Finish && v[t - 1] == Issue::Wait && v[t] == Issue::Finish
                })
                .map(|t| (l, t))
        })
        .expect("a lane waits a cycle between two finishes");
    b.lane_issues[l].swap(t - 1, t);
    let e = err(&s4, &b);
    assert!(e.contains("a finish right after a finish"), "{e}");

    // the cycle count claimed is not the issues'
    let mut b = good.clone();
    b.cycles_per_sweep += 1;
    assert!(err(&s, &b).contains("cycle counts"), "{}", err(&s, &b));
}

/// The bus sides beside the lanes keep every unit's additions in the specification's order and
/// lift the lanes' MACs per cycle where the bus phase idled them: the 1,024-unit example of
/// `thermo bench` on 4 and 8 lanes, with the hardware's port rule.
#[test]
fn bus_sides_beside_the_lanes_pay_on_the_bench_substrate() {
    let spec = ExampleSpec {
        units: 1024,
        modules: 5,
        rank: 8,
        degree: 16,
        ..ExampleSpec::default()
    };
    let base = sub(&random_substrate(&spec));
    for p in [4, 8] {
        let s = with_lanes(base.clone(), p);
        let o = |bus| Options {
            port_rule: PortRule::ByReader,
            ..opts(BANK_READ_PORTS, Order::Ascending, bus)
        };
        let sides = Banked::new(&s, &o(BusMode::Sides));
        let beside = Banked::new(&s, &o(BusMode::Beside));
        verify(&s, &beside).unwrap();
        assert_eq!(
            beside.lane_macs, sides.lane_macs,
            "{p} lanes: the same MACs"
        );
        assert!(
            beside.mac_efficiency() > sides.mac_efficiency() + 0.1,
            "{p} lanes: {} against {}",
            beside.mac_efficiency(),
            sides.mac_efficiency()
        );
    }
}
