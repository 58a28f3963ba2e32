//! The diffusion application of thermo (issue 6): data, U-Net, compiler.
