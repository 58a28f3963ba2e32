//! Errors of the diffusion crate.

use thiserror::Error;

/// Everything that can go wrong when loading data or models, training or sampling.
#[derive(Debug, Error)]
pub enum DiffusionError {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The digits data file is malformed (row and column are 1-based).
    #[error("{path}: row {row}: {msg}")]
    Data {
        /// The file.
        path: String,
        /// 1-based row number (0 for whole-file problems).
        row: usize,
        /// What is wrong.
        msg: String,
    },
    /// A model file is malformed; `tensor` names the offending tensor (or `"<header>"`).
    #[error("model tensor `{tensor}`: {msg}")]
    Tensor {
        /// Name of the tensor (PyTorch state-dict key).
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// The safetensors container itself could not be parsed.
    #[error("safetensors: {0}")]
    SafeTensors(String),
    /// An invalid argument (configuration, split fraction, ...).
    #[error("{0}")]
    Invalid(String),
    /// PNG encoding failed.
    #[error("png: {0}")]
    Png(String),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, DiffusionError>;

impl DiffusionError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DiffusionError::Io {
            path: path.display().to_string(),
            source,
        }
    }
    pub(crate) fn tensor(tensor: &str, msg: impl Into<String>) -> Self {
        DiffusionError::Tensor {
            tensor: tensor.to_string(),
            msg: msg.into(),
        }
    }
}
