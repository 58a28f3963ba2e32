//! The substrate description: what a user writes (TOML) or the compiler emits (JSON), and the
//! validated [`Substrate`] every engine, the RTL generator and the exporters read.
//!
//! Energy (`docs/design.md` §1), with units grouped into modules laid out in file order:
//!
//! ```text
//! E(x) = 1/2 sum_i a_i x_i^2 + 1/2 sum_{i!=j} A_ij x_i x_j - sum_i b_i rho(x_i)
//!        - sum_buses sum_r sigma_r (u_r . rho(x_enc)) (v_r . rho(x_dec))
//! ```
//!
//! (`rho` is the identity unless an activation is configured; with the identity the couplings
//! term reads `1/2 x^T A x - b^T x` with `A` including the buses' blocks `-sigma_r u_r v_r^T`.)

use crate::error::{Error, Result};
use crate::qformat::{QFormat, ACC_BITS};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The role of a module in the U-Net hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An encoder level (level 0 is the finest).
    Encoder,
    /// The bottleneck.
    Bottleneck,
    /// A decoder level (level 0 is the finest, read out).
    Decoder,
}

/// A per-unit quantity given either as one value for the whole module or one value per unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerUnit {
    /// The same value for every unit of the module.
    Uniform(f64),
    /// One value per unit.
    Each(Vec<f64>),
}

impl PerUnit {
    fn expand(&self, n: usize) -> Vec<f64> {
        match self {
            PerUnit::Uniform(v) => vec![*v; n],
            PerUnit::Each(v) => v.clone(),
        }
    }
}

/// Bounded activation `rho` applied to states where they act on other units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `rho(x) = x`: the quadratic energy, with an exact stationary law.
    #[default]
    Identity,
    /// `rho(x) = clamp(x, lo, hi)`, `rho'(x) = 1` inside `[lo, hi]`, else 0.
    Clamp {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
}

/// One module as written in a description file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    /// Unique name, used by buses and in reports and VCD scopes.
    pub name: String,
    /// Role in the hierarchy.
    pub role: Role,
    /// Level in the hierarchy (0 = finest); bottleneck level is informative only.
    #[serde(default)]
    pub level: u32,
    /// Number of units.
    pub size: usize,
    /// Unit stiffness `a_i` (diagonal of `A`).
    #[serde(default = "default_stiffness")]
    pub stiffness: PerUnit,
    /// Bias `b_i`.
    #[serde(default = "default_bias")]
    pub bias: PerUnit,
    /// State shift `k`: the fixed engine and the RTL keep this module's states with `k` more
    /// fraction bits, in `Q(state.bits, state.frac + k)` (`docs/fixed-point.md` §1), so a module
    /// whose states are small (the `g^m` scale of the clamped compile) keeps its resolution.
    /// The law is unchanged: golden and exact engines ignore it. At most [`MAX_SHIFT`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift: u32,
}

/// The largest module state shift.
pub const MAX_SHIFT: u32 = 15;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn default_stiffness() -> PerUnit {
    PerUnit::Uniform(1.0)
}
fn default_bias() -> PerUnit {
    PerUnit::Uniform(0.0)
}

/// A rank-k skip coupling bus between an encoder and a decoder module:
/// `E_skip = - sum_r sigma_r (u_r . x_enc) (v_r . x_dec)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Encoder-side module name.
    pub encoder: String,
    /// Decoder-side module name.
    pub decoder: String,
    /// Per-rank gains `sigma_r` (length k).
    pub sigma: Vec<f64>,
    /// Encoder factors, k rows of encoder size.
    pub u: Vec<Vec<f64>>,
    /// Decoder factors, k rows of decoder size.
    pub v: Vec<Vec<f64>>,
}

/// The Q formats of the datapath (see `docs/fixed-point.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Formats {
    /// Unit states.
    #[serde(default = "default_state")]
    pub state: QFormat,
    /// Stored couplings: self coefficients `1 - eta a_i`, `-eta A_ij`, bus factors `u`, `v`.
    #[serde(default = "default_coupling")]
    pub coupling: QFormat,
    /// Bus line values (the k sums each bus carries).
    #[serde(default = "default_bus")]
    pub bus: QFormat,
    /// Bus gains `eta sigma_r`.
    #[serde(default = "default_gain")]
    pub gain: QFormat,
    /// Noise amplitude `sqrt(2 eta T)`.
    #[serde(default = "default_noise_gain")]
    pub noise_gain: QFormat,
}

fn default_state() -> QFormat {
    QFormat::new(16, 10)
}
fn default_coupling() -> QFormat {
    QFormat::new(16, 14)
}
fn default_bus() -> QFormat {
    QFormat::new(16, 8)
}
fn default_gain() -> QFormat {
    QFormat::new(16, 14)
}
fn default_noise_gain() -> QFormat {
    QFormat::new(16, 14)
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            state: default_state(),
            coupling: default_coupling(),
            bus: default_bus(),
            gain: default_gain(),
            noise_gain: default_noise_gain(),
        }
    }
}

impl Formats {
    /// Accumulator format: 32 bits with `state.frac + coupling.frac` fractional bits (the binary
    /// point of a state x coupling product). Biases are stored in it.
    pub fn acc(&self) -> QFormat {
        QFormat::new(ACC_BITS, self.state.frac + self.coupling.frac)
    }

    /// The state format of a module with state shift `k`: `k` more fraction bits.
    pub fn module_state(&self, k: u32) -> QFormat {
        QFormat::new(self.state.bits, self.state.frac + k)
    }

    /// The accumulator format of a module with state shift `k` (its units' biases and sums).
    pub fn module_acc(&self, k: u32) -> QFormat {
        QFormat::new(ACC_BITS, self.state.frac + k + self.coupling.frac)
    }
}

/// A substrate description file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubstrateConfig {
    /// Human-readable name.
    pub name: String,
    /// Temperature `T` (>= 0).
    pub temperature: f64,
    /// Euler–Maruyama step `eta` (0 < eta < 2/lambda_max(A)).
    pub eta: f64,
    /// Hardware lanes `P` (also the number of noise lanes).
    pub lanes: u32,
    /// Default noise seed.
    #[serde(default)]
    pub seed: u64,
    /// Optional bounded activation.
    #[serde(default)]
    pub activation: Activation,
    /// Q formats.
    #[serde(default)]
    pub formats: Formats,
    /// Modules, in unit order.
    pub modules: Vec<ModuleConfig>,
    /// Off-diagonal entries of `A` as `[i, j, A_ij]` with global unit indices; both `(i,j)` and
    /// `(j,i)` must be listed with equal values.
    #[serde(default)]
    pub couplings: Vec<(usize, usize, f64)>,
    /// Rank-k skip buses.
    #[serde(default)]
    pub buses: Vec<BusConfig>,
}

/// The self coefficient `1 - eta a_i` of a unit with stiffness `a_i` (the weight of its own
/// state in the update rule; stored in the coupling format).
pub fn self_coefficient(eta: f64, a: f64) -> f64 {
    1.0 - eta * a
}

/// The noise amplitude `sqrt(2 eta T)` (stored in the noise-gain format).
pub fn noise_amplitude(eta: f64, temperature: f64) -> f64 {
    (2.0 * eta * temperature).sqrt()
}

impl SubstrateConfig {
    /// Noise amplitude `sqrt(2 eta T)` of the description.
    pub fn noise_amplitude(&self) -> f64 {
        noise_amplitude(self.eta, self.temperature)
    }
}

/// A validated module: its place in the unit vector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Module {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Level.
    pub level: u32,
    /// First global unit index.
    pub offset: usize,
    /// Number of units.
    pub size: usize,
    /// State shift (extra fraction bits of its states in the fixed arithmetic).
    pub shift: u32,
}

impl Module {
    /// Global unit range.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.size
    }
}

/// A validated bus with module indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Bus {
    /// Encoder module index.
    pub enc: usize,
    /// Decoder module index.
    pub dec: usize,
    /// Per-rank gains.
    pub sigma: Vec<f64>,
    /// Encoder factors (k rows).
    pub u: Vec<Vec<f64>>,
    /// Decoder factors (k rows).
    pub v: Vec<Vec<f64>>,
}

impl Bus {
    /// Rank k.
    pub fn rank(&self) -> usize {
        self.sigma.len()
    }
}

/// A validated substrate: everything the engines need, in `f64`.
#[derive(Clone, Debug)]
pub struct Substrate {
    /// Name.
    pub name: String,
    /// Modules in unit order.
    pub modules: Vec<Module>,
    /// Stiffness `a_i`.
    pub stiffness: Vec<f64>,
    /// Bias `b_i`.
    pub bias: Vec<f64>,
    /// CSR row pointers of the off-diagonal local couplings (length D+1).
    pub row_ptr: Vec<usize>,
    /// CSR column indices (ascending within a row).
    pub col: Vec<usize>,
    /// CSR values `A_ij`.
    pub val: Vec<f64>,
    /// Skip buses.
    pub buses: Vec<Bus>,
    /// Temperature.
    pub temperature: f64,
    /// Step.
    pub eta: f64,
    /// Hardware lanes.
    pub lanes: u32,
    /// Default seed.
    pub seed: u64,
    /// Activation.
    pub activation: Activation,
    /// Q formats.
    pub formats: Formats,
    /// Largest eigenvalue of `A` (exact or a certified bound; see [`Substrate::spectrum`]).
    pub lambda_max: f64,
    /// Smallest eigenvalue of `A` (or a certified lower bound).
    pub lambda_min: f64,
}

/// The readout units (what READOUT returns and what a loss is measured on): every unit of the
/// decoder modules, in unit order.
pub fn readout_units(s: &Substrate) -> Vec<usize> {
    s.modules
        .iter()
        .filter(|m| m.role == Role::Decoder)
        .flat_map(|m| m.range())
        .collect()
}

/// Largest dimension for which dense linear algebra is used in validation.
pub const DENSE_LIMIT: usize = 2048;

impl SubstrateConfig {
    /// Read a description (`.toml` hand-written, `.json` compiled) without validating it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
        if is_json {
            serde_json::from_str(&text).map_err(|e| Error::Parse {
                path: path.into(),
                message: e.to_string(),
            })
        } else {
            toml::from_str(&text).map_err(|e| Error::Parse {
                path: path.into(),
                // A missing top-level field is reported by the parser at the file's first
                // character: say what it is instead of quoting line 1.
                message: match e.span() {
                    Some(sp) if sp.start == 0 && e.message().starts_with("missing field") => {
                        format!(
                            "top level: {} (a required setting of the description)",
                            e.message()
                        )
                    }
                    _ => e.to_string(),
                },
            })
        }
    }

    /// Write as TOML or JSON by extension.
    pub fn save(&self, path: &Path) -> Result<()> {
        let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
        let text = if is_json {
            serde_json::to_string(self).map_err(|e| Error::invalid("", e.to_string()))?
        } else {
            toml::to_string(self).map_err(|e| Error::invalid("", e.to_string()))?
        };
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }
}

fn check_finite(field: &str, values: &[f64]) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("value {v} is not finite"),
            ));
        }
    }
    Ok(())
}

fn check_format(field: &str, q: QFormat) -> Result<()> {
    if !(2..=16).contains(&q.bits) {
        return Err(Error::invalid(
            field,
            format!(
                "{} bits: stored datapath values take 2 to 16 bits (16x16 multiplier)",
                q.bits
            ),
        ));
    }
    if q.frac > 24 {
        return Err(Error::invalid(
            field,
            format!("{} fractional bits: at most 24", q.frac),
        ));
    }
    Ok(())
}

/// Report on how many of `values` (after scaling) do not fit `q`.
fn check_fit(field: &str, what: &str, q: QFormat, fmt_field: &str, values: &[f64]) -> Result<()> {
    let mut n_bad = 0usize;
    let mut worst: f64 = 0.0;
    let mut first = 0usize;
    for (i, &v) in values.iter().enumerate() {
        if !q.fits(v) {
            if n_bad == 0 {
                first = i;
            }
            n_bad += 1;
            worst = worst.max(v.abs());
        }
    }
    if n_bad > 0 {
        let at = if values.len() > 1 {
            format!("{field}[{first}]")
        } else {
            field.to_string()
        };
        return Err(Error::invalid(
            at,
            format!(
                "{n_bad} of {} values of {what} would saturate {fmt_field} = {} (range {} .. {}); largest magnitude {worst:.6}",
                values.len(),
                q.name(),
                q.min_value(),
                q.max_value()
            ),
        ));
    }
    Ok(())
}

impl Substrate {
    /// Load and validate a description file; errors name the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg = SubstrateConfig::load(path)?;
        Substrate::from_config(&cfg).map_err(|e| e.in_file(path))
    }

    /// Validate a description.
    pub fn from_config(cfg: &SubstrateConfig) -> Result<Self> {
        if !cfg.temperature.is_finite() || cfg.temperature < 0.0 {
            return Err(Error::invalid(
                "temperature",
                format!("{} must be finite and >= 0", cfg.temperature),
            ));
        }
        if !cfg.eta.is_finite() || cfg.eta <= 0.0 {
            return Err(Error::invalid(
                "eta",
                format!("{} must be finite and > 0", cfg.eta),
            ));
        }
        if cfg.modules.is_empty() {
            return Err(Error::invalid(
                "modules",
                "a substrate needs at least one module",
            ));
        }
        let f = cfg.formats;
        check_format("formats.state", f.state)?;
        check_format("formats.coupling", f.coupling)?;
        check_format("formats.bus", f.bus)?;
        check_format("formats.gain", f.gain)?;
        check_format("formats.noise_gain", f.noise_gain)?;
        if f.state.frac + f.coupling.frac > 30 {
            return Err(Error::invalid(
                "formats",
                format!(
                    "state.frac + coupling.frac = {} leaves the 32-bit accumulator no integer bits (limit 30)",
                    f.state.frac + f.coupling.frac
                ),
            ));
        }

        // Modules.
        let mut modules = Vec::new();
        let mut stiffness = Vec::new();
        let mut bias = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut offset = 0;
        for (m, mc) in cfg.modules.iter().enumerate() {
            let field = format!("modules[{m}]");
            if mc.size == 0 {
                return Err(Error::invalid(
                    format!("{field}.size"),
                    "a module needs at least one unit",
                ));
            }
            if names.insert(mc.name.as_str(), m).is_some() {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("duplicate module name '{}'", mc.name),
                ));
            }
            for (what, pu) in [("stiffness", &mc.stiffness), ("bias", &mc.bias)] {
                if let PerUnit::Each(v) = pu {
                    if v.len() != mc.size {
                        return Err(Error::invalid(
                            format!("{field}.{what}"),
                            format!(
                                "has {} values but the module has {} units",
                                v.len(),
                                mc.size
                            ),
                        ));
                    }
                }
                check_finite(&format!("{field}.{what}"), &pu.expand(mc.size))?;
            }
            // A unit's own stiffness must be positive (the diagonal of a positive definite A).
            let st = mc.stiffness.expand(mc.size);
            if let Some(u) = st.iter().position(|&a| a <= 0.0) {
                return Err(Error::invalid(
                    format!("{field}.stiffness"),
                    format!(
                        "unit {u} has stiffness {} (must be > 0: the diagonal of a positive definite A)",
                        st[u]
                    ),
                ));
            }
            if mc.shift > MAX_SHIFT {
                return Err(Error::invalid(
                    format!("{field}.shift"),
                    format!("{} exceeds the largest state shift {MAX_SHIFT}", mc.shift),
                ));
            }
            stiffness.extend(st);
            bias.extend(mc.bias.expand(mc.size));
            modules.push(Module {
                name: mc.name.clone(),
                role: mc.role,
                level: mc.level,
                offset,
                size: mc.size,
                shift: mc.shift,
            });
            offset += mc.size;
        }
        let d = offset;
        if cfg.lanes == 0 || cfg.lanes as usize > d {
            return Err(Error::invalid(
                "lanes",
                format!(
                    "{} lanes for {d} units: need 1 <= lanes <= units",
                    cfg.lanes
                ),
            ));
        }

        // Couplings: range, finiteness, duplicates, symmetry. The entries are checked in list
        // order up to the first one that is out of range, diagonal or not finite; the listed
        // entries are then ordered by (row, column), list order among equal positions, which
        // finds duplicates (the earliest second listing is named), answers the symmetry look-ups
        // and gives the CSR rows.
        let mut first_bad = None;
        for (n, &(i, j, a)) in cfg.couplings.iter().enumerate() {
            let field = format!("couplings[{n}]");
            let err = if i >= d || j >= d {
                Some(Error::invalid(
                    field,
                    format!("unit index ({i}, {j}) out of range: the substrate has {d} units"),
                ))
            } else if i == j {
                Some(Error::invalid(
                    field,
                    format!("diagonal entry ({i}, {i}): give it as the module's stiffness"),
                ))
            } else if !a.is_finite() {
                Some(Error::invalid(field, format!("value {a} is not finite")))
            } else {
                None
            };
            if let Some(e) = err {
                first_bad = Some((n, e));
                break;
            }
        }
        let listed = first_bad.as_ref().map_or(cfg.couplings.len(), |b| b.0);
        let key = |n: usize| (cfg.couplings[n].0, cfg.couplings[n].1);
        let mut order: Vec<usize> = (0..listed).collect();
        order.sort_by_key(|&n| key(n));
        let first_dup = order
            .windows(2)
            .filter(|w| key(w[0]) == key(w[1]))
            .map(|w| w[1])
            .min();
        match (first_dup, first_bad) {
            (Some(n), bad) if bad.as_ref().map_or(true, |b| n < b.0) => {
                let (i, j) = key(n);
                return Err(Error::invalid(
                    format!("couplings[{n}]"),
                    format!("entry ({i}, {j}) is listed twice"),
                ));
            }
            (_, Some((_, e))) => return Err(e),
            _ => {}
        }
        for &n in &order {
            let (i, j, a) = cfg.couplings[n];
            match order.binary_search_by_key(&(j, i), |&m| key(m)) {
                Err(_) => {
                    return Err(Error::invalid(
                        format!("couplings[{n}]"),
                        format!("A is not symmetric: ({i}, {j}) = {a} has no ({j}, {i}) entry"),
                    ))
                }
                Ok(m) => {
                    let b = cfg.couplings[order[m]].2;
                    if (a - b).abs() > 1e-12 * a.abs().max(b.abs()).max(1.0) {
                        return Err(Error::invalid(
                            format!("couplings[{n}]"),
                            format!("A is not symmetric: ({i}, {j}) = {a} but ({j}, {i}) = {b}"),
                        ));
                    }
                }
            }
        }
        let mut row_ptr = vec![0; d + 1];
        let mut col = Vec::with_capacity(order.len());
        let mut val = Vec::with_capacity(order.len());
        for &n in &order {
            let (i, j, a) = cfg.couplings[n];
            row_ptr[i + 1] += 1;
            col.push(j);
            val.push(a);
        }
        drop(order);
        for r in 0..d {
            row_ptr[r + 1] += row_ptr[r];
        }

        // Buses.
        let mut buses = Vec::new();
        for (b, bc) in cfg.buses.iter().enumerate() {
            let field = format!("buses[{b}]");
            let enc = *names.get(bc.encoder.as_str()).ok_or_else(|| {
                Error::invalid(
                    format!("{field}.encoder"),
                    format!("no module named '{}'", bc.encoder),
                )
            })?;
            let dec = *names.get(bc.decoder.as_str()).ok_or_else(|| {
                Error::invalid(
                    format!("{field}.decoder"),
                    format!("no module named '{}'", bc.decoder),
                )
            })?;
            if enc == dec {
                return Err(Error::invalid(
                    format!("{field}.decoder"),
                    "a bus joins two different modules",
                ));
            }
            let k = bc.sigma.len();
            if k == 0 {
                return Err(Error::invalid(
                    format!("{field}.sigma"),
                    "rank k must be at least 1",
                ));
            }
            check_finite(&format!("{field}.sigma"), &bc.sigma)?;
            for (what, rows, n) in [
                ("u", &bc.u, modules[enc].size),
                ("v", &bc.v, modules[dec].size),
            ] {
                if rows.len() != k {
                    return Err(Error::invalid(
                        format!("{field}.{what}"),
                        format!("has {} rows but sigma gives rank {k}", rows.len()),
                    ));
                }
                for (r, row) in rows.iter().enumerate() {
                    if row.len() != n {
                        return Err(Error::invalid(
                            format!("{field}.{what}[{r}]"),
                            format!("has {} values but the module has {n} units", row.len()),
                        ));
                    }
                    check_finite(&format!("{field}.{what}[{r}]"), row)?;
                }
            }
            buses.push(Bus {
                enc,
                dec,
                sigma: bc.sigma.clone(),
                u: bc.u.clone(),
                v: bc.v.clone(),
            });
        }

        if let Activation::Clamp { lo, hi } = cfg.activation {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::invalid(
                    "activation.clamp",
                    format!("need finite lo < hi, got [{lo}, {hi}]"),
                ));
            }
            check_fit(
                "activation.clamp",
                "the clamp bounds",
                f.state,
                "formats.state",
                &[lo, hi],
            )?;
        }

        let mut s = Substrate {
            name: cfg.name.clone(),
            modules,
            stiffness,
            bias,
            row_ptr,
            col,
            val,
            buses,
            temperature: cfg.temperature,
            eta: cfg.eta,
            lanes: cfg.lanes,
            seed: cfg.seed,
            activation: cfg.activation,
            formats: cfg.formats,
            lambda_max: 0.0,
            lambda_min: 0.0,
        };
        s.check_spectrum()?;
        s.check_formats()?;
        Ok(s)
    }

    /// Check the substrate again after its values changed (training writes them): `A`
    /// positive definite, `eta lambda_max < 2`, every constant inside its Q format, values
    /// finite. Refreshes `lambda_min`/`lambda_max`.
    pub fn revalidate(&mut self) -> Result<()> {
        check_finite("stiffness", &self.stiffness)?;
        check_finite("bias", &self.bias)?;
        check_finite("couplings", &self.val)?;
        for (b, bus) in self.buses.iter().enumerate() {
            check_finite(&format!("buses[{b}].sigma"), &bus.sigma)?;
            for (r, (u, v)) in bus.u.iter().zip(&bus.v).enumerate() {
                check_finite(&format!("buses[{b}].u[{r}]"), u)?;
                check_finite(&format!("buses[{b}].v[{r}]"), v)?;
            }
        }
        self.check_spectrum()?;
        self.check_formats()
    }

    /// The description of this substrate (per-unit stiffness and biases, couplings from the
    /// CSR rows): `Substrate::from_config(&s.to_config())` gives `s` back.
    pub fn to_config(&self) -> SubstrateConfig {
        let mut couplings = Vec::with_capacity(self.nnz());
        for i in 0..self.units() {
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                couplings.push((i, self.col[p], self.val[p]));
            }
        }
        SubstrateConfig {
            name: self.name.clone(),
            temperature: self.temperature,
            eta: self.eta,
            lanes: self.lanes,
            seed: self.seed,
            activation: self.activation,
            formats: self.formats,
            modules: self
                .modules
                .iter()
                .map(|m| ModuleConfig {
                    name: m.name.clone(),
                    role: m.role,
                    level: m.level,
                    size: m.size,
                    stiffness: PerUnit::Each(self.stiffness[m.range()].to_vec()),
                    bias: PerUnit::Each(self.bias[m.range()].to_vec()),
                    shift: m.shift,
                })
                .collect(),
            couplings,
            buses: self
                .buses
                .iter()
                .map(|b| BusConfig {
                    encoder: self.modules[b.enc].name.clone(),
                    decoder: self.modules[b.dec].name.clone(),
                    sigma: b.sigma.clone(),
                    u: b.u.clone(),
                    v: b.v.clone(),
                })
                .collect(),
        }
    }

    /// The module of unit `i`.
    pub fn module_of(&self, i: usize) -> usize {
        self.modules.partition_point(|m| m.offset + m.size <= i)
    }

    /// The real value of one state code of unit `i` in the fixed arithmetic: `2^-(state.frac +
    /// k)` with `k` its module's state shift.
    pub fn state_lsb(&self, i: usize) -> f64 {
        self.formats
            .module_state(self.modules[self.module_of(i)].shift)
            .lsb()
    }

    /// Whether any module has a state shift.
    pub fn shifted(&self) -> bool {
        self.modules.iter().any(|m| m.shift != 0)
    }

    /// `2^(k_i - k_j)`: the factor a coupling `(i, j)` is stored with in the fixed arithmetic
    /// (1 without state shifts).
    pub fn coupling_scale(&self, i: usize, j: usize) -> f64 {
        let (ki, kj) = (
            self.modules[self.module_of(i)].shift as i32,
            self.modules[self.module_of(j)].shift as i32,
        );
        2f64.powi(ki - kj)
    }

    /// Number of units D.
    pub fn units(&self) -> usize {
        self.stiffness.len()
    }

    /// The CSR entry of `(j, i)` for the entry `p` of `(i, j)` (every coupling is stored in
    /// both directions, columns ascending within a row). `i` is the row of `p`.
    pub fn mirror(&self, i: usize, p: usize) -> usize {
        let j = self.col[p];
        let row = &self.col[self.row_ptr[j]..self.row_ptr[j + 1]];
        self.row_ptr[j] + row.partition_point(|&c| c < i)
    }

    /// Number of stored off-diagonal local couplings.
    pub fn nnz(&self) -> usize {
        self.col.len()
    }

    /// `y = A x` including the buses' blocks (the full quadratic form's matrix).
    pub fn matvec(&self, x: &[f64], y: &mut [f64]) {
        for i in 0..self.units() {
            let mut s = self.stiffness[i] * x[i];
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                s += self.val[p] * x[self.col[p]];
            }
            y[i] = s;
        }
        for bus in &self.buses {
            let (e, dm) = (&self.modules[bus.enc], &self.modules[bus.dec]);
            for r in 0..bus.rank() {
                let s: f64 = bus.u[r].iter().zip(&x[e.range()]).map(|(a, b)| a * b).sum();
                let t: f64 = bus.v[r]
                    .iter()
                    .zip(&x[dm.range()])
                    .map(|(a, b)| a * b)
                    .sum();
                for (n, i) in e.range().enumerate() {
                    y[i] -= bus.sigma[r] * bus.u[r][n] * t;
                }
                for (n, i) in dm.range().enumerate() {
                    y[i] -= bus.sigma[r] * bus.v[r][n] * s;
                }
            }
        }
    }

    /// Dense `A` with the buses' blocks `-sigma_r u_r v_r^T` (and transposes).
    pub fn dense_a(&self) -> DMatrix<f64> {
        let d = self.units();
        let mut a = DMatrix::zeros(d, d);
        for i in 0..d {
            a[(i, i)] = self.stiffness[i];
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                a[(i, self.col[p])] += self.val[p];
            }
        }
        for bus in &self.buses {
            let (e, dm) = (&self.modules[bus.enc], &self.modules[bus.dec]);
            for r in 0..bus.rank() {
                for (ni, i) in e.range().enumerate() {
                    for (nj, j) in dm.range().enumerate() {
                        let c = bus.sigma[r] * bus.u[r][ni] * bus.v[r][nj];
                        a[(i, j)] -= c;
                        a[(j, i)] -= c;
                    }
                }
            }
        }
        a
    }

    /// Gershgorin bounds `(lower, upper)` on the spectrum of `A` (buses included).
    pub fn gershgorin(&self) -> (f64, f64) {
        let d = self.units();
        let mut radius = vec![0.0; d];
        for (i, r) in radius.iter_mut().enumerate() {
            *r = self.val[self.row_ptr[i]..self.row_ptr[i + 1]]
                .iter()
                .map(|a| a.abs())
                .sum();
        }
        for bus in &self.buses {
            let (e, dm) = (&self.modules[bus.enc], &self.modules[bus.dec]);
            for r in 0..bus.rank() {
                let su: f64 = bus.u[r].iter().map(|a| a.abs()).sum();
                let sv: f64 = bus.v[r].iter().map(|a| a.abs()).sum();
                for (n, i) in e.range().enumerate() {
                    radius[i] += bus.sigma[r].abs() * bus.u[r][n].abs() * sv;
                }
                for (n, i) in dm.range().enumerate() {
                    radius[i] += bus.sigma[r].abs() * bus.v[r][n].abs() * su;
                }
            }
        }
        let lo = (0..d)
            .map(|i| self.stiffness[i] - radius[i])
            .fold(f64::INFINITY, f64::min);
        let hi = (0..d)
            .map(|i| self.stiffness[i] + radius[i])
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }

    /// Extreme eigenvalues of `A`: exact (dense) up to [`DENSE_LIMIT`] units, else Lanczos.
    pub fn spectrum(&self) -> (f64, f64) {
        if self.units() <= DENSE_LIMIT {
            let e = self.dense_a().symmetric_eigenvalues();
            (e.min(), e.max())
        } else {
            crate::linalg::lanczos_extremes(self.units(), 120, |x, y| self.matvec(x, y))
        }
    }

    fn check_spectrum(&mut self) -> Result<()> {
        let (glo, ghi) = self.gershgorin();
        let (lo, hi) = if glo > 0.0 && self.eta * ghi < 2.0 {
            (glo, ghi) // certified by Gershgorin alone
        } else {
            self.spectrum()
        };
        self.lambda_min = lo;
        self.lambda_max = hi;
        if !(lo > 0.0) {
            return Err(Error::invalid(
                "couplings",
                format!(
                    "A (stiffness, couplings and buses) is not positive definite: smallest eigenvalue {lo:.6e}; raise the stiffness or weaken the couplings"
                ),
            ));
        }
        if self.eta * hi >= 2.0 {
            return Err(Error::invalid(
                "eta",
                format!(
                    "eta = {} >= 2/lambda_max(A) = {:.6} (lambda_max = {hi:.6}): the discretised dynamics diverge",
                    self.eta,
                    2.0 / hi
                ),
            ));
        }
        Ok(())
    }

    /// Every stored constant must fit its Q format (see `docs/fixed-point.md`).
    fn check_formats(&self) -> Result<()> {
        let f = self.formats;
        let eta = self.eta;
        for (mi, m) in self.modules.iter().enumerate() {
            let field = format!("modules[{mi}]");
            let diag: Vec<f64> = self.stiffness[m.range()]
                .iter()
                .map(|&a| self_coefficient(eta, a))
                .collect();
            check_fit(
                &format!("{field}.stiffness"),
                "the self coefficient 1 - eta*a",
                f.coupling,
                "formats.coupling",
                &diag,
            )?;
            let h: Vec<f64> = self.bias[m.range()].iter().map(|b| eta * b).collect();
            check_fit(
                &format!("{field}.bias"),
                "eta*b",
                f.module_acc(m.shift),
                &format!("the accumulator format of state shift {}", m.shift),
                &h,
            )?;
        }
        // Stored as `-eta A_ij 2^(k_i - k_j)` (the row's unit i in its module's state frame).
        let c: Vec<f64> = (0..self.units())
            .flat_map(|i| {
                (self.row_ptr[i]..self.row_ptr[i + 1])
                    .map(move |p| -eta * self.val[p] * self.coupling_scale(i, self.col[p]))
            })
            .collect();
        check_fit(
            "couplings",
            "-eta*A_ij*2^(shift_i - shift_j) (in CSR order)",
            f.coupling,
            "formats.coupling",
            &c,
        )?;
        for (b, bus) in self.buses.iter().enumerate() {
            for r in 0..bus.rank() {
                check_fit(
                    &format!("buses[{b}].u[{r}]"),
                    "u",
                    f.coupling,
                    "formats.coupling",
                    &bus.u[r],
                )?;
                check_fit(
                    &format!("buses[{b}].v[{r}]"),
                    "v",
                    f.coupling,
                    "formats.coupling",
                    &bus.v[r],
                )?;
            }
            let g: Vec<f64> = bus.sigma.iter().map(|s| eta * s).collect();
            check_fit(
                &format!("buses[{b}].sigma"),
                "eta*sigma",
                f.gain,
                "formats.gain",
                &g,
            )?;
        }
        check_fit(
            "temperature",
            "the noise amplitude sqrt(2*eta*T)",
            f.noise_gain,
            "formats.noise_gain",
            &[self.noise_amplitude()],
        )?;
        Ok(())
    }

    /// Noise amplitude `sqrt(2 eta T)`.
    pub fn noise_amplitude(&self) -> f64 {
        noise_amplitude(self.eta, self.temperature)
    }

    /// Hardware lane that updates unit `i` (interleaved: `i mod P`).
    pub fn lane_of(&self, i: usize) -> usize {
        i % self.lanes as usize
    }

    /// Exact stationary mean `A^-1 b` and covariance `T (A - eta/2 A^2)^-1` of the discrete chain
    /// (identity activation only; dense).
    pub fn stationary_law(&self) -> (nalgebra::DVector<f64>, DMatrix<f64>) {
        let a = self.dense_a();
        let b = nalgebra::DVector::from_vec(self.bias.clone());
        let mean = a
            .clone()
            .cholesky()
            .expect("validated A is positive definite")
            .solve(&b);
        let m = &a - (&a * &a) * (self.eta / 2.0);
        let cov = m
            .cholesky()
            .expect("eta < 2/lambda_max makes A - eta/2 A^2 positive definite")
            .inverse()
            * self.temperature;
        (mean, cov)
    }
}
