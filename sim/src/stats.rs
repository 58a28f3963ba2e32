//! Statistics for the noise report and the stationary-law tests.

use crate::noise::{norm_cdf, norm_sf};

/// Mean, variance, skewness and kurtosis (3 for a Gaussian).
pub fn moments(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in xs {
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    (mean, m2, m3 / m2.powf(1.5), m4 / (m2 * m2))
}

/// Asymptotic CDF of the Anderson–Darling statistic for a fully specified distribution
/// (G. & J. Marsaglia, "Evaluating the Anderson-Darling distribution", JSS 9(2), 2004).
pub fn ad_inf_cdf(z: f64) -> f64 {
    if z <= 0.0 {
        return 0.0;
    }
    if z < 2.0 {
        (-1.2337141 / z).exp() / z.sqrt()
            * (2.00012
                + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * z) * z) * z) * z)
                    * z)
    } else {
        (-(1.0776
            - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * z) * z) * z) * z) * z)
            .exp())
        .exp()
    }
}

/// Anderson–Darling test against N(0,1): statistic `A^2` and p-value.
pub fn anderson_darling_normal(xs: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let mut acc = 0.0;
    for i in 0..n {
        // ln F(x_i) + ln(1 - F(x_{n-1-i})), both from the accurate tail.
        let lf = norm_cdf(s[i]).max(1e-300).ln();
        let lsf = norm_sf(s[n - 1 - i]).max(1e-300).ln();
        acc += (2 * i + 1) as f64 * (lf + lsf);
    }
    let a2 = -(n as f64) - acc / n as f64;
    (a2, (1.0 - ad_inf_cdf(a2)).clamp(0.0, 1.0))
}

/// Kolmogorov–Smirnov test against N(0,1): statistic `D` and asymptotic p-value.
pub fn ks_normal(xs: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in s.iter().enumerate() {
        let f = norm_cdf(x);
        d = d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
    }
    let t = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    let mut p = 0.0;
    for k in 1..100 {
        let k = k as f64;
        p += 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * t * t).exp();
    }
    (d, p.clamp(0.0, 1.0))
}

/// Lag-`k` autocorrelation.
pub fn autocorr(xs: &[f64], k: usize) -> f64 {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
    let c: f64 = (0..n - k)
        .map(|i| (xs[i] - mean) * (xs[i + k] - mean))
        .sum();
    c / var
}

/// Pearson correlation.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

/// Integrated autocorrelation time by Sokal's automatic window (`W >= c * tau`, c = 6).
pub fn integrated_autocorr_time(xs: &[f64]) -> f64 {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let c0: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    if c0 == 0.0 {
        return 1.0;
    }
    let mut tau = 1.0;
    for k in 1..n / 2 {
        let ck: f64 = (0..n - k)
            .map(|i| (xs[i] - mean) * (xs[i + k] - mean))
            .sum::<f64>()
            / n as f64;
        tau += 2.0 * ck / c0;
        if k as f64 >= 6.0 * tau {
            break;
        }
    }
    tau.max(1.0)
}

/// Largest `t` (step 0.1, from 1.0) up to which the observed two-sided tail counts `#{|x| > t}`
/// agree with `n * 2 Q(t)` within 4 binomial standard deviations, while the expected count is at
/// least 5 (beyond that, samples cannot tell).
pub fn empirical_tail_agreement(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mut abs: Vec<f64> = xs.iter().map(|x| x.abs()).collect();
    abs.sort_by(|a, b| a.total_cmp(b));
    let mut ok = 0.0;
    let mut t = 1.0;
    loop {
        let p = 2.0 * norm_sf(t);
        let expected = n * p;
        if expected < 5.0 {
            break;
        }
        let above = abs.len() - abs.partition_point(|&a| a <= t);
        let sd = (n * p * (1.0 - p)).sqrt();
        if (above as f64 - expected).abs() > 4.0 * sd {
            break;
        }
        ok = t;
        t += 0.1;
    }
    (ok * 10.0_f64).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_cdf_matches_published_quantiles() {
        // Published asymptotic critical values: P(A^2 < 2.492) = 0.95, P(A^2 < 3.857) = 0.99.
        assert!((ad_inf_cdf(2.492) - 0.95).abs() < 1e-3);
        assert!((ad_inf_cdf(3.857) - 0.99).abs() < 1e-3);
    }

    #[test]
    fn iat_of_ar1_matches_theory() {
        // AR(1) with phi = 0.8: tau = (1 + phi) / (1 - phi) = 9.
        let mut lane = crate::noise::NoiseLane::new(1, 0);
        let mut x = 0.0;
        let xs: Vec<f64> = (0..200_000)
            .map(|_| {
                x = 0.8 * x + lane.next_f64();
                x
            })
            .collect();
        let tau = integrated_autocorr_time(&xs);
        assert!((tau - 9.0).abs() < 1.0, "tau = {tau}");
    }
}

/// What `thermo noise` measures on the hardware noise source.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NoiseReport {
    /// Samples per lane.
    pub samples_per_lane: usize,
    /// Lanes.
    pub lanes: usize,
    /// Pooled mean.
    pub mean: f64,
    /// Pooled variance.
    pub variance: f64,
    /// Pooled skewness.
    pub skewness: f64,
    /// Pooled kurtosis (3 for a Gaussian).
    pub kurtosis: f64,
    /// Anderson–Darling statistic of each lane against N(0,1).
    pub ad_statistic: Vec<f64>,
    /// Its p-value per lane.
    pub ad_p_value: Vec<f64>,
    /// Kolmogorov–Smirnov p-value per lane.
    pub ks_p_value: Vec<f64>,
    /// Empirical tail agreement of the pooled samples, in sigma (limited by sample count).
    pub tail_agreement_sigma: f64,
    /// Largest |lag-1 autocorrelation| over lanes.
    pub max_abs_lag1: f64,
    /// Largest |correlation| between two lanes.
    pub max_abs_cross_lane: f64,
    /// The `3/sqrt(N)` bound both correlations are held to.
    pub correlation_bound: f64,
    /// Generator period in words.
    pub period_words: String,
    /// Exact properties of the transform under ideal uniform input.
    pub transform: crate::noise::TransformReport,
}

/// Draw `samples` fixed noise samples on each of `lanes` lanes (seed `seed`) and measure them.
/// Returns the report and the samples, lane-major.
pub fn noise_report(samples: usize, lanes: usize, seed: u64) -> (NoiseReport, Vec<Vec<f64>>) {
    use crate::noise::{NoiseLane, NOISE_FORMAT};
    let data: Vec<Vec<f64>> = (0..lanes)
        .map(|l| {
            let mut lane = NoiseLane::new(seed, l as u32);
            (0..samples)
                .map(|_| NOISE_FORMAT.to_f64(lane.next_fixed() as i64))
                .collect()
        })
        .collect();
    let pooled: Vec<f64> = data.iter().flatten().copied().collect();
    let (mean, variance, skewness, kurtosis) = moments(&pooled);
    let ad: Vec<(f64, f64)> = data.iter().map(|d| anderson_darling_normal(d)).collect();
    let ks: Vec<f64> = data.iter().map(|d| ks_normal(d).1).collect();
    let max_abs_lag1 = data
        .iter()
        .map(|d| autocorr(d, 1).abs())
        .fold(0.0, f64::max);
    let mut cross: f64 = 0.0;
    for a in 0..lanes {
        for b in a + 1..lanes {
            cross = cross.max(correlation(&data[a], &data[b]).abs());
        }
    }
    let report = NoiseReport {
        samples_per_lane: samples,
        lanes,
        mean,
        variance,
        skewness,
        kurtosis,
        ad_statistic: ad.iter().map(|x| x.0).collect(),
        ad_p_value: ad.iter().map(|x| x.1).collect(),
        ks_p_value: ks,
        tail_agreement_sigma: empirical_tail_agreement(&pooled),
        max_abs_lag1,
        max_abs_cross_lane: cross,
        correlation_bound: 3.0 / (samples as f64).sqrt(),
        period_words: format!(
            "(2^31-1)(2^29-1)(2^28-1) = {} ~ 2^88",
            crate::noise::taus88_period()
        ),
        transform: crate::noise::transform_report(),
    };
    (report, data)
}
