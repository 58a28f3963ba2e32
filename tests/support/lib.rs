//! Fixtures shared by the workspace integration tests; they live in `thermo_sim::example`.

use std::path::PathBuf;
use thermo_sim::{Substrate, SubstrateConfig};

pub use thermo_sim::example::saturating_config;

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped hand-written example.
pub fn shipped_example() -> Substrate {
    thermo_sim::example::shipped()
}

/// Random configuration `n` of the test family (`thermo_sim::example::family_config`).
pub fn random_config(n: u64) -> SubstrateConfig {
    thermo_sim::example::family_config(n)
}
