//! The batched engine against single-chain engines: every chain, every sweep, every state bit and
//! every saturation counter; for any batch size and thread count.

use thermo_sim::engine::{Arith, Engine, Fixed, Golden, Observe};
use thermo_sim::example::{family_config, saturating_config, shipped};
use thermo_sim::qformat::align;
use thermo_sim::{BatchEngine, Substrate};

fn sub(cfg: &thermo_sim::SubstrateConfig) -> Substrate {
    Substrate::from_config(cfg).expect("example validates")
}

fn seed_of(c: usize) -> u64 {
    1000 + 7 * c as u64
}

/// Chain `c`'s biases: the substrate's own for every third chain, else rescaled and shifted per
/// chain and unit.
fn bias_of(s: &Substrate, c: usize) -> Option<Vec<f64>> {
    if c % 3 == 0 {
        return None;
    }
    Some(
        s.bias
            .iter()
            .enumerate()
            .map(|(i, &b)| b * (0.5 + 0.25 * (c % 5) as f64) + 0.1 * ((i + c) % 7) as f64 - 0.3)
            .collect(),
    )
}

/// The state as bits (`to_f64` is injective on both arithmetics' states).
fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn singles<A: Arith>(s: &Substrate, arith: &A, chains: usize) -> Vec<Engine<A>> {
    (0..chains)
        .map(|c| {
            let mut e = Engine::new(s, arith.clone(), seed_of(c));
            if let Some(b) = bias_of(s, c) {
                e.prog.set_bias(s, &b);
            }
            e
        })
        .collect()
}

fn batch<A: Arith>(s: &Substrate, arith: &A, chains: usize, threads: usize) -> BatchEngine<A> {
    let seeds: Vec<u64> = (0..chains).map(seed_of).collect();
    let mut e = BatchEngine::new(s, arith.clone(), &seeds, threads);
    for c in 0..chains {
        if let Some(b) = bias_of(s, c) {
            e.set_bias(s, c, &b);
        }
    }
    e
}

/// Runs `chains` chains batched and alone for `sweeps` sweeps, comparing after every sweep.
/// Returns the total saturation events over the chains.
fn compare<A: Arith>(
    what: &str,
    s: &Substrate,
    arith: A,
    chains: usize,
    threads: usize,
    sweeps: usize,
    force_checks: bool,
) -> u64 {
    let mut one = singles(s, &arith, chains);
    let mut many = batch(s, &arith, chains, threads);
    many.prog.force_checks = force_checks;
    assert_eq!(many.chains(), chains);
    for t in 1..=sweeps {
        many.sweep();
        for (c, e) in one.iter_mut().enumerate() {
            e.sweep();
            assert_eq!(
                bits(&many.state_f64(c)),
                bits(&e.state_f64()),
                "{what}: chain {c} of {chains} ({threads} threads), sweep {t}"
            );
            assert_eq!(
                many.saturation(c),
                &e.saturation[..],
                "{what}: chain {c} of {chains}, sweep {t}: unit saturation"
            );
            assert_eq!(
                many.bus_saturation(c),
                e.bus_saturation,
                "{what}: chain {c} of {chains}, sweep {t}: bus saturation"
            );
        }
    }
    assert_eq!(many.sweeps, sweeps as u64);
    (0..chains).map(|c| many.saturation_total(c).total()).sum()
}

const BATCHES: [usize; 4] = [1, 3, 16, 64];

#[test]
fn fixed_batch_matches_single_chains_on_the_family() {
    for n in 0..6 {
        let s = sub(&family_config(n));
        for &b in &BATCHES {
            compare(&format!("family {n}"), &s, Fixed::new(&s), b, 1, 40, false);
        }
    }
}

#[test]
fn fixed_batch_matches_single_chains_when_saturating() {
    for n in 0..6 {
        let s = sub(&saturating_config(n));
        for &b in &BATCHES {
            let sat = compare(
                &format!("saturating {n}"),
                &s,
                Fixed::new(&s),
                b,
                1,
                40,
                false,
            );
            assert!(sat > 0, "saturating {n}, {b} chains: nothing saturated");
        }
    }
}

#[test]
fn fixed_batch_matches_single_chains_on_the_shipped_example() {
    let s = shipped();
    for &b in &BATCHES {
        compare("shipped", &s, Fixed::new(&s), b, 1, 60, false);
    }
}

#[test]
fn forced_checks_change_no_bit() {
    for s in [
        sub(&family_config(0)),
        sub(&saturating_config(1)),
        shipped(),
    ] {
        compare("forced checks", &s, Fixed::new(&s), 16, 1, 30, true);
    }
}

#[test]
fn golden_batch_matches_single_chains() {
    let mut subs: Vec<(String, Substrate)> = (0..6)
        .map(|n| (format!("family {n}"), sub(&family_config(n))))
        .collect();
    subs.push(("saturating 1 (clamp)".into(), sub(&saturating_config(1))));
    subs.push(("saturating 2".into(), sub(&saturating_config(2))));
    subs.push(("shipped".into(), shipped()));
    for (what, s) in &subs {
        for &b in &BATCHES {
            compare(what, s, Golden::new(s), b, 1, 30, false);
        }
    }
}

#[test]
fn thread_count_changes_no_bit() {
    for s in [
        sub(&family_config(4)),
        sub(&saturating_config(3)),
        sub(&saturating_config(0)),
    ] {
        for threads in [1, 2, 3, 5, 16] {
            compare("threads", &s, Fixed::new(&s), 16, threads, 25, false);
        }
        compare("threads, golden", &s, Golden::new(&s), 7, 3, 20, false);
    }
}

/// Multi-sweep calls (one worker start per call) against single chains, and restart.
#[test]
fn run_and_restart_match_single_chains() {
    let s = sub(&saturating_config(5));
    let arith = Fixed::new(&s);
    for threads in [1, 2, 4] {
        let mut one = singles(&s, &arith, 12);
        let mut many = batch(&s, &arith, 12, threads);
        many.run(37);
        for (c, e) in one.iter_mut().enumerate() {
            (0..37).for_each(|_| e.sweep());
            assert_eq!(many.state(c), e.x, "chain {c}, {threads} threads");
            assert_eq!(many.saturation_total(c), e.saturation_total());
        }
        let seeds: Vec<u64> = (0..12).map(|c| 55 + c as u64).collect();
        many.restart(&seeds);
        many.run(11);
        for (c, e) in one.iter_mut().enumerate() {
            e.restart(seeds[c]);
            (0..11).for_each(|_| e.sweep());
            assert_eq!(
                many.state(c),
                e.x,
                "after restart: chain {c}, {threads} threads"
            );
            assert_eq!(many.saturation_total(c), e.saturation_total());
        }
    }
}

fn relax_matches<A: Arith>(s: &Substrate, arith: A, observe: Observe) {
    let chains = 10;
    let biases: Vec<Vec<f64>> = (0..chains)
        .map(|c| bias_of(s, c).unwrap_or_else(|| s.bias.clone()))
        .collect();
    let expect: Vec<_> = (0..chains)
        .map(|c| {
            let mut e = Engine::new(s, arith.clone(), seed_of(c));
            e.relax_average(s, &biases[c], 13, 29, observe)
        })
        .collect();
    for threads in [1, 2, 3] {
        let seeds: Vec<u64> = (0..chains).map(seed_of).collect();
        let mut many = BatchEngine::new(s, arith.clone(), &seeds, threads);
        let got = many.relax_average(s, &biases, 13, 29, observe);
        assert_eq!(got.len(), chains);
        for (c, ((gm, gs), (em, es))) in got.iter().zip(&expect).enumerate() {
            assert_eq!(bits(gm), bits(em), "chain {c}, {threads} threads: averages");
            assert_eq!(gs, es, "chain {c}, {threads} threads: saturation");
        }
    }
}

#[test]
fn relax_average_matches_single_chains() {
    let sat1 = sub(&saturating_config(1));
    relax_matches(&sat1, Fixed::new(&sat1), Observe::Activation);
    relax_matches(&sat1, Fixed::new(&sat1), Observe::State);
    relax_matches(&sat1, Golden::new(&sat1), Observe::Activation);
    let s = shipped();
    relax_matches(&s, Fixed::new(&s), Observe::State);
    relax_matches(&s, Golden::new(&s), Observe::State);
}

/// The batch's vector path across chains: chain counts that mix blocks of 64, 32 and 16 chains
/// with a scalar remainder, on substrates whose units take it (proven safe) with a clamp whose
/// gates close, and with bus terms rounded one by one (bus format finer than the state's).
#[test]
fn vector_path_matches_single_chains_for_mixed_chain_counts() {
    use thermo_sim::model::Activation;
    use thermo_sim::qformat::QFormat;
    let mut clamped = family_config(4);
    clamped.activation = Activation::Clamp {
        lo: -0.25,
        hi: 0.25,
    };
    clamped.temperature *= 4.0;
    let mut fine_bus = family_config(0);
    fine_bus.formats.bus = QFormat::new(16, 12);
    for (what, cfg) in [
        ("clamp", clamped),
        ("fine bus", fine_bus),
        ("family 2", family_config(2)),
    ] {
        let s = sub(&cfg);
        let e = thermo_sim::FixedEngine::fixed(&s, 1);
        assert!(e.fast_path_units() > 0, "{what}: no unit on the fast path");
        for b in [19, 51, 115] {
            compare(what, &s, Fixed::new(&s), b, 1, 25, false);
        }
        compare(what, &s, Fixed::new(&s), 51, 2, 10, false);
    }
}

/// The bus lines of many chains at once (`Arith::lines_into`, written to vectorise) and one at a
/// time (`Arith::line`) against the definition in Q-format primitives, both saturations included: every edge sum and gain, on a
/// shifted module and an unshifted one.
#[test]
fn lines_of_many_chains_are_the_line_definition() {
    let s = sub(&thermo_sim::example::shifted_config(1));
    let a = Fixed::new(&s);
    let mut sums: Vec<i32> = vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
    for k in 0..31 {
        sums.extend([1 << k, -(1 << k), (1 << k) - 1, -(1 << k) + 1]);
    }
    let mut x = 0x9E37_79B9u32;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        sums.push(x as i32 >> (x % 24));
    }
    let gains = [i16::MIN, -20000, -1, 0, 1, 4096, 16384, 20000, i16::MAX];
    let (mut second, mut first) = (0u64, 0u64);
    for m in 0..s.modules.len() {
        for &gain in &gains {
            let mut out = vec![0i16; sums.len()];
            let mut cnt = vec![0u64; sums.len()];
            a.lines_into(m, &sums, gain, &mut out, &mut cnt);
            for (c, &sum) in sums.iter().enumerate() {
                // Both `line` and `lines_into` against the definition in Q-format primitives:
                // align the sum from the module's accumulator format to the bus format and
                // saturate, multiply by the gain, align back and saturate.
                let f = &s.formats;
                let acc_frac = f.acc().frac + s.modules[m].shift;
                let (pre, s1) = f.bus.saturate(align(sum as i64, acc_frac, f.bus.frac));
                let prod = align(pre * gain as i64, f.bus.frac + f.gain.frac, f.bus.frac);
                let (code, s2) = f.bus.saturate(prod);
                let want = (code as i16, s1 as u64 + s2 as u64);
                let mut sat = thermo_sim::engine::Saturation::default();
                let one = a.line(m, sum, gain, &mut sat);
                assert_eq!(
                    (one, sat.bus),
                    want,
                    "line: module {m}, sum {sum}, gain {gain}"
                );
                assert_eq!(
                    (out[c], cnt[c]),
                    want,
                    "lines_into: module {m}, sum {sum}, gain {gain}"
                );
                first += (want.1 >= 1) as u64;
                second += (want.1 == 2) as u64;
            }
        }
    }
    // Both saturations happened (the comparison saw them).
    assert!(first > 0 && second > 0, "{first} {second}");
}
