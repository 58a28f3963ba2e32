//! `thermo`: the command-line front end of the thermo toolkit (crate `thermo-cli`).
//!
//! The work is done by the libraries (`thermo-sim`, `thermo-hdl`, `thermo-host`,
//! `thermo-diffusion`); these modules parse arguments, read and write files and print. One
//! module per command group: `cmd_sim` (substrate simulation, noise, export, examples,
//! benchmarks), `cmd_link` (emulated board, inference over the link), `cmd_hdl` (Verilog
//! generation and verification), `cmd_diffusion` (the U-Net application), `cmd_clamped` (the
//! clamped substrate), `cmd_quality` (classifier, denoising baselines, sample quality), `cmd_eqprop` (equilibrium
//! propagation: estimator checks and training on the substrate), `cmd_energy` (energy per
//! training step).

mod cmd_clamped;
mod cmd_diffusion;
mod cmd_energy;
mod cmd_eqprop;
mod cmd_hdl;
mod cmd_link;
mod cmd_quality;
mod cmd_schedule;
mod cmd_sim;

use clap::{Parser, Subcommand};

/// thermo: a thermodynamic diffusion substrate on an FPGA, and the tools around it.
#[derive(Parser)]
#[command(name = "thermo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Sim(cmd_sim::SimCommand),
    #[command(flatten)]
    Hdl(cmd_hdl::HdlCommand),
    #[command(flatten)]
    Link(cmd_link::LinkCommand),
    #[command(flatten)]
    Diffusion(cmd_diffusion::DiffusionCommand),
    #[command(flatten)]
    Clamped(cmd_clamped::ClampedCommand),
    #[command(flatten)]
    Quality(cmd_quality::QualityCommand),
    #[command(flatten)]
    EqProp(cmd_eqprop::EqPropCommand),
    #[command(flatten)]
    Energy(cmd_energy::EnergyCommand),
    #[command(flatten)]
    Schedule(cmd_schedule::ScheduleCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(c) => cmd_sim::run(c),
        Command::Hdl(c) => cmd_hdl::run(c),
        Command::Link(c) => cmd_link::run(c),
        Command::Diffusion(c) => cmd_diffusion::run(c),
        Command::Clamped(c) => cmd_clamped::run(c),
        Command::Quality(c) => cmd_quality::run(c),
        Command::EqProp(c) => cmd_eqprop::run(c),
        Command::Schedule(c) => cmd_schedule::run(c),
        Command::Energy(c) => cmd_energy::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
