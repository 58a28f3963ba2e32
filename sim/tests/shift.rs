//! Per-module state shifts (`docs/fixed-point.md` §1): a module with shift `k` keeps its states
//! with `k` more fraction bits in the fixed arithmetic; the law is unchanged.

use thermo_sim::engine::{Arith, Engine, Fixed, FixedEngine, GoldenEngine};
use thermo_sim::example::{family_config, saturating_config, shifted_config};
use thermo_sim::{BatchEngine, Substrate, SubstrateConfig};

fn sub(cfg: &SubstrateConfig) -> Substrate {
    Substrate::from_config(cfg).expect("config validates")
}

/// The same shift `k` on every module is the state format with `k` more fraction bits: every
/// state code and saturation counter equal, sweep by sweep (an independent configuration of
/// the engine: no shift, a wider state fraction).
#[test]
fn a_uniform_shift_is_a_wider_state_fraction() {
    let mut checked = 0;
    let mut saturated = 0;
    for n in 0..6 {
        for (what, base) in [
            ("family", family_config(n)),
            ("saturating", saturating_config(n)),
        ] {
            for k in [1u32, 3] {
                let mut shifted = base.clone();
                for m in shifted.modules.iter_mut() {
                    m.shift = k;
                }
                let mut wide = base.clone();
                wide.formats.state.frac += k;
                let (Ok(a), Ok(b)) = (
                    Substrate::from_config(&shifted),
                    Substrate::from_config(&wide),
                ) else {
                    continue;
                };
                let mut ea = FixedEngine::fixed(&a, 9 + n);
                let mut eb = FixedEngine::fixed(&b, 9 + n);
                for t in 1..=40 {
                    ea.sweep();
                    eb.sweep();
                    assert_eq!(
                        ea.x, eb.x,
                        "{what} {n}, shift {k}: state codes at sweep {t}"
                    );
                    assert_eq!(
                        ea.saturation, eb.saturation,
                        "{what} {n}, shift {k}, sweep {t}"
                    );
                    assert_eq!(
                        ea.bus_saturation, eb.bus_saturation,
                        "{what} {n}, shift {k}"
                    );
                }
                assert_eq!(
                    ea.state_f64(),
                    eb.state_f64(),
                    "{what} {n}, shift {k}: reals"
                );
                saturated += ea.saturation_total().total();
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} configurations validated");
    assert!(saturated > 0, "nothing saturated");
}

/// Different shifts per module: the batched engine (any batch size, any thread count) gives
/// every chain the single-chain engine's states and counters, bit for bit.
#[test]
fn batched_chains_match_single_chains_with_shifts() {
    let mut saturated = 0;
    for n in 0..6 {
        let s = sub(&shifted_config(n));
        assert!(s.shifted());
        for (b, threads) in [(1, 1), (3, 1), (16, 2), (64, 2)] {
            let seeds: Vec<u64> = (0..b).map(|c| 77 + 5 * c as u64).collect();
            let mut many = BatchEngine::new(&s, Fixed::new(&s), &seeds, threads);
            let mut one: Vec<FixedEngine> = seeds.iter().map(|&sd| Engine::fixed(&s, sd)).collect();
            for t in 1..=30 {
                many.sweep();
                for (c, e) in one.iter_mut().enumerate() {
                    e.sweep();
                    assert_eq!(many.state(c), e.x, "shifted {n}, chain {c}/{b}, sweep {t}");
                    assert_eq!(
                        many.saturation(c),
                        &e.saturation[..],
                        "shifted {n}, chain {c}"
                    );
                    assert_eq!(many.bus_saturation(c), e.bus_saturation, "shifted {n}");
                }
            }
            saturated += (0..b)
                .map(|c| many.saturation_total(c).total())
                .sum::<u64>();
        }
    }
    assert!(saturated > 0, "no shifted configuration saturated");
}

/// A module whose states are about `2^-6` of the others' (its biases and the couplings between it
/// and the other modules scaled down, as the clamped compile's `g^m` does; this configuration has
/// no bus, whose line format would bound the error instead): without a shift its states sit a
/// few codes above zero and the noiseless fixed engine misses the golden model's fixed point by
/// percents of their magnitude; with shift 6 the error drops with the LSB.
#[test]
fn a_shift_keeps_a_small_module_resolved() {
    let mut cfg = family_config(2);
    assert!(cfg.buses.is_empty());
    cfg.temperature = 0.0;
    let small = cfg.modules.len() - 1;
    let s0 = sub(&cfg);
    let range = s0.modules[small].range();
    let scale = 2f64.powi(-6);
    for c in cfg.couplings.iter_mut() {
        if range.contains(&c.0) != range.contains(&c.1) {
            c.2 *= scale;
        }
    }
    let mc = &mut cfg.modules[small];
    mc.bias = match &mc.bias {
        thermo_sim::model::PerUnit::Uniform(b) => thermo_sim::model::PerUnit::Uniform(b * scale),
        thermo_sim::model::PerUnit::Each(v) => {
            thermo_sim::model::PerUnit::Each(v.iter().map(|b| b * scale).collect())
        }
    };
    let err = |shift: u32| -> (f64, f64) {
        let mut c = cfg.clone();
        c.modules[small].shift = shift;
        let s = sub(&c);
        let mut g = GoldenEngine::golden(&s, 1);
        let mut f = FixedEngine::fixed(&s, 1);
        for _ in 0..200 {
            g.sweep();
            f.sweep();
        }
        let (xg, xf) = (g.state_f64(), f.state_f64());
        let e = range
            .clone()
            .map(|i| (xg[i] - xf[i]).abs())
            .fold(0.0, f64::max);
        let mag = range.clone().map(|i| xg[i].abs()).fold(0.0, f64::max);
        (e, mag)
    };
    let (e0, mag) = err(0);
    let (e6, _) = err(6);
    let lsb = s0.formats.state.lsb();
    assert!(
        mag > 4.0 * lsb && mag < 64.0 * lsb,
        "the small module's states: {mag}"
    );
    assert!(
        e0 > 0.02 * mag,
        "unshifted error {e0} of {mag}: the test cannot tell"
    );
    assert!(
        e6 < e0 / 8.0,
        "shift 6: error {e6}, unshifted {e0} (largest state {mag})"
    );
}

#[test]
fn shifts_are_validated_and_kept_in_descriptions() {
    let mut cfg = family_config(1);
    cfg.modules[1].shift = 16;
    let e = Substrate::from_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("modules[1].shift") && e.contains("15"), "{e}");
    // a shift that pushes a coupling out of the coupling format names the couplings
    let mut cfg = family_config(1);
    cfg.modules[0].shift = 15;
    cfg.modules[0].bias = thermo_sim::model::PerUnit::Uniform(0.0);
    cfg.couplings.extend([(0, 8, 0.1), (8, 0, 0.1)]);
    let e = Substrate::from_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("couplings") && e.contains("shift"), "{e}");
    // kept through to_config and JSON; zero shifts are not written
    let s = sub(&shifted_config(2));
    let back = sub(&s.to_config());
    assert_eq!(
        back.modules.iter().map(|m| m.shift).collect::<Vec<_>>(),
        s.modules.iter().map(|m| m.shift).collect::<Vec<_>>()
    );
    let json = serde_json::to_string(&sub(&family_config(2)).to_config()).unwrap();
    assert!(
        !json.contains("shift"),
        "zero shifts are written: {json:.200}"
    );
    // bias codes are in the unit's module frame
    let s = sub(&shifted_config(0));
    let b = vec![0.25; s.units()];
    let codes = Fixed::bias_codes(&s, &b).unwrap();
    let arith = Fixed::new(&s);
    for (m, md) in s.modules.iter().enumerate() {
        let i = md.offset;
        assert_eq!(codes[i], arith.bias(m, s.eta * 0.25), "module {m}");
        let want = (s.eta * 0.25 * 2f64.powi((s.formats.acc().frac + md.shift) as i32)).round();
        assert_eq!(codes[i] as f64, want, "module {m} (shift {})", md.shift);
    }
}

/// Couplings between modules of different shifts are stored in the row unit's frame
/// (`2^(k_i - k_j)`): with shifts 0, 2, 4 and couplings across the modules, the noiseless fixed
/// engine stays within a few LSBs of each module's own format of the golden model's fixed point
/// (a wrong scale, e.g. `2^(k_j - k_i)`, misses it by far more).
#[test]
fn couplings_across_shifted_modules_follow_the_law() {
    let mut cfg = family_config(2);
    cfg.temperature = 0.0;
    let sizes: Vec<usize> = cfg.modules.iter().map(|m| m.size).collect();
    let start = |m: usize| sizes[..m].iter().sum::<usize>();
    for m in 0..sizes.len() - 1 {
        for t in 0..4 {
            let (i, j) = (start(m) + t, start(m + 1) + (3 * t) % sizes[m + 1]);
            let a = if t % 2 == 0 { 0.12 } else { -0.09 };
            cfg.couplings.extend([(i, j, a), (j, i, a)]);
        }
    }
    for (m, mc) in cfg.modules.iter_mut().enumerate() {
        mc.shift = 2 * m as u32;
        // smaller states where the shift is larger, as in the clamped compile
        mc.bias = match &mc.bias {
            thermo_sim::model::PerUnit::Uniform(b) => {
                thermo_sim::model::PerUnit::Uniform(b / 4f64.powi(m as i32))
            }
            thermo_sim::model::PerUnit::Each(v) => thermo_sim::model::PerUnit::Each(
                v.iter().map(|b| b / 4f64.powi(m as i32)).collect(),
            ),
        };
    }
    let s = sub(&cfg);
    let mut g = GoldenEngine::golden(&s, 1);
    let mut f = FixedEngine::fixed(&s, 1);
    for _ in 0..200 {
        g.sweep();
        f.sweep();
    }
    assert_eq!(f.saturation_total().total(), 0);
    let (xg, xf) = (g.state_f64(), f.state_f64());
    for (m, md) in s.modules.iter().enumerate() {
        let lsb = s.formats.module_state(md.shift).lsb();
        let err = md
            .range()
            .map(|i| (xg[i] - xf[i]).abs())
            .fold(0.0, f64::max);
        let mag = md.range().map(|i| xg[i].abs()).fold(0.0, f64::max);
        assert!(
            mag > 100.0 * lsb,
            "module {m}: states {mag} are not resolved"
        );
        assert!(
            err < 8.0 * lsb,
            "module {m} (shift {}): error {err} = {} LSB",
            md.shift,
            err / lsb
        );
    }
}

/// The fast paths (vector kernels, proven-safe units without saturation checks) take shifted
/// modules too, with each module's line and noise alignment and clamp codes: the same bits as
/// the checked scalar path, single chain and batched.
#[test]
fn fast_paths_match_the_checked_path_with_shifts() {
    let mut fast_units = 0;
    for n in 0..6 {
        let s = sub(&shifted_config(n));
        let mut fast = FixedEngine::fixed(&s, 5 + n);
        let mut checked = FixedEngine::fixed(&s, 5 + n);
        checked.prog.force_checks = true;
        let seeds = [5 + n, 6 + n, 7 + n];
        let mut batch = BatchEngine::new(&s, Fixed::new(&s), &seeds, 1);
        for t in 1..=40 {
            fast_units += fast.fast_path_units();
            fast.sweep();
            checked.sweep();
            batch.sweep();
            assert_eq!(fast.x, checked.x, "shifted {n}: sweep {t}");
            assert_eq!(
                fast.saturation, checked.saturation,
                "shifted {n}: sweep {t}"
            );
            assert_eq!(
                batch.state(0),
                fast.x,
                "shifted {n}: batch chain 0, sweep {t}"
            );
        }
    }
    assert!(fast_units > 0, "no unit took the fast path");
}
