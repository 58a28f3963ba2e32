//! Fixtures shared by the workspace integration tests: the shipped example and a family of random
//! configurations covering sizes, lanes, ranks and Q formats.

use std::path::PathBuf;
use thermo_sim::{Substrate, SubstrateConfig};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped hand-written example.
pub fn shipped_example() -> Substrate {
    Substrate::from_file(&root().join("examples/three-module.toml"))
        .expect("shipped example validates")
}

/// Random configuration `n` of the test family (deterministic; `thermo_sim::example::family_config`).
pub fn random_config(n: u64) -> SubstrateConfig {
    thermo_sim::example::family_config(n)
}

/// A configuration of the test family pushed into saturation (for the hardware equivalence
/// tests): `random_config(n)` with a narrow state format (6 bits, 3 fractional: +-4), biases
/// scaled up 8x and shifted by +10, a hotter temperature; for odd `n` the clamp activation, for even `n` a narrow bus format
/// (6 bits, 4 fractional: +-2) so that bus lines saturate too.
pub fn saturating_config(n: u64) -> SubstrateConfig {
    use thermo_sim::model::{Activation, PerUnit};
    use thermo_sim::qformat::QFormat;
    let mut cfg = random_config(n);
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
