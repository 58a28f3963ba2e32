//! Evaluation of a compiled substrate with its conditioning interface in exact arithmetic
//! (equilibrium means `A^-1 b`), against the U-Net's own activations
//! (`docs/compiler.md`).

use crate::compile::{self, Compiled};
use crate::data::PIXELS;
use crate::gram::{similarity, Similarity};
use crate::interface::{self, Interface, TrainOptions, TrainReport};
use crate::rng::Rng;
use crate::unet::Unet;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Noisy inputs with the U-Net's activations and the couplings-only drive (gain 1).
#[derive(Clone, Debug)]
pub struct EvalSet {
    /// Interface features `[n, pixels + 1]`.
    pub feats: DMatrix<f64>,
    /// Stacked post-activations of every module `[n, units]` (unit order of the compiler).
    pub truth: DMatrix<f64>,
    /// Couplings-only drive at gain 1 `[n, units]` (input drive into enc0 plus every module's
    /// bias and noise embedding term).
    pub drive: DMatrix<f64>,
    /// Noise level of each row.
    pub sigmas: Vec<f32>,
}

/// How to draw noise levels.
#[derive(Clone, Debug)]
pub enum Sigmas {
    /// `draws` per image, `ln sigma` uniform over the model's range.
    LogUniform(usize),
    /// Every image once at each listed level.
    Fixed(Vec<f32>),
}

/// Run the model on noisy versions of `x0` (`[n, 64]` flattened) and record what evaluation
/// and interface training need.
pub fn build_set(model: &Unet, x0: &[f32], sigmas: &Sigmas, seed: u64) -> Result<EvalSet, String> {
    let cfg = &model.config;
    let names = cfg.module_names();
    let n_img = x0.len() / PIXELS;
    let mut rng = Rng::stream(seed, 0xe7a1);
    let (lo, hi) = ((cfg.sigma_min as f64).ln(), (cfg.sigma_max as f64).ln());
    let mut list: Vec<(usize, f32)> = Vec::new();
    match sigmas {
        Sigmas::LogUniform(d) => {
            for _ in 0..*d {
                for i in 0..n_img {
                    list.push((i, (lo + (hi - lo) * rng.uniform()).exp() as f32));
                }
            }
        }
        Sigmas::Fixed(v) => {
            for &s in v {
                for i in 0..n_img {
                    list.push((i, s));
                }
            }
        }
    }
    let mut feats = Vec::new();
    let mut truth = Vec::new();
    let mut drive = Vec::new();
    let mut sig = Vec::new();
    let mut x = vec![0f32; PIXELS];
    let mut units = 0;
    for &(i, s) in &list {
        for (p, xp) in x.iter_mut().enumerate() {
            *xp = x0[i * PIXELS + p] + s * rng.normal() as f32;
        }
        let (_, acts) = model.forward(&x, s);
        let t = compile::stack(&acts, &names)?;
        units = t.len();
        let mut d = Vec::with_capacity(units);
        for (m, n) in names.iter().enumerate() {
            let la = acts.layer(n).ok_or_else(|| format!("no layer {n}"))?;
            for k in 0..la.cond.len() {
                let mut v = la.cond[k] as f64;
                if m == 0 {
                    v += la.local[k] as f64;
                }
                d.push(v);
            }
        }
        feats.extend(interface::features(cfg, &x, s).iter().copied());
        truth.extend(t.iter().copied());
        drive.extend(d);
        sig.push(s);
    }
    let n = list.len();
    Ok(EvalSet {
        feats: DMatrix::from_row_slice(n, PIXELS + 1, &feats),
        truth: DMatrix::from_row_slice(n, units, &truth),
        drive: DMatrix::from_row_slice(n, units, &drive),
        sigmas: sig,
    })
}

impl EvalSet {
    /// Rows whose noise level is `s`.
    pub fn rows_at(&self, s: f32) -> Vec<usize> {
        (0..self.sigmas.len())
            .filter(|&r| self.sigmas[r] == s)
            .collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sigmas.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.sigmas.is_empty()
    }
}

/// The decoder modules read out (all decoder levels, in unit order) and the finest one.
pub fn decoder_names(c: &Compiled) -> Vec<String> {
    c.names
        .iter()
        .filter(|n| n.starts_with("dec"))
        .cloned()
        .collect()
}

fn cols(m: &DMatrix<f64>, rows: &[usize], cols: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(rows.len(), cols.len(), |r, c| m[(rows[r], cols[c])])
}

/// Equilibrium means of the couplings-only bias (`[n, units]`).
pub fn couplings_means(c: &Compiled, set: &EvalSet) -> DMatrix<f64> {
    (&set.drive * c.options.gain) * c.a_inv.transpose()
}

/// Train the interface that injects into module `inject`, against all decoder modules.
pub fn train_interface(
    model: &Unet,
    c: &Compiled,
    set: &EvalSet,
    inject: &str,
    opts: &TrainOptions,
) -> Result<(Interface, TrainReport), String> {
    let dn = decoder_names(c);
    let dref: Vec<&str> = dn.iter().map(|s| s.as_str()).collect();
    train_interface_on(model, c, set, inject, &dref, opts)
}

/// Train the interface that injects into module `inject`, against the modules `targets`.
pub fn train_interface_on(
    model: &Unet,
    c: &Compiled,
    set: &EvalSet,
    inject: &str,
    targets: &[&str],
    opts: &TrainOptions,
) -> Result<(Interface, TrainReport), String> {
    let d = c.units_of(targets)?;
    let s = c.units_of(&[inject])?;
    let m = c.inv_block(&d, &s);
    let all: Vec<usize> = (0..set.len()).collect();
    let base = couplings_means(c, set);
    let targets = cols(&set.truth, &all, &d) - cols(&base, &all, &d);
    interface::train(&model.config, inject, &set.feats, &targets, &m, opts)
}

/// Biases of the substrate for every row: couplings-only drive plus the interface's biases in
/// its module (`[n, units]`).
pub fn interface_bias(
    c: &Compiled,
    iface: &Interface,
    set: &EvalSet,
) -> Result<DMatrix<f64>, String> {
    let s = c.units_of(&[iface.inject.as_str()])?;
    let mut b = &set.drive * c.options.gain;
    for r in 0..set.len() {
        let f = DVector::from_iterator(set.feats.ncols(), set.feats.row(r).iter().copied());
        let bi = iface.biases(&f);
        for (k, &u) in s.iter().enumerate() {
            b[(r, u)] += bi[k];
        }
    }
    Ok(b)
}

/// Similarities of one configuration on a set of rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scores {
    /// Finest decoder module (dec0) against the U-Net.
    pub dec0: Similarity,
    /// All decoder modules concatenated.
    pub decoder: Similarity,
}

/// One evaluation row (a noise level, or `None` for all pooled).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRow {
    /// Noise level (`None`: all levels pooled).
    pub sigma: Option<f32>,
    /// Samples.
    pub n: usize,
    /// Oracle biases `b* = A a_true`.
    pub oracle: Scores,
    /// Couplings-only drive plus the trained interface.
    pub interface: Option<Scores>,
    /// Couplings only.
    pub couplings: Scores,
    /// Oracle biases on encoder and bottleneck units only; the decoder units get their
    /// couplings-only bias and must be driven by the couplings (local and skip bus).
    pub encoder_anchored: Scores,
}

/// Means of all configurations (`[n, units]` each).
pub struct Means {
    /// Oracle.
    pub oracle: DMatrix<f64>,
    /// Interface (if any).
    pub interface: Option<DMatrix<f64>>,
    /// Couplings only.
    pub couplings: DMatrix<f64>,
    /// Encoder-anchored.
    pub encoder_anchored: DMatrix<f64>,
}

/// Equilibrium means of every configuration.
pub fn means(c: &Compiled, iface: Option<&Interface>, set: &EvalSet) -> Result<Means, String> {
    let at = c.a_inv.transpose();
    let b_star = &set.truth * c.a.transpose();
    let oracle = &b_star * &at;
    let couplings = couplings_means(c, set);
    let interface = match iface {
        Some(i) => Some(interface_bias(c, i, set)? * &at),
        None => None,
    };
    let dn = decoder_names(c);
    let dref: Vec<&str> = dn.iter().map(|s| s.as_str()).collect();
    let d = c.units_of(&dref)?;
    let mut b_anch = b_star;
    let bc = &set.drive * c.options.gain;
    for r in 0..set.len() {
        for &u in &d {
            b_anch[(r, u)] = bc[(r, u)];
        }
    }
    Ok(Means {
        oracle,
        interface,
        couplings,
        encoder_anchored: b_anch * &at,
    })
}

fn scores(
    c: &Compiled,
    set: &EvalSet,
    mu: &DMatrix<f64>,
    rows: &[usize],
) -> Result<Scores, String> {
    let dn = decoder_names(c);
    let dref: Vec<&str> = dn.iter().map(|s| s.as_str()).collect();
    let d = c.units_of(&dref)?;
    let d0 = c.units_of(&["dec0"])?;
    Ok(Scores {
        dec0: similarity(&cols(&set.truth, rows, &d0), &cols(mu, rows, &d0)),
        decoder: similarity(&cols(&set.truth, rows, &d), &cols(mu, rows, &d)),
    })
}

/// Rows per noise level (in the order of `levels`) and a pooled row.
pub fn evaluate(
    c: &Compiled,
    iface: Option<&Interface>,
    set: &EvalSet,
    levels: &[f32],
) -> Result<Vec<EvalRow>, String> {
    let mu = means(c, iface, set)?;
    let mut groups: Vec<(Option<f32>, Vec<usize>)> =
        levels.iter().map(|&s| (Some(s), set.rows_at(s))).collect();
    groups.push((None, (0..set.len()).collect()));
    let mut out = Vec::new();
    for (s, rows) in groups {
        if rows.is_empty() {
            continue;
        }
        out.push(EvalRow {
            sigma: s,
            n: rows.len(),
            oracle: scores(c, set, &mu.oracle, &rows)?,
            interface: match &mu.interface {
                Some(m) => Some(scores(c, set, m, &rows)?),
                None => None,
            },
            couplings: scores(c, set, &mu.couplings, &rows)?,
            encoder_anchored: scores(c, set, &mu.encoder_anchored, &rows)?,
        });
    }
    Ok(out)
}

/// The signal shortfall of the couplings-only drive (see `docs/compiler.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shortfall {
    /// `sqrt(sum ||b*||^2 / sum ||b_c||^2)`: RMS bias the oracle needs over what the couplings
    /// deliver.
    pub norm_ratio: f64,
    /// The same for the input-specific parts (each bias minus its mean over the inputs at the
    /// same noise level).
    pub input_specific_norm_ratio: f64,
    /// Square of the input-specific ratio (an energy ratio).
    pub input_specific_energy_ratio: f64,
    /// RMS over inputs of `||b* - b_c|| / ||b_c||`: the missing bias relative to the delivered.
    pub missing_over_delivered: f64,
}

/// Shortfall of the couplings-only drive against the oracle bias, over the rows of `set`.
pub fn shortfall(c: &Compiled, set: &EvalSet) -> Shortfall {
    let b_star = &set.truth * c.a.transpose();
    let bc = &set.drive * c.options.gain;
    let centre = |m: &DMatrix<f64>| {
        let mut out = m.clone();
        let mut levels: Vec<f32> = set.sigmas.clone();
        levels.sort_by(|a, b| a.total_cmp(b));
        levels.dedup();
        for s in levels {
            let rows = set.rows_at(s);
            let mut mean = DVector::zeros(m.ncols());
            for &r in &rows {
                mean += m.row(r).transpose();
            }
            mean /= rows.len() as f64;
            for &r in &rows {
                for k in 0..m.ncols() {
                    out[(r, k)] -= mean[k];
                }
            }
        }
        out
    };
    let norm_ratio = (b_star.norm_squared() / bc.norm_squared().max(1e-300)).sqrt();
    let (cs, cc) = (centre(&b_star), centre(&bc));
    let isr = (cs.norm_squared() / cc.norm_squared().max(1e-300)).sqrt();
    let mut acc = 0.0;
    for r in 0..set.len() {
        let miss = (b_star.row(r) - bc.row(r)).norm();
        let del = bc.row(r).norm().max(1e-300);
        acc += (miss / del).powi(2);
    }
    Shortfall {
        norm_ratio,
        input_specific_norm_ratio: isr,
        input_specific_energy_ratio: isr * isr,
        missing_over_delivered: (acc / set.len().max(1) as f64).sqrt(),
    }
}

/// Data of the compiler pipeline: Gram activations and interface training set (training
/// images), held-out set (test images at fixed noise levels).
pub struct Prepared {
    /// Activations for the encoder Gram matrices.
    pub gram: crate::gram::ActivationSet,
    /// Interface training set.
    pub train: EvalSet,
    /// Held-out evaluation set.
    pub test: EvalSet,
    /// Held-out noise levels.
    pub levels: Vec<f32>,
}

/// Build the data of the pipeline (`train_x`, `test_x` flattened `[n, 64]` images).
pub fn prepare(
    model: &Unet,
    train_x: &[f32],
    test_x: &[f32],
    draws: usize,
    levels: &[f32],
) -> Result<Prepared, String> {
    Ok(Prepared {
        gram: crate::gram::collect_activations(model, train_x, 2, 1),
        train: build_set(model, train_x, &Sigmas::LogUniform(draws), 11)?,
        test: build_set(model, test_x, &Sigmas::Fixed(levels.to_vec()), 12)?,
        levels: levels.to_vec(),
    })
}

/// Everything one compiled configuration produced.
pub struct Outcome {
    /// The compiled energy.
    pub compiled: Compiled,
    /// The trained interface.
    pub interface: Interface,
    /// Its training report.
    pub train: TrainReport,
    /// Held-out rows per noise level and pooled (last).
    pub rows: Vec<EvalRow>,
    /// Largest interface bias magnitude on held-out inputs.
    pub max_bias: f64,
    /// Couplings-only signal shortfall on the held-out inputs.
    pub shortfall: Shortfall,
}

/// Compile, train the interface, evaluate exactly.
pub fn run_pipeline(
    model: &Unet,
    p: &Prepared,
    opts: &compile::CompileOptions,
    inject: &str,
    targets: &[&str],
    topts: &TrainOptions,
) -> Result<Outcome, String> {
    let compiled = compile::compile(model, &p.gram, opts)?;
    let (iface, train) = train_interface_on(model, &compiled, &p.train, inject, targets, topts)?;
    let rows = evaluate(&compiled, Some(&iface), &p.test, &p.levels)?;
    let mut max_bias = 0.0f64;
    for r in 0..p.test.len() {
        let f = DVector::from_iterator(p.test.feats.ncols(), p.test.feats.row(r).iter().copied());
        max_bias = max_bias.max(iface.biases(&f).amax());
    }
    let shortfall = shortfall(&compiled, &p.test);
    Ok(Outcome {
        compiled,
        interface: iface,
        train,
        rows,
        max_bias,
        shortfall,
    })
}

/// Ceiling of any interface whose biases are an affine function of 16 hidden units, injected
/// into dec0, scored on dec0: the held-out dec0 means projected onto the best 16-dimensional
/// affine subspace of the training targets (principal components of `a_dec0 - couplings mean`),
/// as if the hidden units knew the answer. Returns the pooled dec0 similarity.
pub fn capacity_ceiling(c: &Compiled, p: &Prepared, dims: usize) -> Result<Similarity, String> {
    let d0 = c.units_of(&["dec0"])?;
    let target = |set: &EvalSet| {
        let all: Vec<usize> = (0..set.len()).collect();
        let base = couplings_means(c, set);
        (
            cols(&set.truth, &all, &d0) - cols(&base, &all, &d0),
            cols(&base, &all, &d0),
        )
    };
    let (t_train, _) = target(&p.train);
    let mean = t_train.row_mean();
    let mut centred = t_train.clone();
    for mut row in centred.row_iter_mut() {
        row -= &mean;
    }
    let svd = centred.svd(false, true);
    let vt = svd.v_t.ok_or("SVD failed")?;
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&i, &j| svd.singular_values[j].total_cmp(&svd.singular_values[i]));
    let k = dims.min(order.len());
    let q = DMatrix::from_fn(d0.len(), k, |r, j| vt[(order[j], r)]);
    let (t_test, base_test) = target(&p.test);
    let mut tc = t_test.clone();
    for mut row in tc.row_iter_mut() {
        row -= &mean;
    }
    let mut proj = &tc * &q * q.transpose();
    for mut row in proj.row_iter_mut() {
        row += &mean;
    }
    let all: Vec<usize> = (0..p.test.len()).collect();
    Ok(similarity(
        &cols(&p.test.truth, &all, &d0),
        &(proj + base_test),
    ))
}

/// The data ranges an identity-unit compile's Q formats are chosen from (what `thermo compile
/// --activation identity` measures), with the final bus sums for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRanges {
    /// The ranges [`compile::choose_formats`] reads.
    pub ranges: compile::Ranges,
    /// Largest magnitude of a final bus sum `u_r . x_enc` or `v_r . x_dec` (the partial sums
    /// in `ranges.bus_max` include these).
    pub bus_final_max: f64,
}

/// Measure the ranges of `o` on the data of `p`: states are the U-Net's activations (training
/// and held-out) and the equilibrium means of every evaluated configuration; biases the oracle
/// `b* = A a_true` and the couplings-only drive plus the interface; bus sums `u_r . x_enc` and
/// `v_r . x_dec` and every partial sum of them (units in ascending order, as the engines add
/// them in the accumulator) on the activations of the training and held-out inputs.
pub fn calibrate(o: &Outcome, p: &Prepared) -> Result<MeasuredRanges, String> {
    let mu = means(&o.compiled, Some(&o.interface), &p.test)?;
    let mut state_max = p.test.truth.amax().max(p.train.truth.amax());
    for m in [&mu.oracle, &mu.couplings] {
        state_max = state_max.max(m.amax());
    }
    if let Some(m) = &mu.interface {
        state_max = state_max.max(m.amax());
    }
    let mut bias_max = (&p.test.truth * o.compiled.a.transpose()).amax();
    bias_max = bias_max.max(interface_bias(&o.compiled, &o.interface, &p.test)?.amax());
    let mut bus_max = 0.0f64;
    let mut bus_final_max = 0.0f64;
    for b in &o.compiled.buses {
        for (side, m) in [(&b.u, b.enc), (&b.v, b.dec)] {
            let r = o.compiled.range(m);
            for truth in [&p.train.truth, &p.test.truth] {
                for row in 0..truth.nrows() {
                    for u in side.iter() {
                        let mut s = 0.0f64;
                        for (w, i) in u.iter().zip(r.clone()) {
                            s += w * truth[(row, i)];
                            bus_max = bus_max.max(s.abs());
                        }
                        bus_final_max = bus_final_max.max(s.abs());
                    }
                }
            }
        }
    }
    Ok(MeasuredRanges {
        ranges: compile::Ranges {
            state_max,
            module_state_max: Vec::new(),
            bus_max,
            bias_max,
        },
        bus_final_max,
    })
}

/// The held-out evaluation set of the engines: the first `inputs` test images of the standard
/// split, each at every noise level of `sigmas` (noise seed 12, as [`prepare`]). Returns the set
/// and the number of images.
pub fn held_out(model: &Unet, inputs: usize, sigmas: &[f32]) -> Result<(EvalSet, usize), String> {
    use crate::data::{default_data_path, Digits, Split};
    let digits = Digits::load(&default_data_path()).map_err(|e| e.to_string())?;
    let split = Split::standard(digits.len()).map_err(|e| e.to_string())?;
    let n_img = inputs.min(split.test.len());
    let test_x = digits.unit_matrix(&split.test[..n_img]);
    let set = build_set(model, &test_x, &Sigmas::Fixed(sigmas.to_vec()), 12)?;
    Ok((set, n_img))
}

/// Settings of [`evaluate_substrate`].
#[derive(Clone, Copy, Debug)]
pub struct EngineEvalOptions {
    /// Exact equilibrium means, or an engine's time average.
    pub readout: crate::substrate::Readout,
    /// Burn-in sweeps (engines).
    pub burn_in: u64,
    /// Averaged sweeps (engines).
    pub sweeps: u64,
    /// Noise seed: row `r` of the set runs with `seed + r`.
    pub seed: u64,
    /// Engine threads (the results do not depend on it).
    pub threads: usize,
}

/// One row of [`evaluate_substrate`] (a noise level, or `None` for all pooled).
#[derive(Clone, Debug, Serialize)]
pub struct EngineRow {
    /// Noise level (`None`: all levels pooled).
    pub sigma: Option<f32>,
    /// Samples.
    pub n: usize,
    /// Interface biases, readout means against the U-Net.
    pub interface: Scores,
    /// Oracle biases, readout means against the U-Net.
    pub oracle: Scores,
    /// Interface: readout means against the exact mean A^-1 b (dec0 units), largest |difference|.
    pub max_abs_vs_exact: f64,
    /// Saturation events (fixed engine) of the interface runs.
    pub saturation_interface: thermo_sim::engine::Saturation,
    /// Saturation events of the oracle runs.
    pub saturation_oracle: thermo_sim::engine::Saturation,
}

/// Evaluate a compiled identity-unit substrate `l` on `set` (what `thermo eval` does): for
/// every row, relax with the interface's biases and with the oracle biases `A a_true` on the
/// readout of `o`, and score the means against the U-Net's activations per noise level of
/// `sigmas` and pooled (last row).
pub fn evaluate_substrate(
    l: &crate::substrate::Loaded,
    set: &EvalSet,
    sigmas: &[f32],
    o: &EngineEvalOptions,
) -> Result<Vec<EngineRow>, String> {
    use crate::substrate::{relax_many, Readout};
    use thermo_sim::engine::Saturation;
    let sub = &l.sub;
    let (dec, dec0) = (&l.dec, &l.dec0);
    let amat = sub.dense_a();
    let chol = amat
        .clone()
        .cholesky()
        .ok_or("A is not positive definite")?;
    let n = set.len();
    let d = sub.units();
    let mut mu_i = DMatrix::zeros(n, d);
    let mut mu_o = DMatrix::zeros(n, d);
    let mut max_diff = vec![0.0f64; n];
    let mut sat = vec![(Saturation::default(), Saturation::default()); n];
    // the interface's and the oracle's biases of every row; the engines run them all at once
    let bs: Vec<Vec<f64>> = (0..n).map(|r| l.interface_bias(set, r)).collect();
    let stars: Vec<Vec<f64>> = (0..n)
        .map(|r| {
            let truth = DVector::from_iterator(d, set.truth.row(r).iter().copied());
            (&amat * &truth).iter().copied().collect()
        })
        .collect();
    let seeds: Vec<u64> = (0..n).map(|r| o.seed.wrapping_add(r as u64)).collect();
    let both: Vec<Vec<f64>> = bs.iter().chain(&stars).cloned().collect();
    let seeds2: Vec<u64> = seeds.iter().chain(&seeds).copied().collect();
    let run = |arith_golden: bool| {
        if arith_golden {
            relax_many(
                sub,
                thermo_sim::Golden::new(sub),
                &both,
                &seeds2,
                o.burn_in,
                o.sweeps,
                o.threads,
            )
        } else {
            relax_many(
                sub,
                thermo_sim::Fixed::new(sub),
                &both,
                &seeds2,
                o.burn_in,
                o.sweeps,
                o.threads,
            )
        }
    };
    let mut engine_out = match o.readout {
        Readout::Exact => Vec::new(),
        Readout::Golden => run(true),
        Readout::Fixed => run(false),
    }
    .into_iter();
    let mut engine_rows: Vec<(Vec<f64>, Saturation)> = engine_out.by_ref().take(n).collect();
    let mut engine_star: Vec<(Vec<f64>, Saturation)> = engine_out.collect();
    for r in 0..n {
        let b = &bs[r];
        let b_star = &stars[r];
        let exact = chol.solve(&DVector::from_vec(b.clone()));
        let ((xi, si), (xo, so)): ((Vec<f64>, Saturation), (Vec<f64>, Saturation)) = match o.readout
        {
            Readout::Exact => (
                (exact.iter().copied().collect(), Default::default()),
                (
                    chol.solve(&DVector::from_vec(b_star.clone()))
                        .iter()
                        .copied()
                        .collect(),
                    Default::default(),
                ),
            ),
            Readout::Golden | Readout::Fixed => (
                std::mem::take(&mut engine_rows[r]),
                std::mem::take(&mut engine_star[r]),
            ),
        };
        for &u in dec0 {
            max_diff[r] = max_diff[r].max((xi[u] - exact[u]).abs());
        }
        sat[r] = (si, so);
        for k in 0..d {
            mu_i[(r, k)] = xi[k];
            mu_o[(r, k)] = xo[k];
        }
    }
    let score = |m: &DMatrix<f64>, rows: &[usize]| Scores {
        dec0: similarity(&cols(&set.truth, rows, dec0), &cols(m, rows, dec0)),
        decoder: similarity(&cols(&set.truth, rows, dec), &cols(m, rows, dec)),
    };
    let mut groups: Vec<(Option<f32>, Vec<usize>)> =
        sigmas.iter().map(|&s| (Some(s), set.rows_at(s))).collect();
    groups.push((None, (0..n).collect()));
    let mut rows = Vec::new();
    for (s, idx) in groups {
        if idx.is_empty() {
            continue;
        }
        rows.push(EngineRow {
            sigma: s,
            n: idx.len(),
            interface: score(&mu_i, &idx),
            oracle: score(&mu_o, &idx),
            max_abs_vs_exact: idx.iter().map(|&r| max_diff[r]).fold(0.0, f64::max),
            saturation_interface: idx.iter().fold(Default::default(), |mut t, &r| {
                t.add(&sat[r].0);
                t
            }),
            saturation_oracle: idx.iter().fold(Default::default(), |mut t, &r| {
                t.add(&sat[r].1);
                t
            }),
        });
    }
    Ok(rows)
}
