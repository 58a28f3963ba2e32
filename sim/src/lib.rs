//! # thermo-sim
//!
//! The substrate description ([`model`]), the noise source ([`noise`]), the Q-format rules
//! ([`qformat`]), the update rule and its two engines ([`engine`]: the `f64` golden model and the
//! bit-exact fixed-point engine that specifies the hardware; [`batch`]: many chains in lock step;
//! [`kernel`]: the fixed engine's vectorised unit updates; [`kernel_batch`]: the batch's, across
//! chains; [`pool`]: their worker threads), the sweep schedule ([`schedule`]), equilibrium
//! propagation on the substrate's energy ([`eqprop`]) and its energy per training step
//! ([`energy`]), analog mismatch ([`mismatch`]), random
//! examples ([`example`]), statistics ([`stats`]) and file formats ([`io`]).
//!
//! See `docs/fixed-point.md` for the arithmetic the fixed engine defines.
#![warn(missing_docs)]

pub mod batch;
pub mod energy;
pub mod engine;
pub mod eqprop;
pub mod error;
pub mod example;
pub mod io;
pub mod isa;
pub mod kernel;
pub mod kernel_batch;
pub mod linalg;
pub mod mismatch;
pub mod model;
pub mod noise;
pub mod pool;
pub mod qformat;
pub mod run;
pub mod schedule;
pub mod stats;

pub use batch::{BatchEngine, FixedBatch, GoldenBatch};
pub use engine::{Fixed, FixedEngine, Golden, GoldenEngine};
pub use error::{Error, Result};
pub use model::{Substrate, SubstrateConfig};
