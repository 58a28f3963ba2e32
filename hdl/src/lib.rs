//! RustHDL blocks of the thermo substrate: noise lanes, Langevin lanes, coupling buses, the
//! substrate top, its Verilog and the verifier that holds it against the fixed engine.
#![warn(missing_docs)]

pub mod noise;
pub mod rom;
pub mod simx;
