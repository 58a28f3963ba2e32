//! The synthesizable substrate: arithmetic, memories, the noise pair, the Langevin lane, the
//! coupling bus, the sweep controller, the substrate top and the program compiler that fills
//! their memories. Depends on nothing else in this crate but [`crate::Error`].

pub mod arith;
pub mod bus;
pub mod ctrl;
pub mod lane;
pub mod mem;
pub mod noise;
pub mod program;
pub mod rom;
pub mod simx;
pub mod top;
