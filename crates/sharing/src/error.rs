//! The error of every protocol call.

use triad_ring::RingError;
use triad_transport::TransportError;

/// Why a protocol call failed. Transport failures name the peer and the cause; every
/// party of a failed protocol ends with one (see `triad-transport`'s error model).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A link failed: a peer closed, timed out, or sent something malformed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Operands do not fit the operation, or the device failed.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A plaintext input is outside the fixed-point range.
    #[error(transparent)]
    Fixed(#[from] triad_fixed::FixedError),
    /// The OS random source failed while drawing keys.
    #[error("cannot draw PRG keys from the OS random source: {0}")]
    Entropy(String),
    /// A call that is invalid for this party (e.g. a non-owner passing plaintext).
    #[error("{0}")]
    Usage(String),
    /// The overflow guard found a value outside the range the next product needs
    /// (`--guard`; every party stops here, having learnt only that one bit).
    #[error("overflow guard: {at} has values outside ±{bound} (the fixed-point range a product by a value below 2 needs); stopped")]
    OutOfRange {
        /// Where: the node and whether a forward output, a gradient or a parameter.
        at: String,
        /// The bound, `2^(61 - 2f)`.
        bound: f64,
    },
    /// A party thread of an in-process run panicked.
    #[error("{0} panicked: {1}")]
    Panicked(triad_transport::PartyId, String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, Error>;
