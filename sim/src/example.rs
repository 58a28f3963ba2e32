//! Random valid substrates in the U-Net layout, for tests, benchmarks and `thermo example`.

use crate::model::{BusConfig, Formats, ModuleConfig, PerUnit, Role, SubstrateConfig};
use crate::noise::SplitDraws;
use std::collections::BTreeMap;

/// Parameters of a random substrate.
#[derive(Clone, Debug)]
pub struct ExampleSpec {
    /// Total units D.
    pub units: usize,
    /// Modules M (encoder levels, an optional bottleneck, decoder levels).
    pub modules: usize,
    /// Rank k of every skip bus (0: no buses).
    pub rank: usize,
    /// Target average number of off-diagonal couplings per unit.
    pub degree: usize,
    /// Hardware lanes P.
    pub lanes: u32,
    /// Temperature T.
    pub temperature: f64,
    /// Typical bias magnitude.
    pub bias_scale: f64,
    /// Random seed (structure and values; also the noise seed).
    pub seed: u64,
    /// Q formats.
    pub formats: Formats,
}

impl Default for ExampleSpec {
    fn default() -> Self {
        ExampleSpec {
            units: 64,
            modules: 3,
            rank: 2,
            degree: 8,
            lanes: 4,
            temperature: 0.05,
            bias_scale: 0.5,
            seed: 1,
            formats: Formats::default(),
        }
    }
}

/// Module roles and levels for M modules: `floor(M/2)` encoder levels, a bottleneck when M is
/// odd, and as many decoder levels (finest first for encoders, coarsest first for decoders).
pub fn unet_layout(m: usize) -> Vec<(String, Role, u32)> {
    let l = m / 2;
    let mut out = Vec::new();
    for i in 0..l {
        out.push((format!("enc{i}"), Role::Encoder, i as u32));
    }
    if m % 2 == 1 {
        out.push(("bottleneck".to_string(), Role::Bottleneck, l as u32));
    }
    for i in (0..l).rev() {
        out.push((format!("dec{i}"), Role::Decoder, i as u32));
    }
    out
}

impl ExampleSpec {
    /// Whether the generator can build this: at least one module and one unit per module.
    pub fn check(&self) -> Result<(), String> {
        if self.modules == 0 || self.units < self.modules {
            return Err(format!(
                "{} units in {} modules: need at least one module and one unit per module",
                self.units, self.modules
            ));
        }
        Ok(())
    }
}

/// A random substrate satisfying every validation rule: diagonally dominant `A` (buses included),
/// `eta = 1 / (Gershgorin bound on lambda_max)`.
/// The spec must pass [`ExampleSpec::check`].
pub fn random_substrate(spec: &ExampleSpec) -> SubstrateConfig {
    let mut rng = SplitDraws(spec.seed ^ 0x7468_6572_6d6f);
    let m = spec.modules.max(1);
    let layout = unet_layout(m);
    let base = spec.units / m;
    let sizes: Vec<usize> = (0..m)
        .map(|i| base + usize::from(i < spec.units % m))
        .collect();
    let offsets: Vec<usize> = sizes
        .iter()
        .scan(0, |acc, &s| {
            let o = *acc;
            *acc += s;
            Some(o)
        })
        .collect();

    // Local couplings: within a module and between hierarchy neighbours (adjacent in file order).
    let mut edges: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let half = (spec.degree / 2).max(1);
    for (mi, (&off, &n)) in offsets.iter().zip(&sizes).enumerate() {
        for local in 0..n {
            let i = off + local;
            for e in 0..half {
                // Within the module, or with the next module in the hierarchy for one edge in four.
                let j = if e % 4 == 3 && mi + 1 < m {
                    offsets[mi + 1] + rng.below(sizes[mi + 1])
                } else if n > 1 {
                    off + (local + 1 + rng.below(n - 1)) % n
                } else {
                    continue;
                };
                if i == j {
                    continue;
                }
                let (a, b) = (i.min(j), i.max(j));
                let sign = if rng.u01() < 0.7 { -1.0 } else { 1.0 };
                let v = sign * (0.05 + 0.25 * rng.u01());
                edges.insert((a, b), v);
            }
        }
    }
    let mut couplings = Vec::with_capacity(edges.len() * 2);
    for (&(i, j), &v) in &edges {
        couplings.push((i, j, v));
        couplings.push((j, i, v));
    }

    // Buses between enc l and dec l.
    let mut buses = Vec::new();
    let names: Vec<&str> = layout.iter().map(|l| l.0.as_str()).collect();
    if spec.rank > 0 {
        for l in 0..m / 2 {
            let (e, d) = (l, m - 1 - l);
            let unit = |rng: &mut SplitDraws, n: usize| {
                let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.into_iter().map(|x| x / norm).collect::<Vec<f64>>()
            };
            let u: Vec<Vec<f64>> = (0..spec.rank).map(|_| unit(&mut rng, sizes[e])).collect();
            let v: Vec<Vec<f64>> = (0..spec.rank).map(|_| unit(&mut rng, sizes[d])).collect();
            let sigma: Vec<f64> = (0..spec.rank).map(|r| 0.6 / (r as f64 + 1.0)).collect();
            buses.push(BusConfig {
                encoder: names[e].to_string(),
                decoder: names[d].to_string(),
                sigma,
                u,
                v,
            });
        }
    }

    // Gershgorin radii, then stiffness = radius + margin.
    let d = spec.units;
    let mut radius = vec![0.0; d];
    for &(i, _, v) in &couplings {
        radius[i] += f64::abs(v);
    }
    for bus in &buses {
        let e = names.iter().position(|n| *n == bus.encoder).unwrap_or(0);
        let dd = names.iter().position(|n| *n == bus.decoder).unwrap_or(0);
        for r in 0..bus.sigma.len() {
            let su: f64 = bus.u[r].iter().map(|x| x.abs()).sum();
            let sv: f64 = bus.v[r].iter().map(|x| x.abs()).sum();
            for (n, x) in bus.u[r].iter().enumerate() {
                radius[offsets[e] + n] += bus.sigma[r] * x.abs() * sv;
            }
            for (n, x) in bus.v[r].iter().enumerate() {
                radius[offsets[dd] + n] += bus.sigma[r] * x.abs() * su;
            }
        }
    }
    let stiffness: Vec<f64> = radius.iter().map(|r| r + 1.0 + 0.5 * rng.u01()).collect();
    let bound = stiffness
        .iter()
        .zip(&radius)
        .map(|(a, r)| a + r)
        .fold(0.0, f64::max);
    let eta = (1.0 / bound * 1e4).floor() / 1e4;

    let modules = layout
        .iter()
        .enumerate()
        .map(|(mi, (name, role, level))| ModuleConfig {
            name: name.clone(),
            role: *role,
            level: *level,
            size: sizes[mi],
            stiffness: PerUnit::Each(stiffness[offsets[mi]..offsets[mi] + sizes[mi]].to_vec()),
            bias: PerUnit::Each(
                (0..sizes[mi])
                    .map(|_| spec.bias_scale * rng.normal())
                    .collect(),
            ),
            shift: 0,
        })
        .collect();
    SubstrateConfig {
        name: format!(
            "random-d{}-m{}-k{}-s{}",
            spec.units, m, spec.rank, spec.seed
        ),
        temperature: spec.temperature,
        eta,
        lanes: spec.lanes,
        seed: spec.seed,
        activation: Default::default(),
        formats: spec.formats,
        modules,
        couplings,
        buses,
    }
}

/// Configuration `n` of the test family shared by the workspace's tests (deterministic): six
/// shapes (units, modules, rank, lanes) cycled, seed `100 + n`.
pub fn family_config(n: u64) -> SubstrateConfig {
    const SHAPES: [(usize, usize, usize, u32); 6] = [
        (48, 3, 2, 4),
        (40, 5, 1, 3),
        (64, 3, 0, 8),
        (32, 2, 3, 2),
        (72, 5, 2, 6),
        (24, 1, 0, 1),
    ];
    let (units, modules, rank, lanes) = SHAPES[n as usize % SHAPES.len()];
    random_substrate(&ExampleSpec {
        units,
        modules,
        rank,
        lanes,
        degree: 6,
        seed: 100 + n,
        ..Default::default()
    })
}

/// A substrate whose one lane has more than 4,096 instruction words (the reach of the RTL's
/// configuration port before it split its address per build): 96 units in one module, 5,788
/// couplings, no bus, one lane (5,980 words). Used by the RTL's port and bitstream tests.
pub fn long_lane_config() -> SubstrateConfig {
    random_substrate(&ExampleSpec {
        units: 96,
        modules: 1,
        rank: 0,
        lanes: 1,
        degree: 94,
        seed: 4,
        ..Default::default()
    })
}

/// The repository's shipped hand-written example, `examples/three-module.toml` (3 modules,
/// 64 units, one rank-2 bus): its path in the source tree.
pub fn shipped_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-module.toml")
}

/// The shipped example, loaded and validated (a fixture of the tests of every crate).
pub fn shipped() -> crate::Substrate {
    crate::Substrate::from_file(&shipped_path()).expect("the shipped example validates")
}

/// Configuration `n` of the test family pushed into saturation (the hardware equivalence tests'
/// fixture): [`family_config`]`(n)` with a narrow state format (6 bits, 3 fractional: +-4),
/// biases scaled up 8x and shifted by +10 and a 4x hotter temperature; for odd `n` the clamp
/// activation `[-3, 3]`, for even `n` a narrow bus format (6 bits, 4 fractional: +-2) so that bus
/// lines saturate too.
pub fn saturating_config(n: u64) -> SubstrateConfig {
    use crate::model::{Activation, PerUnit};
    use crate::qformat::QFormat;
    let mut cfg = family_config(n);
    cfg.name = format!("{}-saturating", cfg.name);
    cfg.formats.state = QFormat::new(6, 3);
    cfg.temperature *= 4.0;
    for m in cfg.modules.iter_mut() {
        m.bias = match &m.bias {
            PerUnit::Uniform(b) => PerUnit::Uniform(b * 8.0 + 10.0),
            PerUnit::Each(v) => PerUnit::Each(v.iter().map(|b| b * 8.0 + 10.0).collect()),
        };
    }
    if n % 2 == 1 {
        cfg.activation = Activation::Clamp { lo: -3.0, hi: 3.0 };
    } else {
        cfg.formats.bus = QFormat::new(6, 4);
    }
    cfg
}

/// Configuration `n` of the test family with a state shift per module (module `m` keeps its
/// states with `(m + n) mod 4` more fraction bits, `docs/fixed-point.md` §1); odd `n` start from
/// [`saturating_config`] (clamp activation, saturating), even `n` from [`family_config`].
pub fn shifted_config(n: u64) -> SubstrateConfig {
    let mut cfg = if n % 2 == 1 {
        saturating_config(n)
    } else {
        family_config(n)
    };
    cfg.name = format!("{}-shifted", cfg.name);
    for (m, mc) in cfg.modules.iter_mut().enumerate() {
        mc.shift = ((m as u64 + n) % 4) as u32;
    }
    cfg
}

/// A small deterministic generator for test stimuli (random bytes, request mixes, clock
/// jitter): Knuth's MMIX LCG, the upper 31 bits of the state. Not the substrate's noise source.
#[derive(Clone, Debug)]
pub struct StimulusRng(pub u64);

impl StimulusRng {
    /// Next 31-bit value.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A byte.
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// A value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }
}
