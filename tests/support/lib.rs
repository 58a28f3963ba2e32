//! Fixtures shared by the workspace integration tests: the shipped example and a family of random
//! configurations covering sizes, lanes, ranks and Q formats.

use std::path::PathBuf;
use thermo_sim::example::{random_substrate, ExampleSpec};
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

/// Random configuration `n` of the test family (deterministic).
pub fn random_config(n: u64) -> SubstrateConfig {
    let shapes = [
        (48, 3, 2, 4),
        (40, 5, 1, 3),
        (64, 3, 0, 8),
        (32, 2, 3, 2),
        (72, 5, 2, 6),
        (24, 1, 0, 1),
    ];
    let (units, modules, rank, lanes) = shapes[n as usize % shapes.len()];
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
