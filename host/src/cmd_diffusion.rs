//! Diffusion application commands (`thermo train-unet`, ...): owned by the U-Net work (issue 6).

use clap::Subcommand;

/// Diffusion application commands.
#[derive(Subcommand)]
pub enum DiffusionCommand {}

/// Run a diffusion command.
pub fn run(c: DiffusionCommand) -> Result<(), String> {
    match c {}
}
