//! [`ConfigError`]: mistakes in configuration, reported when a scheme, layer or backend is
//! built.

/// A mistake in configuration, reported at construction rather than per request.
///
/// The message never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No secret was given; a scheme needs at least one.
    #[error("no secret configured: at least one secret is required")]
    NoSecrets,
    /// A secret was empty.
    #[error("secret #{index} is empty")]
    EmptySecret {
        /// Position of the secret in the list given, from 0.
        index: usize,
    },
    /// A secret could not be decoded (for example a `whsec_` secret that is not base64).
    #[error("secret #{index} cannot be decoded: {reason}")]
    UndecodableSecret {
        /// Position of the secret in the list given, from 0.
        index: usize,
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// A URL setting (public URL, notification URL) is not an absolute `http(s)` URL.
    #[error("invalid {what}: {reason}")]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name is not a valid HTTP header name.
    #[error("invalid header name {name:?}")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A required builder setting was not given.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A setting has a value outside its allowed range.
    #[error("invalid value for {what}: {reason}")]
    InvalidValue {
        /// Which setting.
        what: &'static str,
        /// Why it is rejected.
        reason: &'static str,
    },
}
