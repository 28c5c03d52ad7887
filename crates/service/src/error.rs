//! The service's one error type: every variant is one line a user can act on.

use triad_transport::TransportError;

/// What can go wrong in a client or a server of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A socket failed: connecting, reading or writing (`what` says which server or client).
    #[error("{what}: {source}")]
    Io {
        /// Which server or client, and what was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS set-up or a certificate failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer sent something that is not a message of this protocol.
    #[error("{0}")]
    Protocol(String),
    /// A server refused the request, with its reason.
    #[error("{0}")]
    Refused(String),
    /// A bad file, argument or array on this side.
    #[error("{0}")]
    Usage(String),
    /// A protocol step on shares failed.
    #[error(transparent)]
    Sharing(#[from] triad_sharing::Error),
}

impl From<triad_ring::RingError> for ServiceError {
    fn from(e: triad_ring::RingError) -> Self {
        ServiceError::Sharing(e.into())
    }
}

impl ServiceError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ServiceError {
        ServiceError::Io { what: what.into(), source }
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, ServiceError>;
