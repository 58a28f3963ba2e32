//! Small numerical helpers used by validation.

use nalgebra::DMatrix;

/// Extreme eigenvalues `(min, max)` of a symmetric operator by Lanczos with full
/// re-orthogonalisation (`steps` iterations, deterministic start vector).
pub fn lanczos_extremes(
    n: usize,
    steps: usize,
    mut op: impl FnMut(&[f64], &mut [f64]),
) -> (f64, f64) {
    let m = steps.min(n);
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut alpha = Vec::with_capacity(m);
    let mut beta: Vec<f64> = Vec::with_capacity(m);
    let mut v: Vec<f64> = (0..n)
        .map(|i| 1.0 + ((i * 7919) % 101) as f64 / 101.0)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    let mut w = vec![0.0; n];
    for j in 0..m {
        op(&v, &mut w);
        let a: f64 = w.iter().zip(&v).map(|(a, b)| a * b).sum();
        alpha.push(a);
        q.push(v.clone());
        // Full re-orthogonalisation against all previous vectors.
        for qi in &q {
            let c: f64 = w.iter().zip(qi).map(|(a, b)| a * b).sum();
            w.iter_mut().zip(qi).for_each(|(x, y)| *x -= c * y);
        }
        let b = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if j + 1 == m || b < 1e-12 {
            break;
        }
        beta.push(b);
        v = w.iter().map(|x| x / b).collect();
    }
    let k = alpha.len();
    let mut t = DMatrix::zeros(k, k);
    for i in 0..k {
        t[(i, i)] = alpha[i];
        if i + 1 < k {
            t[(i, i + 1)] = beta[i];
            t[(i + 1, i)] = beta[i];
        }
    }
    let e = t.symmetric_eigenvalues();
    (e.min(), e.max())
}
