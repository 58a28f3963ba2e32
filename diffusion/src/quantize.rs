//! The quantisation sweep of `thermo quantize`: for every pair (coupling bits,
//! state bits) the compiled substrate is re-quantised by [`crate::compile::choose_formats`]
//! (integer bits from the data ranges recorded at compile time), the fixed engine relaxes it on
//! held-out inputs with the conditioning interface's biases, and its time-averaged dec0 readout
//! is compared with the golden (float) engine's and with the U-Net's activations.

use crate::compile::{choose_formats, Ranges};
use crate::eval::EvalSet;
use crate::gram::{similarity, Similarity};
use crate::substrate::{relax_many, Loaded};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use thermo_sim::engine::Saturation;
use thermo_sim::model::Formats;
use thermo_sim::{Fixed, Golden, Substrate};

/// What to sweep and how long to relax.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepOptions {
    /// Widths of the stored constants (couplings, bus factors, bus gains, noise amplitude).
    pub coupling_bits: Vec<u32>,
    /// Widths of the signals (states, bus lines).
    pub state_bits: Vec<u32>,
    /// Sweeps discarded from state zero.
    pub burn_in: u64,
    /// Sweeps averaged.
    pub sweeps: u64,
    /// Noise seed of row `r` is `seed + r` (the same for every format and for golden).
    pub seed: u64,
    /// A format is "within tolerance" when its dec0 cosine against the U-Net is at most this
    /// much below the golden engine's.
    pub tolerance: f64,
    /// Engine threads (the results do not depend on it; not part of a report).
    #[serde(skip, default = "default_threads")]
    pub threads: usize,
}

fn default_threads() -> usize {
    2
}

/// One format of the sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// Coupling (stored constant) width.
    pub coupling_bits: u32,
    /// State (signal) width.
    pub state_bits: u32,
    /// The formats chosen, `None` if no valid description exists at these widths.
    pub formats: Option<Formats>,
    /// Why the description is invalid at these widths.
    pub error: Option<String>,
    /// dec0 means of the fixed engine against the U-Net's dec0 activations.
    pub vs_unet: Option<Similarity>,
    /// dec0 means of the fixed engine against the golden engine's (golden as the reference).
    pub vs_golden: Option<Similarity>,
    /// Largest |fixed - golden| over dec0 units and inputs.
    pub max_abs_vs_golden: Option<f64>,
    /// Saturation events over all runs.
    pub saturation: Saturation,
    /// `vs_unet.cosine >= float cosine - tolerance`.
    pub within: bool,
}

/// The report of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct QuantReport {
    /// Substrate description swept.
    pub substrate: String,
    /// Formats of the description as committed.
    pub committed_formats: Formats,
    /// The data ranges the formats were chosen from.
    pub ranges: Ranges,
    /// Options.
    pub options: SweepOptions,
    /// Held-out images per noise level.
    pub images: usize,
    /// Noise levels.
    pub sigmas: Vec<f32>,
    /// Golden (float) engine's dec0 means against the U-Net.
    pub float_vs_unet: Similarity,
    /// Every format, coupling bits major.
    pub cells: Vec<Cell>,
    /// Smallest coupling width within tolerance at the widest state format.
    pub smallest_coupling_bits: Option<u32>,
    /// Smallest state width within tolerance at the widest coupling format.
    pub smallest_state_bits: Option<u32>,
    /// The within-tolerance pair with the fewest bits in total (coupling + state; ties: fewer
    /// state bits), and whether it saturated.
    pub smallest_pair: Option<(u32, u32)>,
    /// Seconds taken.
    pub seconds: f64,
}

fn pick(m: &[Vec<f64>], cols: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(m.len(), cols.len(), |r, c| m[r][cols[c]])
}

/// Run the sweep on the rows of `set` (held-out inputs). `progress` is called after each format.
pub fn sweep(
    l: &Loaded,
    set: &EvalSet,
    images: usize,
    sigmas: &[f32],
    opts: &SweepOptions,
    mut progress: impl FnMut(&Cell),
) -> Result<QuantReport, String> {
    let t = std::time::Instant::now();
    let ranges = l.side.ranges.clone().ok_or(
        "the side file has no data ranges (written before `thermo quantize` existed): \
         recompile with `thermo compile`",
    )?;
    if opts.coupling_bits.is_empty() || opts.state_bits.is_empty() {
        return Err("empty list of widths".into());
    }
    let n = set.len();
    let biases: Vec<Vec<f64>> = (0..n).map(|r| l.interface_bias(set, r)).collect();
    let truth: Vec<Vec<f64>> = (0..n)
        .map(|r| set.truth.row(r).iter().copied().collect())
        .collect();
    let seeds: Vec<u64> = (0..n).map(|r| opts.seed.wrapping_add(r as u64)).collect();
    let golden: Vec<Vec<f64>> = relax_many(
        &l.sub,
        Golden::new(&l.sub),
        &biases,
        &seeds,
        opts.burn_in,
        opts.sweeps,
        opts.threads,
    )
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    let t_dec0 = pick(&truth, &l.dec0);
    let g_dec0 = pick(&golden, &l.dec0);
    let float_vs_unet = similarity(&t_dec0, &g_dec0);
    let mut cells = Vec::new();
    for &cb in &opts.coupling_bits {
        for &sb in &opts.state_bits {
            let mut cell = Cell {
                coupling_bits: cb,
                state_bits: sb,
                formats: None,
                error: None,
                vs_unet: None,
                vs_golden: None,
                max_abs_vs_golden: None,
                saturation: Saturation::default(),
                within: false,
            };
            let sub = choose_formats(&l.cfg, &ranges, cb, sb).and_then(|f| {
                let mut cfg = l.cfg.clone();
                cfg.formats = f;
                Substrate::from_config(&cfg)
                    .map_err(|e| e.to_string())
                    .map(|s| (f, s))
            });
            match sub {
                Err(e) => cell.error = Some(e),
                Ok((f, sub)) => {
                    cell.formats = Some(f);
                    let mut means = Vec::with_capacity(n);
                    for (m, s) in relax_many(
                        &sub,
                        Fixed::new(&sub),
                        &biases,
                        &seeds,
                        opts.burn_in,
                        opts.sweeps,
                        opts.threads,
                    ) {
                        cell.saturation.add(&s);
                        means.push(m);
                    }
                    let f_dec0 = pick(&means, &l.dec0);
                    let vu = similarity(&t_dec0, &f_dec0);
                    cell.within = vu.cosine >= float_vs_unet.cosine - opts.tolerance;
                    cell.vs_unet = Some(vu);
                    cell.vs_golden = Some(similarity(&g_dec0, &f_dec0));
                    cell.max_abs_vs_golden = Some((&f_dec0 - &g_dec0).amax());
                }
            }
            progress(&cell);
            cells.push(cell);
        }
    }
    let cmax = *opts.coupling_bits.iter().max().unwrap_or(&16);
    let smax = *opts.state_bits.iter().max().unwrap_or(&16);
    let smallest_coupling_bits = cells
        .iter()
        .filter(|c| c.within && c.state_bits == smax)
        .map(|c| c.coupling_bits)
        .min();
    let smallest_state_bits = cells
        .iter()
        .filter(|c| c.within && c.coupling_bits == cmax)
        .map(|c| c.state_bits)
        .min();
    let smallest_pair = cells
        .iter()
        .filter(|c| c.within)
        .min_by_key(|c| (c.coupling_bits + c.state_bits, c.state_bits))
        .map(|c| (c.coupling_bits, c.state_bits));
    Ok(QuantReport {
        substrate: String::new(),
        committed_formats: l.cfg.formats,
        ranges,
        options: opts.clone(),
        images,
        sigmas: sigmas.to_vec(),
        float_vs_unet,
        cells,
        smallest_coupling_bits,
        smallest_state_bits,
        smallest_pair,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Parse a list of widths: `A..B` (every width), `A..B:S` (step S) or `A,B,C`.
pub fn parse_widths(s: &str) -> Result<Vec<u32>, String> {
    let s = s.trim();
    let v: Vec<u32> = if let Some((a, rest)) = s.split_once("..") {
        let (b, step) = match rest.split_once(':') {
            Some((b, st)) => (b, st),
            None => (rest, "1"),
        };
        let p = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|e| format!("widths `{s}`: `{x}`: {e}"))
        };
        let (a, b, st) = (p(a)?, p(b)?, p(step)?);
        if st == 0 || a > b {
            return Err(format!(
                "widths `{s}`: expected A..B or A..B:STEP with A <= B and STEP >= 1"
            ));
        }
        (a..=b).step_by(st as usize).collect()
    } else {
        s.split(',')
            .map(|x| {
                x.trim()
                    .parse::<u32>()
                    .map_err(|e| format!("widths `{s}`: `{x}`: {e}"))
            })
            .collect::<Result<_, _>>()?
    };
    if let Some(w) = v.iter().find(|w| !(2..=16).contains(*w)) {
        return Err(format!(
            "widths `{s}`: {w} bits is outside 2..=16 (the 16x16 multiplier)"
        ));
    }
    if v.is_empty() {
        return Err(format!("widths `{s}`: empty"));
    }
    Ok(v)
}

/// A Markdown table of the sweep: dec0 cosine against the U-Net per format (rows: state bits,
/// columns: coupling bits); `*` marks formats within tolerance, `s` formats that saturated.
pub fn markdown(r: &QuantReport) -> String {
    let cb: Vec<u32> = dedup(r.cells.iter().map(|c| c.coupling_bits));
    let sb: Vec<u32> = dedup(r.cells.iter().map(|c| c.state_bits));
    let mut md = format!(
        "dec0 cosine against the U-Net of the fixed engine's time-averaged means ({} held-out images x {} noise levels, burn-in {} + {} sweeps); float (golden engine) {:.4}. `*`: within {} of float; `s`: saturated; `-`: no valid description.\n\n| state bits \\ coupling bits |",
        r.images,
        r.sigmas.len(),
        r.options.burn_in,
        r.options.sweeps,
        r.float_vs_unet.cosine,
        r.options.tolerance
    );
    for c in &cb {
        md += &format!(" {c} |");
    }
    md += "\n|---|";
    md += &"---|".repeat(cb.len());
    md += "\n";
    for s in sb.iter().rev() {
        md += &format!("| {s} |");
        for c in &cb {
            let cell = r
                .cells
                .iter()
                .find(|x| x.coupling_bits == *c && x.state_bits == *s);
            md += &match cell.and_then(|x| x.vs_unet.map(|v| (x, v))) {
                Some((x, v)) => format!(
                    " {:.4}{}{} |",
                    v.cosine,
                    if x.within { "*" } else { "" },
                    if x.saturation.total() > 0 { " s" } else { "" }
                ),
                None => " - |".into(),
            };
        }
        md += "\n";
    }
    md
}

fn dedup(it: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}
