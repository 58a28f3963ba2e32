//! Noise quality (`docs/design.md` §2, `docs/fixed-point.md`): goodness of fit at 10^6 samples per lane, tails, lag and
//! cross-lane correlation, and the exact properties of the transform.

use thermo_sim::noise::{icdf_rom, transform_report, NoiseLane, Taus88};
use thermo_sim::stats::noise_report;

#[test]
fn noise_passes_goodness_of_fit_tails_and_correlation() {
    let n = 1_000_000;
    let (r, _) = noise_report(n, 4, 2024);
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    for (l, &p) in r.ad_p_value.iter().enumerate() {
        assert!(p > 1e-3, "lane {l}: Anderson-Darling p = {p}");
    }
    for (l, &p) in r.ks_p_value.iter().enumerate() {
        assert!(p > 1e-3, "lane {l}: Kolmogorov-Smirnov p = {p}");
    }
    assert!(
        r.max_abs_lag1 < 3.0 / (n as f64).sqrt(),
        "lag-1 {}",
        r.max_abs_lag1
    );
    assert!(
        r.max_abs_cross_lane < 3.0 / (n as f64).sqrt(),
        "cross-lane {}",
        r.max_abs_cross_lane
    );
    assert!(
        r.tail_agreement_sigma >= 4.5,
        "empirical tails agree only to {}",
        r.tail_agreement_sigma
    );
    assert!(
        (r.variance - 1.0).abs() < 5.0 * (2.0 / (4.0 * n as f64)).sqrt(),
        "variance {}",
        r.variance
    );
}

#[test]
fn exact_transform_is_gaussian_to_six_sigma() {
    let t = transform_report();
    assert!(
        t.tail_accurate_sigma >= 6.0,
        "tail accurate only to {}",
        t.tail_accurate_sigma
    );
    assert!((t.variance - 1.0).abs() < 1e-4, "variance {}", t.variance);
    assert!((t.kurtosis - 3.0).abs() < 1e-3, "kurtosis {}", t.kurtosis);
    assert!(
        t.max_abs_error < 2.0 * thermo_sim::noise::NOISE_FORMAT.lsb(),
        "interpolation error {}",
        t.max_abs_error
    );
}

#[test]
fn rom_contents_are_pinned() {
    // FNV-1a over the ROM words: any change to the transform changes the hardware too.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for e in icdf_rom() {
        for b in [e.c0.to_le_bytes(), e.c1.to_le_bytes()].concat() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    assert_eq!(icdf_rom().len(), 512);
    assert_eq!(h, ROM_DIGEST, "ROM digest changed: {h:#018x}");
}
const ROM_DIGEST: u64 = 0xc93e_1f9e_6d52_cc39;

#[test]
fn lanes_are_distinct_and_seeds_reproduce() {
    let a: Vec<i16> = {
        let mut l = NoiseLane::new(5, 0);
        (0..1000).map(|_| l.next_fixed()).collect()
    };
    let b: Vec<i16> = {
        let mut l = NoiseLane::new(5, 0);
        (0..1000).map(|_| l.next_fixed()).collect()
    };
    let c: Vec<i16> = {
        let mut l = NoiseLane::new(5, 1);
        (0..1000).map(|_| l.next_fixed()).collect()
    };
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Seeded states respect taus88's constraints.
    for lane in 0..10_000 {
        let t = Taus88::for_lane(lane as u64 * 7, lane);
        assert!(t.s[0] > 1 && t.s[1] > 7 && t.s[2] > 15);
    }
}
