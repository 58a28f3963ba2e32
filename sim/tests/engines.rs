//! The engines against exact answers and against each other:
//! * the exact stationary law of the discrete chain (golden and fixed), with sampling-error bounds
//!   computed from the chains by batch means;
//! * golden vs fixed trajectories on identical noise;
//! * determinism across runs and thread counts;
//! * the rank-k bus against the dense coupling matrix.

use nalgebra::{DMatrix, DVector};
use thermo_sim::engine::{Arith, Engine, Fixed};
use thermo_sim::example::{random_substrate, shipped, ExampleSpec};
use thermo_sim::noise::{norm_ppf, transform_report};
use thermo_sim::{FixedEngine, GoldenEngine, Substrate};

fn random(n: u64) -> Substrate {
    Substrate::from_config(&thermo_sim::example::family_config(n))
        .expect("random example validates")
}

/// Sample mean and covariance of a chain after burn-in, with batch-means standard errors.
struct ChainMoments {
    mean: DVector<f64>,
    cov: DMatrix<f64>,
    se_mean: DVector<f64>,
    se_cov: DMatrix<f64>,
    ess_min: f64,
}

fn chain_moments<A: Arith>(
    e: &mut Engine<A>,
    burn: usize,
    batches: usize,
    per_batch: usize,
) -> ChainMoments {
    let d = e.units();
    for _ in 0..burn {
        e.sweep();
    }
    let mut bm: Vec<DVector<f64>> = Vec::new();
    let mut bc: Vec<DMatrix<f64>> = Vec::new();
    for _ in 0..batches {
        let mut s = DVector::zeros(d);
        let mut ss = DMatrix::zeros(d, d);
        for _ in 0..per_batch {
            e.sweep();
            let x = DVector::from_vec(e.state_f64());
            s += &x;
            ss.ger(1.0, &x, &x, 1.0);
        }
        let m = s / per_batch as f64;
        let c = ss / per_batch as f64 - &m * m.transpose();
        bm.push(m);
        bc.push(c);
    }
    let b = batches as f64;
    let mean = bm.iter().fold(DVector::zeros(d), |a, x| a + x) / b;
    let cov = bc.iter().fold(DMatrix::zeros(d, d), |a, x| a + x) / b;
    let var_m = bm
        .iter()
        .fold(DVector::zeros(d), |a, x| a + (x - &mean).map(|v| v * v))
        / (b - 1.0);
    let var_c = bc
        .iter()
        .fold(DMatrix::zeros(d, d), |a, x| a + (x - &cov).map(|v| v * v))
        / (b - 1.0);
    // Effective sample size per unit: N * var(x) / (B * var(batch means)).
    let n = (batches * per_batch) as f64;
    let ess_min = (0..d)
        .map(|i| n * cov[(i, i)] / (b * var_m[i]))
        .fold(f64::INFINITY, f64::min);
    ChainMoments {
        mean,
        cov,
        se_mean: var_m.map(|v| (v / b).sqrt()),
        se_cov: var_c.map(|v| (v / b).sqrt()),
        ess_min,
    }
}

/// Critical |z| for `tests` simultaneous two-sided tests at family-wise level 1e-3, widened by
/// 15% for the t distribution of 100 batch means.
fn z_crit(tests: usize) -> f64 {
    -norm_ppf(1e-3 / (2.0 * tests as f64)) * 1.15
}

/// Largest |estimate - truth| / standard error, over means and covariances.
fn worst_z(m: &ChainMoments, mean: &DVector<f64>, cov: &DMatrix<f64>) -> (f64, f64) {
    let d = mean.len();
    let zm = (0..d)
        .map(|i| (m.mean[i] - mean[i]).abs() / m.se_mean[i])
        .fold(0.0, f64::max);
    let mut zc: f64 = 0.0;
    for i in 0..d {
        for j in i..d {
            zc = zc.max((m.cov[(i, j)] - cov[(i, j)]).abs() / m.se_cov[(i, j)]);
        }
    }
    (zm, zc)
}

/// The substrate the fixed engine actually simulates: its quantised constants as reals, and an
/// effective temperature that adds the rounding of each new state (uniform, LSB^2/12) and the
/// transform's exact noise variance.
fn quantised(s: &Substrate) -> Substrate {
    let e = FixedEngine::fixed(s, 0);
    let p = &e.prog;
    let f = s.formats;
    let (cl, gl, al) = (f.coupling.lsb(), f.gain.lsb(), f.acc().lsb());
    let mut q = s.clone();
    q.stiffness = p
        .diag
        .iter()
        .map(|&d| (1.0 - d as f64 * cl) / s.eta)
        .collect();
    q.val = p.coef.iter().map(|&c| -(c as f64) * cl / s.eta).collect();
    q.bias = p.bias.iter().map(|&h| h as f64 * al / s.eta).collect();
    for (bq, bp) in q.buses.iter_mut().zip(&p.buses) {
        bq.u =
            bp.u.iter()
                .map(|r| r.iter().map(|&c| c as f64 * cl).collect())
                .collect();
        bq.v =
            bp.v.iter()
                .map(|r| r.iter().map(|&c| c as f64 * cl).collect())
                .collect();
        bq.sigma = bp.gain.iter().map(|&g| g as f64 * gl / s.eta).collect();
    }
    let gn = p.arith.noise_amp as f64 * f.noise_gain.lsb();
    let var_z = transform_report().variance;
    let lsb = f.state.lsb();
    q.temperature = (gn * gn * var_z + lsb * lsb / 12.0) / (2.0 * s.eta);
    q
}

fn check_law(name: &str, s: &Substrate) {
    let d = s.units();
    let (mean, cov) = s.stationary_law();
    let z = z_crit(d + d * (d + 1) / 2);
    // Golden against the exact law.
    let mut g = GoldenEngine::golden(s, 11);
    let m = chain_moments(&mut g, 500, 100, 1000);
    let (zm, zc) = worst_z(&m, &mean, &cov);
    eprintln!("{name}: golden  worst |z| mean {zm:.2}, cov {zc:.2} (critical {z:.2}); min ESS {:.0} of 100000", m.ess_min);
    assert!(
        zm < z && zc < z,
        "{name}: golden model misses the exact stationary law"
    );
    // Negative control: the same chain is clearly distinguishable from a 5% hotter law.
    let (_, hot) = {
        let mut h = s.clone();
        h.temperature *= 1.05;
        h.stationary_law()
    };
    let (_, zhot) = worst_z(&m, &mean, &hot);
    assert!(
        zhot > z,
        "{name}: the test cannot tell T from 1.05 T (|z| {zhot:.1})"
    );
    // Fixed against the exact law of its quantised constants; report the quantisation shift.
    let q = quantised(s);
    let (qmean, qcov) = q.stationary_law();
    let shift_mean = (&qmean - &mean).amax();
    let shift_cov = (&qcov - &cov).amax();
    let mut f = FixedEngine::fixed(s, 11);
    let m = chain_moments(&mut f, 500, 100, 1000);
    let (zm, zc) = worst_z(&m, &qmean, &qcov);
    eprintln!(
        "{name}: fixed   worst |z| mean {zm:.2}, cov {zc:.2}; quantisation shifts the law by {shift_mean:.2e} (mean), {shift_cov:.2e} (cov)"
    );
    assert!(
        zm < z && zc < z,
        "{name}: fixed engine misses the law of its quantised constants"
    );
    assert_eq!(
        f.saturation_total().total(),
        0,
        "{name}: unexpected saturation"
    );
    // The quantisation shift itself is small against the law's scale.
    let scale = cov.diagonal().amax().sqrt();
    assert!(
        shift_mean < 0.01 * scale && shift_cov < 0.01 * scale * scale,
        "{name}: quantisation shift too large"
    );
}

#[test]
fn stationary_law_shipped_example() {
    check_law("three-module", &shipped());
}

#[test]
fn stationary_law_random_configurations() {
    for n in 0..5 {
        let s = random(n);
        assert!(n != 0 || !s.buses.is_empty());
        check_law(&s.name.clone(), &s);
    }
}

#[test]
fn fixed_tracks_golden_on_identical_noise() {
    for (name, s) in [
        ("three-module".to_string(), shipped()),
        (random(0).name.clone(), random(0)),
        (random(4).name.clone(), random(4)),
    ] {
        let mut g = GoldenEngine::golden(&s, 3);
        let mut f = FixedEngine::fixed(&s, 3);
        let lsb = s.formats.state.lsb();
        let (mut max, mut sum2, mut n) = (0.0f64, 0.0, 0usize);
        for _ in 0..10_000 {
            g.sweep();
            f.sweep();
            for (a, b) in g.state_f64().iter().zip(f.state_f64()) {
                let dev = (a - b).abs() / lsb;
                max = max.max(dev);
                sum2 += dev * dev;
                n += 1;
            }
        }
        let rms = (sum2 / n as f64).sqrt();
        // Documented bound (docs/fixed-point.md §7): the per-sweep rounding error (<= 1/2 LSB,
        // RMS 0.29 LSB) is propagated by I - eta A, whose spectral radius rho < 1 gives an
        // error RMS of about 0.29 / sqrt(1 - rho^2) LSB; we allow 3x that for RMS and 8x for max.
        let rho = (1.0 - s.eta * s.lambda_min)
            .abs()
            .max((1.0 - s.eta * s.lambda_max).abs());
        let amp = 0.29 / (1.0 - rho * rho).sqrt();
        eprintln!("{name}: fixed vs golden over 10^4 sweeps: max {max:.2} LSB, RMS {rms:.3} LSB (predicted RMS {amp:.2} LSB, rho {rho:.3})");
        assert!(
            rms < 3.0 * amp && max < 8.0 * amp,
            "{name}: fixed left the golden trajectory"
        );
    }
}

#[test]
fn same_seed_same_bits_across_runs_and_threads() {
    let s = random_substrate(&ExampleSpec {
        units: 700,
        modules: 5,
        rank: 3,
        lanes: 7,
        seed: 9,
        ..Default::default()
    });
    let s = Substrate::from_config(&s).unwrap();
    let run_fixed = |threads: usize| {
        let mut e = FixedEngine::fixed(&s, 42);
        e.threads = threads;
        e.min_units_per_thread = 1;
        for _ in 0..300 {
            e.sweep();
        }
        (e.x.clone(), e.saturation_total())
    };
    let run_golden = |threads: usize| {
        let mut e = GoldenEngine::golden(&s, 42);
        e.threads = threads;
        e.min_units_per_thread = 1;
        for _ in 0..300 {
            e.sweep();
        }
        e.x.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()
    };
    let f1 = run_fixed(1);
    assert_eq!(f1, run_fixed(1));
    assert_eq!(f1, run_fixed(2));
    assert_eq!(f1, run_fixed(3));
    let g1 = run_golden(1);
    assert_eq!(g1, run_golden(2));
    assert_eq!(g1, run_golden(4));
    // A different seed gives different bits.
    let mut e = FixedEngine::fixed(&s, 43);
    for _ in 0..300 {
        e.sweep();
    }
    assert_ne!(f1.0, e.x);
}

#[test]
fn rank_k_bus_gives_the_dense_gradient() {
    for n in [0u64, 1, 3, 4] {
        let mut cfg = random_substrate(&ExampleSpec {
            units: 40 + 8 * n as usize,
            modules: 3 + 2 * (n as usize % 2),
            rank: 1 + n as usize,
            seed: 50 + n,
            ..Default::default()
        });
        cfg.temperature = 0.0; // deterministic step: x' = x - eta (A x - b)
        let s = Substrate::from_config(&cfg).unwrap();
        assert!(!s.buses.is_empty());
        let d = s.units();
        let x: Vec<f64> = (0..d).map(|i| ((i * 37 % 17) as f64 - 8.0) / 5.0).collect();
        let mut g = GoldenEngine::golden(&s, 0);
        g.set_state_f64(&x);
        g.sweep();
        // Dense: A includes -sum_r sigma_r (u_r v_r^T + v_r u_r^T) in the enc/dec blocks.
        let a = s.dense_a();
        let xv = DVector::from_vec(x.clone());
        let grad = &a * &xv - DVector::from_vec(s.bias.clone());
        let expect = &xv - grad * s.eta;
        let err = (DVector::from_vec(g.state_f64()) - &expect).amax();
        assert!(
            err < 1e-12 * expect.amax().max(1.0),
            "bus gradient differs from dense by {err:e}"
        );
        // And the matrix-free product agrees with the dense one.
        let mut y = vec![0.0; d];
        s.matvec(&x, &mut y);
        let dense = &a * &xv;
        assert!((DVector::from_vec(y) - dense).amax() < 1e-12);
    }
}

#[test]
fn fixed_engine_saturates_and_counts_instead_of_wrapping() {
    // Large biases in a narrow state format: states pin at the rails, counters move, no wrap.
    let mut cfg = random_substrate(&ExampleSpec {
        units: 30,
        modules: 3,
        rank: 2,
        seed: 8,
        bias_scale: 40.0,
        ..Default::default()
    });
    cfg.formats.state = thermo_sim::qformat::QFormat::new(12, 8); // +-8
    let s = Substrate::from_config(&cfg).unwrap();
    let mut e = FixedEngine::fixed(&s, 1);
    for _ in 0..200 {
        e.sweep();
    }
    let sat = e.saturation_total();
    assert!(sat.state > 0, "expected state saturation, got {sat:?}");
    let q = s.formats.state;
    for &x in &e.x {
        assert!((q.min_code()..=q.max_code()).contains(&(x as i64)));
    }
    // Units with a huge positive drive sit at the positive rail, never wrapped to negative.
    let (mean, _) = s.stationary_law();
    for (i, &x) in e.x.iter().enumerate() {
        if mean[i] > 12.0 {
            assert!(x as i64 > q.max_code() - 2000, "unit {i} wrapped: {x}");
        }
        if mean[i] < -12.0 {
            assert!((x as i64) < q.min_code() + 2000, "unit {i} wrapped: {x}");
        }
    }
    let _ = Fixed::new(&s);
}

#[test]
fn unchecked_fast_path_equals_checked_path() {
    // Rows proven unable to saturate skip the saturation checks; forcing every row through the
    // checked path must not change a bit (including a configuration where some rows do saturate).
    for (n, bias_scale) in [(0u64, 0.5), (1, 0.5), (4, 18.0)] {
        let mut cfg = random_substrate(&ExampleSpec {
            units: 60,
            modules: 5,
            rank: 2,
            seed: 70 + n,
            bias_scale,
            ..Default::default()
        });
        if bias_scale > 1.0 {
            // A narrow accumulator (fraction 13 + 15 = 28 bits: range +-8) that large biases
            // and saturated states overrun.
            cfg.formats.state = thermo_sim::qformat::QFormat::new(16, 13);
            cfg.formats.coupling = thermo_sim::qformat::QFormat::new(16, 15);
        }
        let s = Substrate::from_config(&cfg).unwrap();
        let mut fast = FixedEngine::fixed(&s, 5);
        let mut slow = FixedEngine::fixed(&s, 5);
        slow.prog.force_checks = true;
        let mut fast_units = 0;
        for _ in 0..500 {
            fast_units += fast.fast_path_units();
            fast.sweep();
            slow.sweep();
            assert_eq!(fast.x, slow.x);
        }
        assert_eq!(fast.saturation_total(), slow.saturation_total());
        eprintln!(
            "bias scale {bias_scale}: {fast_units} of {} unit updates on the fast path",
            500 * s.units()
        );
        assert!(fast_units > 0, "the fast path was never taken");
        if bias_scale > 1.0 {
            let sat = fast.saturation_total();
            assert!(
                sat.acc > 0 && sat.state > 0,
                "the saturating case did not saturate: {sat:?}"
            );
            assert!(
                fast_units < 500 * s.units(),
                "saturating units must take the checked path"
            );
        }
    }
}

#[test]
fn clamp_activation_follows_the_hopfield_rule() {
    // x' = (1 - eta a) x + g(x) eta (A_off rho(x) ... ) : check one noiseless sweep against a
    // direct computation, then golden vs fixed on identical noise.
    let mut cfg = random_substrate(&ExampleSpec {
        units: 40,
        modules: 3,
        rank: 2,
        seed: 31,
        bias_scale: 2.0,
        ..Default::default()
    });
    cfg.activation = thermo_sim::model::Activation::Clamp { lo: -0.5, hi: 0.75 };
    cfg.temperature = 0.0;
    let s = Substrate::from_config(&cfg).unwrap();
    let d = s.units();
    let x: Vec<f64> = (0..d)
        .map(|i| ((i * 29 % 23) as f64 - 11.0) / 10.0)
        .collect();
    let rho: Vec<f64> = x.iter().map(|v| v.clamp(-0.5, 0.75)).collect();
    // Dense off-diagonal couplings including the bus blocks, applied to rho(x).
    let mut a = s.dense_a();
    for i in 0..d {
        a[(i, i)] = 0.0;
    }
    let drive = &a * DVector::from_vec(rho.clone());
    let mut g = GoldenEngine::golden(&s, 0);
    g.set_state_f64(&x);
    g.sweep();
    let got = g.state_f64();
    let mut gated = 0;
    for i in 0..d {
        let gate = (-0.5..=0.75).contains(&x[i]);
        gated += usize::from(!gate);
        let want = (1.0 - s.eta * s.stiffness[i]) * x[i]
            + if gate {
                s.eta * (s.bias[i] - drive[i])
            } else {
                0.0
            };
        assert!(
            (got[i] - want).abs() < 1e-12,
            "unit {i}: {} vs {want}",
            got[i]
        );
    }
    assert!(
        gated > 5 && gated < d - 5,
        "the example should gate some units, not all"
    );
    // Golden vs fixed with noise.
    cfg.temperature = 0.05;
    let s = Substrate::from_config(&cfg).unwrap();
    let mut g = GoldenEngine::golden(&s, 8);
    let mut f = FixedEngine::fixed(&s, 8);
    let (mut max, mut sum2, mut far, mut n) = (0.0f64, 0.0, 0usize, 0usize);
    for _ in 0..2000 {
        g.sweep();
        f.sweep();
        for (a, b) in g.state_f64().iter().zip(f.state_f64()) {
            let dev = (a - b).abs() / s.formats.state.lsb();
            max = max.max(dev);
            sum2 += dev * dev;
            far += usize::from(dev > 16.0);
            n += 1;
        }
    }
    let rms = (sum2 / n as f64).sqrt();
    let frac = far as f64 / n as f64;
    eprintln!("clamp activation: fixed vs golden over 2000 sweeps: RMS {rms:.2} LSB, max {max:.0} LSB, {:.3}% beyond 16 LSB", 100.0 * frac);
    // The gate is discontinuous: when rounding puts a unit on the other side of a clamp edge the
    // two engines take different steps (a jump of eta * drive) and then contract back together.
    // So the bound is on how rare and how short such excursions are, not on their height.
    assert!(
        rms < 40.0 && frac < 0.02,
        "fixed left golden: RMS {rms}, {frac} beyond 16 LSB"
    );
}

/// The fixed engine's clamp path against an integer reference written here from
/// `docs/fixed-point.md` §3 (constants quantised from the description's reals; round half up;
/// saturating 32-bit accumulator; gate and rho on codes): one noiseless sweep from states that
/// straddle both clamp bounds, on a substrate with a bus, in default formats and in narrow ones
/// that saturate.
#[test]
fn fixed_clamp_sweep_matches_an_independent_integer_reference() {
    use thermo_sim::qformat::QFormat;
    for (case, narrow) in [(0, false), (1, true)] {
        let mut cfg = random_substrate(&ExampleSpec {
            units: 48,
            modules: 3,
            rank: 2,
            seed: 41 + case,
            bias_scale: if narrow { 40.0 } else { 2.0 },
            ..Default::default()
        });
        cfg.activation = thermo_sim::model::Activation::Clamp { lo: -0.5, hi: 0.75 };
        cfg.temperature = 0.0;
        if narrow {
            // Q2.13 states (+-4) and 8-bit bus lines of +-0.25, large biases: states and line sums
            // saturate.
            cfg.formats.state = QFormat::new(16, 13);
            cfg.formats.bus = QFormat::new(8, 9);
        }
        let s = Substrate::from_config(&cfg).unwrap();
        let f = s.formats;
        let fa = f.state.frac + f.coupling.frac;
        let d = s.units();
        let q = |fmt: QFormat, v: f64| fmt.quantize(v).0;
        let round = |v: i64, from: u32, to: u32| -> i64 {
            if to >= from {
                v << (to - from)
            } else {
                let sh = from - to;
                (v + (1i64 << (sh - 1))) >> sh
            }
        };
        let sat = |fmt: QFormat, v: i64| v.clamp(fmt.min_code(), fmt.max_code());
        let sat32 = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64);
        let (lo, hi) = (q(f.state, -0.5), q(f.state, 0.75));
        let rho = |x: i64| x.clamp(lo, hi);
        // States straddling both bounds (and near the format's ends in the narrow case).
        let span = if narrow { 3.9 } else { 2.0 };
        let x: Vec<i64> = (0..d)
            .map(|i| q(f.state, span * (((i * 37) % 41) as f64 / 20.0 - 1.0)))
            .collect();
        // Bus lines: (encoder lines, decoder lines) per bus.
        let lines: Vec<(Vec<i64>, Vec<i64>)> = s
            .buses
            .iter()
            .map(|b| {
                let side = |w: &Vec<Vec<f64>>, range: std::ops::Range<usize>| -> Vec<i64> {
                    w.iter()
                        .zip(&b.sigma)
                        .map(|(row, &sg)| {
                            let mut acc = 0i64;
                            for (wj, j) in row.iter().zip(range.clone()) {
                                acc = sat32(acc + q(f.coupling, *wj) * rho(x[j]));
                            }
                            let pre = sat(f.bus, round(acc, fa, f.bus.frac));
                            let g = q(f.gain, s.eta * sg);
                            sat(f.bus, round(pre * g, f.bus.frac + f.gain.frac, f.bus.frac))
                        })
                        .collect()
                };
                (
                    side(&b.u, s.modules[b.enc].range()),
                    side(&b.v, s.modules[b.dec].range()),
                )
            })
            .collect();
        let mut want = vec![0i64; d];
        let mut state_sats = 0;
        for i in 0..d {
            let m = s
                .modules
                .iter()
                .position(|m| m.range().contains(&i))
                .unwrap();
            let mut acc = sat32(q(f.coupling, 1.0 - s.eta * s.stiffness[i]) * x[i]);
            if (lo..=hi).contains(&x[i]) {
                for p in s.row_ptr[i]..s.row_ptr[i + 1] {
                    acc = sat32(acc + q(f.coupling, -s.eta * s.val[p]) * rho(x[s.col[p]]));
                }
                for (b, (enc_lines, dec_lines)) in s.buses.iter().zip(&lines) {
                    let (w, l, start) = if b.dec == m {
                        (&b.v, enc_lines, s.modules[b.dec].offset)
                    } else if b.enc == m {
                        (&b.u, dec_lines, s.modules[b.enc].offset)
                    } else {
                        continue;
                    };
                    for (r, lr) in l.iter().enumerate() {
                        let c = q(f.coupling, w[r][i - start]);
                        acc = sat32(acc + round(c * lr, f.coupling.frac + f.bus.frac, fa));
                    }
                }
                acc = sat32(acc + q(QFormat::new(32, fa), s.eta * s.bias[i]));
            }
            let v = round(acc, fa, f.state.frac);
            state_sats += usize::from(v != sat(f.state, v));
            want[i] = sat(f.state, v);
        }
        let mut e = FixedEngine::fixed(&s, 0);
        e.x = x.iter().map(|&v| v as i16).collect();
        e.sweep();
        for i in 0..d {
            assert_eq!(
                e.x[i] as i64, want[i],
                "case {case}, unit {i}: engine {} vs reference {} (x {})",
                e.x[i], want[i], x[i]
            );
        }
        let gated = x.iter().filter(|&&v| !(lo..=hi).contains(&v)).count();
        assert!(gated > 5 && gated < d - 5, "case {case}: {gated} gated");
        if narrow {
            assert!(
                state_sats > 0 && e.saturation_total().bus > 0,
                "the narrow case must saturate states and bus lines: {:?}",
                e.saturation_total()
            );
            assert_eq!(e.saturation_total().state as usize, state_sats);
        }
    }
}

/// `Engine::restart(seed)` after a run is the engine `Engine::new` builds with `seed`: the same
/// states and counters, sweep for sweep, golden and fixed, including saturating formats.
#[test]
fn restart_equals_a_fresh_engine() {
    let mut cfg = thermo_sim::example::family_config(2);
    cfg.formats.state = thermo_sim::qformat::QFormat::new(16, 15);
    cfg.temperature *= 4.0;
    let s = Substrate::from_config(&cfg).unwrap();
    let mut f = FixedEngine::fixed(&s, 3);
    let mut g = GoldenEngine::golden(&s, 3);
    for _ in 0..50 {
        f.sweep();
        g.sweep();
    }
    f.restart(11);
    g.restart(11);
    let (mut f2, mut g2) = (FixedEngine::fixed(&s, 11), GoldenEngine::golden(&s, 11));
    for _ in 0..50 {
        f.sweep();
        f2.sweep();
        g.sweep();
        g2.sweep();
        assert_eq!(f.x, f2.x);
        assert_eq!(g.x, g2.x);
    }
    assert_eq!(f.sweeps, f2.sweeps);
    assert_eq!(f.saturation, f2.saturation);
    assert_eq!(f.bus_saturation, f2.bus_saturation);
    let sat: u64 = f.saturation.iter().map(|s| s.total()).sum();
    assert!(sat > 0, "the narrow state format should saturate");
}

/// RUN (`Fixed::run_codes`) keyed with `run_key(seed)` is the fixed engine seeded with `seed`
/// from state zero with the conditioning's bias codes: its sums are that engine's readout
/// states summed after the burn-in, and it counts every sweep and saturation of the run.
#[test]
fn run_codes_is_the_seeded_fixed_engine_from_zero() {
    let s = shipped();
    let codes = Fixed::bias_codes(&s, &s.bias).unwrap();
    let readout: Vec<usize> = (0..s.units()).step_by(3).collect();
    let (burn_in, sweeps, seed) = (7u32, 40u32, 11u64);
    let run = Fixed::run_codes(
        &s,
        &codes,
        thermo_sim::noise::run_key(seed),
        burn_in,
        sweeps,
        &readout,
    );
    let mut e = FixedEngine::fixed(&s, seed);
    e.prog.bias = codes.clone();
    e.prog.refresh_bounds();
    let mut sums = vec![0i32; readout.len()];
    for k in 0..burn_in + sweeps {
        e.sweep();
        if k >= burn_in {
            for (acc, &u) in sums.iter_mut().zip(&readout) {
                *acc = acc.wrapping_add(e.x[u] as i32);
            }
        }
    }
    assert_eq!(run.sums, sums);
    assert_eq!(run.sweeps, (burn_in + sweeps) as u64);
    assert_eq!(run.saturation, e.saturation_total());
    // another key, other sums
    let other = Fixed::run_codes(&s, &codes, [1, 2, 3], burn_in, sweeps, &readout);
    assert_ne!(other.sums, run.sums);
}

/// Bias codes are `eta b` in the accumulator format; a vector of the wrong length, a value that
/// is not finite or one outside the format is refused naming the unit and the limit.
#[test]
fn bias_codes_refuse_naming_the_unit_and_the_limit() {
    let s = shipped();
    let q = s.formats.acc();
    let codes = Fixed::bias_codes(&s, &s.bias).unwrap();
    for (i, (&c, &b)) in codes.iter().zip(&s.bias).enumerate() {
        assert_eq!(c as i64, q.quantize(s.eta * b).0, "unit {i}");
    }
    let e = Fixed::bias_codes(&s, &s.bias[1..]).unwrap_err();
    assert!(e.contains(&format!("{} units", s.units())), "{e}");
    let mut b = s.bias.clone();
    b[5] = f64::NAN;
    let e = Fixed::bias_codes(&s, &b).unwrap_err();
    assert!(e.starts_with("unit 5:") && e.contains("not finite"), "{e}");
    b[5] = 1e12;
    let e = Fixed::bias_codes(&s, &b).unwrap_err();
    assert!(e.starts_with("unit 5:") && e.contains(&q.name()), "{e}");
}
