//! RustHDL blocks of the thermo substrate: noise lanes, Langevin lanes, coupling buses, the
//! substrate top, its Verilog and the verifier that holds it against the fixed engine.
#![warn(missing_docs)]

pub mod flow;
pub mod harness;
pub mod link;
pub mod rtl;

/// Errors of the hardware flow.
#[derive(Debug)]
pub enum Error {
    /// A rust-hdl check failed (open signal, logic loop, write to an input).
    Check(String),
    /// An external tool (Verilator, yosys) failed or is missing.
    Tool(String),
    /// File I/O.
    Io(std::path::PathBuf, String),
    /// The configuration cannot be mapped to hardware.
    Config(String),
    /// The hardware and the engine disagree.
    Mismatch(String),
    /// Something else.
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Check(s) => write!(f, "rust-hdl check failed: {s}"),
            Error::Tool(s) => write!(f, "{s}"),
            Error::Io(p, s) => write!(f, "{}: {s}", p.display()),
            Error::Config(s) => write!(f, "configuration: {s}"),
            Error::Mismatch(s) => write!(f, "mismatch: {s}"),
            Error::Other(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for Error {}
