//! Hardware commands (`thermo verilog`, `thermo verify`, ...): owned by the RTL work (issue 3).

use clap::Subcommand;

/// Hardware commands.
#[derive(Subcommand)]
pub enum HdlCommand {}

/// Run a hardware command.
pub fn run(c: HdlCommand) -> Result<(), String> {
    match c {}
}
