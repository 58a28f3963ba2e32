//! The diffusion application of thermo (issue 6): data, U-Net, compiler.
//!
//! - [`data`]: the UCI 8x8 digits (committed under `data/`), loader and seeded split.
//! - [`unet`]: a small MLP-style denoising U-Net with hand-written forward/backward passes,
//!   per-module activations and the local/skip/conditioning decomposition of pre-activations.
//! - [`train`]: seeded Adam training (EDM-preconditioned denoiser) and losses per noise level.
//! - [`io`]: safetensors save/load with PyTorch state-dict names, validated on load.
//! - [`sample`]: the digital reverse process (Euler ancestral) and PNG grids.
//! - [`gram`]: compiler groundwork: activations on data, encoder Gram matrices, rank-k skip
//!   factorisations (Gram-weighted and plain SVD).

pub mod data;
pub mod error;
pub mod gram;
pub mod io;
pub mod rng;
pub mod sample;
pub mod train;
pub mod unet;

pub use error::{DiffusionError, Result};
pub use unet::{Activations, Dense, LayerActivation, Unet, UnetConfig};
