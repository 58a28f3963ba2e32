//! The synthesizable substrate: arithmetic, memories, the noise pair, the Langevin lane, the
//! coupling bus, the sweep controller, the substrate top and the program compiler that fills
//! their memories. Depends on nothing else in this crate but [`crate::Error`].

pub mod arith;
pub mod bus;
pub mod ctrl;
pub mod lane;
pub mod mem;
pub mod noise;
pub mod port;
pub mod program;
pub mod rom;
pub mod simx;
pub mod top;

use rust_hdl::prelude::*;

/// Run rust-hdl's checks (open signals, logic loops, writes to inputs) on `uut` and return its
/// Verilog (top module `top`). A failed check is an error naming the offending signals.
pub fn block_verilog<B: Block>(uut: &B) -> Result<String, crate::Error> {
    check_all(uut).map_err(|e| crate::Error::Check(format!("{e:?}")))?;
    Ok(generate_verilog_unchecked(uut))
}
