//! Shared by the clamped-substrate tests: a central-difference check of a gradient.

use thermo_diffusion::clamped::ClampedModel;

/// Picks one parameter tensor of a model.
pub type Pick = fn(&mut ClampedModel) -> &mut Vec<f64>;

/// For each tensor, the 3 entries with the largest gradient (where a finite difference is
/// meaningful): the central difference of `loss_of` with a step small against the value (a kink
/// of the clamp must not fall inside it) agrees with `grad` within 1e-3 relative. `what` names
/// the gradient in the message. Returns the number of entries checked.
pub fn check_finite_differences(
    c: &ClampedModel,
    grad: &ClampedModel,
    picks: &[(&str, Pick)],
    loss_of: impl Fn(&ClampedModel) -> f64,
    what: &str,
) -> usize {
    let mut checked = 0;
    for &(name, pick) in picks {
        let mut gc = grad.clone();
        let g = pick(&mut gc).clone();
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &k in idx.iter().take(3) {
            let h = 1e-6 * pick(&mut c.clone())[k].abs().clamp(1e-3, 1.0);
            let mut cp = c.clone();
            pick(&mut cp)[k] += h;
            let mut cm = c.clone();
            pick(&mut cm)[k] -= h;
            let fd = (loss_of(&cp) - loss_of(&cm)) / (2.0 * h);
            let rel = (fd - g[k]).abs() / g[k].abs().max(1e-9);
            assert!(
                rel < 1e-3,
                "{name}[{k}]: {what} {:.6e} vs finite difference {fd:.6e} (rel {rel:.2e})",
                g[k]
            );
            checked += 1;
        }
    }
    checked
}
