//! The structure hash covers the modules' state shifts: a board built with other shifts keeps
//! its states in other formats and must not be taken for the host's substrate.

use thermo_proto::structure_hash;
use thermo_sim::example::{family_config, shifted_config};
use thermo_sim::Substrate;

#[test]
fn state_shifts_change_the_structure_hash() {
    let cfg = shifted_config(2);
    let a = Substrate::from_config(&cfg).unwrap();
    assert_eq!(structure_hash(&a), structure_hash(&a.clone()));
    let mut other = cfg.clone();
    let m = other.modules.iter().position(|m| m.shift > 0).unwrap();
    other.modules[m].shift -= 1;
    let b = Substrate::from_config(&other).unwrap();
    assert_ne!(
        structure_hash(&a),
        structure_hash(&b),
        "one module's shift changed"
    );
    // without shifts: the family configuration the shifted one was made from
    let plain = Substrate::from_config(&family_config(2)).unwrap();
    assert_ne!(structure_hash(&a), structure_hash(&plain));
}
