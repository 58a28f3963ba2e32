//! Q formats of the compiled substrate: the accumulator saturation the emitter used to miss, the
//! format chooser, the quantisation sweep and its plot (on the committed rank-8 substrate).

use std::path::PathBuf;
use thermo_diffusion::compile::{self, HEADROOM};
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::eval::{self, EvalSet};
use thermo_diffusion::quantize::{self, SweepOptions};
use thermo_diffusion::substrate::{self, relax, Loaded};
use thermo_sim::engine::Saturation;
use thermo_sim::qformat::QFormat;
use thermo_sim::{FixedEngine, Substrate};

fn committed() -> Loaded {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/digits-unet-rank8.substrate.json");
    substrate::load(&path).expect("committed substrate loads")
}

fn held_out(l: &Loaded, images: usize, sigmas: &[f32]) -> EvalSet {
    let d = Digits::load(&default_data_path()).expect("data");
    let split = Split::standard(d.len()).expect("split");
    let x = d.unit_matrix(&split.test[..images]);
    eval::build_set(&l.model, &x, &eval::Sigmas::Fixed(sigmas.to_vec()), 12).expect("set")
}

/// Oracle runs (biases `A a_true`, equilibrium = the U-Net's activations): saturation of the
/// unit updates and of the bus-line sums, separately.
fn oracle_saturation(sub: &Substrate, l: &Loaded, set: &EvalSet) -> (Saturation, Saturation) {
    let (mut units, mut bus) = (Saturation::default(), Saturation::default());
    for r in 0..set.len() {
        let b = l.oracle_bias(set, r);
        let mut e = FixedEngine::fixed(sub, 1 + r as u64);
        relax(sub, &mut e, &b, 60, 60);
        bus.add(&e.bus_saturation);
        for s in &e.saturation {
            units.add(s);
        }
    }
    (units, bus)
}

/// The diagnosis of the accumulator saturations of docs/compiler.md §6: the bus-line sums
/// `sum_j u_rj x_j` run in the 32-bit accumulator `Q(32, state.frac + coupling.frac)`, and on
/// the U-Net's activations they reach 90.7 — beyond the +-64 of Q6.25 (the Q4.11 states the
/// emitter chose before it bounded them). The unit updates never saturate. With the emitter's
/// formats now, nothing saturates. About 2 s.
#[test]
fn bus_sums_saturated_the_accumulator_and_the_emitter_now_bounds_them() {
    let l = committed();
    let ranges = l
        .side
        .ranges
        .clone()
        .expect("committed side file records its ranges");
    // Sigma 0.5: where the oracle runs saturated (docs/results/eval-rank8-fixed.md before).
    let set = held_out(&l, 6, &[0.5]);
    let mut old = l.cfg.clone();
    old.formats.state = QFormat::new(16, 11);
    let old = Substrate::from_config(&old).expect("Q4.11 validates");
    assert!(!old.formats.acc().fits(ranges.bus_max));
    let (units, bus) = oracle_saturation(&old, &l, &set);
    assert_eq!(units.total(), 0, "unit updates: {units:?}");
    assert!(bus.acc > 0, "bus sums: {bus:?}");

    // The emitter's bound covers the bus sums with headroom, and the chosen formats hold it.
    let bound = compile::accumulator_bound(&l.cfg, &ranges);
    assert!(bound >= HEADROOM * ranges.bus_max);
    assert!(l.cfg.formats.acc().fits(bound));
    let (units, bus) = oracle_saturation(&l.sub, &l, &set);
    assert_eq!((units.total(), bus.total()), (0, 0), "{units:?} {bus:?}");
    // The interface runs too.
    for r in 0..set.len() {
        let mut e = FixedEngine::fixed(&l.sub, 1);
        let (_, s) = relax(&l.sub, &mut e, &l.interface_bias(&set, r), 60, 60);
        assert_eq!(s.total(), 0);
    }
}

/// The committed description's formats are what the one format chooser gives at 16 bits, and
/// narrower widths keep the integer bits the data need.
#[test]
fn format_chooser_reproduces_the_committed_formats() {
    let l = committed();
    let r = l.side.ranges.expect("ranges");
    let f = compile::choose_formats(&l.cfg, &r, 16, 16).expect("formats");
    assert_eq!(f, l.cfg.formats);
    for (cb, sb) in [(6, 8), (10, 12), (16, 10)] {
        let f = compile::choose_formats(&l.cfg, &r, cb, sb).expect("formats");
        assert_eq!((f.coupling.bits, f.state.bits, f.bus.bits), (cb, sb, sb));
        if sb >= 10 {
            assert!(f.bus.fits(HEADROOM * r.bus_max));
        } else {
            // 8 bits cannot hold 1.5 x 90.7: no fractional bits, saturation counted if reached.
            assert_eq!(f.bus.frac, 0);
        }
        assert!(f.acc().fits(compile::accumulator_bound(&l.cfg, &r)));
        let mut cfg = l.cfg.clone();
        cfg.formats = f;
        Substrate::from_config(&cfg).expect("validates");
    }
    assert!(compile::choose_formats(&l.cfg, &r, 17, 16)
        .unwrap_err()
        .contains("coupling bits 17"));
}

#[test]
fn width_lists_parse_and_bad_ones_are_named() {
    assert_eq!(
        quantize::parse_widths("4..16:4").unwrap(),
        vec![4, 8, 12, 16]
    );
    assert_eq!(quantize::parse_widths("8..10").unwrap(), vec![8, 9, 10]);
    assert_eq!(quantize::parse_widths("6, 16").unwrap(), vec![6, 16]);
    assert!(quantize::parse_widths("4..20")
        .unwrap_err()
        .contains("17 bits is outside 2..=16"));
    assert!(quantize::parse_widths("9..4").is_err());
    assert!(quantize::parse_widths("4..16:0").is_err());
    assert!(quantize::parse_widths("x").unwrap_err().contains("`x`"));
}

/// A small sweep: 16-bit formats match float, 4-bit couplings are visibly worse against the
/// golden engine; the heat map is a PNG. About 2 s.
#[test]
fn small_sweep_and_its_plot() {
    let l = committed();
    let sigmas = [0.2f32, 2.0];
    let set = held_out(&l, 1, &sigmas);
    let opts = SweepOptions {
        coupling_bits: vec![4, 16],
        state_bits: vec![8, 16],
        burn_in: 60,
        sweeps: 100,
        seed: 1,
        tolerance: 0.005,
        threads: 2,
    };
    let mut seen = 0;
    let r = quantize::sweep(&l, &set, 1, &sigmas, &opts, |_| seen += 1).expect("sweep");
    assert_eq!((seen, r.cells.len()), (4, 4));
    let cell = |c: u32, s: u32| {
        r.cells
            .iter()
            .find(|x| x.coupling_bits == c && x.state_bits == s)
            .expect("cell")
    };
    let wide = cell(16, 16);
    assert_eq!(wide.formats, Some(l.cfg.formats));
    assert!(wide.within && wide.saturation.total() == 0);
    let g16 = wide.vs_golden.expect("vs golden").cosine;
    let g4 = cell(4, 16).vs_golden.expect("vs golden").cosine;
    assert!(g16 > 0.9999 && g4 < g16 - 1e-3, "{g16} {g4}");
    assert_eq!(r.smallest_coupling_bits.map(|b| b <= 16), Some(true));
    let md = quantize::markdown(&r);
    assert!(
        md.contains("| state bits \\ coupling bits | 4 | 16 |"),
        "{md}"
    );
    let png = std::env::temp_dir().join(format!("thermo-q-{}.png", std::process::id()));
    thermo_diffusion::plot::heat_map(&r, "test", &png).expect("plot");
    let bytes = std::fs::read(&png).expect("png");
    assert_eq!(&bytes[1..4], b"PNG");
    let _ = std::fs::remove_file(&png);
}

/// The batched relaxation the evaluation and the quantisation sweep use is, chain for chain,
/// the single-chain engine's: means and saturation counters equal bit for bit, for the fixed
/// and the golden arithmetic, on 16-bit and on narrow (saturating) formats, for any thread count.
#[test]
fn relax_many_is_relax_per_chain() {
    use thermo_sim::{Fixed, Golden, GoldenEngine};
    let l = committed();
    let sigmas = [0.5f32, 5.0];
    let set = held_out(&l, 2, &sigmas);
    let mut narrow_cfg = l.cfg.clone();
    narrow_cfg.formats.state = QFormat::new(8, 6);
    let narrow = Substrate::from_config(&narrow_cfg).expect("narrow formats validate");
    let mut bs: Vec<Vec<f64>> = (0..set.len()).map(|r| l.interface_bias(&set, r)).collect();
    bs.extend((0..set.len()).map(|r| l.oracle_bias(&set, r)));
    let seeds: Vec<u64> = (0..bs.len() as u64).map(|r| 7 + 3 * r).collect();
    let mut saturated = false;
    for sub in [&l.sub, &narrow] {
        for threads in [1, 3] {
            let many = substrate::relax_many(sub, Fixed::new(sub), &bs, &seeds, 20, 30, threads);
            for (c, (m, s)) in many.iter().enumerate() {
                let mut e = FixedEngine::fixed(sub, seeds[c]);
                let (m1, s1) = relax(sub, &mut e, &bs[c], 20, 30);
                assert!(m == &m1, "fixed chain {c}");
                assert_eq!(s, &s1, "fixed chain {c}");
                saturated |= s.total() > 0;
            }
            let many = substrate::relax_many(sub, Golden::new(sub), &bs, &seeds, 20, 30, threads);
            for (c, (m, _)) in many.iter().enumerate() {
                let mut e = GoldenEngine::golden(sub, seeds[c]);
                let (m1, _) = relax(sub, &mut e, &bs[c], 20, 30);
                assert!(m == &m1, "golden chain {c}");
            }
        }
    }
    assert!(
        saturated,
        "the narrow formats saturate, so the counters are compared"
    );
}
