//! The diffusion application of thermo: data, U-Net, compilers, training, judges.
//!
//! - [`data`]: the UCI 8x8 digits (committed under `data/`), loader and seeded split.
//! - [`unet`]: a small MLP-style denoising U-Net with hand-written forward/backward passes,
//!   per-module activations and the local/skip/conditioning decomposition of pre-activations.
//! - [`train`]: seeded Adam training (EDM-preconditioned denoiser) and losses per noise level.
//! - [`io`]: safetensors save/load with PyTorch state-dict names, validated on load.
//! - [`sample`]: the digital reverse process (Euler ancestral) and PNG grids.
//! - [`gram`]: compiler groundwork: activations on data, encoder Gram matrices, rank-k skip
//!   factorisations (Gram-weighted and plain SVD).
//! - [`compile`]: the U-Net as a quadratic energy `A` (local couplings, rank-k skip buses,
//!   Gershgorin stiffness) and its substrate description.
//! - [`interface`]: the 4-d encoder + 16-unit transfer network that produces the biases.
//! - [`eval`]: exact equilibrium means against the U-Net's activations; signal shortfall.
//! - [`substrate`]: a compiled substrate with its side file, loaded for the engines.
//! - [`classifier`]: a seeded MLP digit classifier, the judge of sample quality.
//! - [`quality`]: denoising baselines (Wiener, mean, identity) and sample-quality metrics.
//! - [`quantize`]: the quantisation sweep over coupling and state widths; [`plot`] draws it.

pub mod clamped;
pub mod clamped_eqprop;
pub mod clamped_eval;
pub mod clamped_train;
pub mod classifier;
pub mod compile;
pub mod data;
pub mod error;
pub mod eval;
pub mod gram;
pub mod interface;
pub mod io;
pub mod plot;
pub mod quality;
pub mod quantize;
pub mod rng;
pub mod sample;
pub mod substrate;
pub mod train;
pub mod unet;

pub use error::{DiffusionError, Result};
/// Re-exported for the host commands.
pub use nalgebra;
pub use unet::{Activations, Dense, LayerActivation, Unet, UnetConfig};
