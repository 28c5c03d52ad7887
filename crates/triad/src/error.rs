//! The one error type of the `triad` command: every failure a user can meet, each with a
//! one-line message that names the file, party or tensor at fault.

use std::path::PathBuf;

/// Why a `triad` command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol call failed (a peer aborted, timed out, or an operation was invalid).
    #[error(transparent)]
    Protocol(#[from] triad_sharing::Error),
    /// Setting up the links failed (a port in use, an unreachable peer, a bad certificate).
    #[error(transparent)]
    Transport(#[from] triad_transport::TransportError),
    /// The parties file is missing or invalid.
    #[error(transparent)]
    Config(#[from] triad_transport::ConfigError),
    /// A dataset file is missing or malformed.
    #[error(transparent)]
    Data(#[from] triad_layers::data::DataError),
    /// A file could not be read.
    #[error("cannot read {}: {detail}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's description.
        detail: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {detail}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's description.
        detail: String,
    },
    /// A weights or checkpoint file is malformed or does not fit the model.
    #[error("{}: {detail}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
    /// A dataset file of the CIFAR-10 binary format is malformed.
    #[error("{}: {detail}", path.display())]
    Dataset {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The CUDA backend cannot be used.
    #[error("cuda backend: {0}")]
    Cuda(String),
    /// Party 0 announced a number the job cannot have (parties 1 and 2 check every count
    /// party 0 sends before anything is sized from it).
    #[error("party 0 announced {what} = {value}, but the job needs {expected}")]
    Announced {
        /// What the number counts.
        what: &'static str,
        /// The number announced.
        value: u64,
        /// What the job can have.
        expected: String,
    },
    /// The three parties were started with different jobs.
    #[error("{0}")]
    Mismatch(String),
    /// Invalid arguments.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The message as one line (newlines of nested causes joined by `; `).
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
    }

    /// The reason sent to the other parties when this one gives up: the message, except
    /// for a plaintext input outside the fixed-point range, whose message names the value
    /// (a secret of the data or model owner); that stays in the local report.
    pub fn for_peers(&self) -> String {
        match self {
            Error::Protocol(triad_sharing::Error::Fixed(_)) => {
                "an input of party 0 is outside the fixed-point range (party 0's report names it)".into()
            }
            _ => self.one_line(),
        }
    }
}

/// A client's or server's error of the service (`triad serve`, `triad client`): a link
/// or certificate failure stays one, a protocol step on shares stays one, and the rest
/// (a refusal, a bad file or array, a peer's bad message) is its one line.
impl From<triad_service::ServiceError> for Error {
    fn from(e: triad_service::ServiceError) -> Self {
        match e {
            triad_service::ServiceError::Transport(t) => Error::Transport(t),
            triad_service::ServiceError::Sharing(s) => Error::Protocol(s),
            other => Error::Usage(other.to_string()),
        }
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, Error>;

/// `Error::Read` for `path`.
pub(crate) fn read_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Read { path: path.to_path_buf(), detail: e.to_string() }
}

/// `Error::Write` for `path`.
pub(crate) fn write_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Write { path: path.to_path_buf(), detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn peers_do_not_hear_a_secret_input() {
        let secret = 123_456_789_012_345.0;
        let e = Error::Protocol(triad_sharing::Error::Fixed(
            triad_fixed::FixedConfig::default().encode(secret).expect_err("out of range"),
        ));
        assert!(e.one_line().contains("123456789012"), "the local report names the value: {}", e.one_line());
        assert!(!e.for_peers().contains("123456789012"), "peers must not see it: {}", e.for_peers());
    }
}
