//! `ConfigError`: why a configuration cannot be used. Its own module because both the
//! config and the auth sections it holds (validated in `auth`) report it.

/// A configuration that cannot be used, naming the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON or has a field of the wrong type or name.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// serde's message, which names the field and position.
        message: String,
    },
    /// A field has a value outside its range.
    #[error("invalid config: \"{field}\" {message}")]
    Invalid {
        /// Dotted field path, e.g. `backpressure.highWaterMark`.
        field: &'static str,
        /// What is expected.
        message: &'static str,
    },
}
