//! Configuration errors. Every validation error names the field path.

use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse, at no particular field (syntax, a missing
    /// top-level section). A value that does not parse at a field is
    /// [`ConfigError::Invalid`].
    #[error("{0}")]
    Parse(String),
    /// A field holds a value that does not parse or that the model refuses:
    /// `field` is its path, for example `pods[3].ip`.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `pods[3].ip`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A validation error for the field at `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field path, for errors at a field (validation, and parse errors at a field).
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
