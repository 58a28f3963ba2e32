//! Errors that say which file, which field and which limit.

use std::path::PathBuf;

/// An error from loading, validating or running a substrate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file is not valid TOML/JSON for the substrate schema.
    #[error("{path}: cannot parse: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column where the parser gives them).
        message: String,
    },
    /// A field holds a value the substrate cannot accept.
    #[error("{file}{field}: {message}")]
    Invalid {
        /// `"path: "` prefix, or empty when the substrate came from memory.
        file: String,
        /// Dotted path of the offending field, e.g. `modules[2].bias[7]`.
        field: String,
        /// What is wrong and which limit was crossed.
        message: String,
    },
}

impl Error {
    /// An [`Error::Invalid`] without a file (filled in later by [`Error::in_file`]).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            file: String::new(),
            field: field.into(),
            message: message.into(),
        }
    }
    /// Attach the file name to an [`Error::Invalid`].
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::Invalid { field, message, .. } => Error::Invalid {
                file: format!("{}: ", path.display()),
                field,
                message,
            },
            e => e,
        }
    }
    /// The offending field, for [`Error::Invalid`].
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
