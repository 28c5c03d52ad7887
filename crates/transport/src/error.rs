//! The transport's typed errors.

use crate::config::ConfigError;
use crate::wire::HandshakeDecodeError;
use crate::PartyId;
use std::io;
use std::time::Duration;

/// Everything that can go wrong on a party's links.
///
/// Every variant that concerns a connection names the peer. The `Display` form is one
/// line meant for a user. Errors are `Clone`: the first error a party meets is handed to
/// every later call on its [`Channels`](crate::Channels).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed its connection (at a frame boundary), or had already said bye
    /// and a message was expected from it.
    #[error("{peer} closed the connection")]
    PeerClosed {
        /// The peer.
        peer: PartyId,
    },
    /// The connection ended in the middle of a frame.
    #[error("{peer} closed the connection in the middle of a frame ({received} of {expected} bytes received)")]
    Truncated {
        /// The peer.
        peer: PartyId,
        /// Bytes of the frame (header included) that arrived.
        received: u64,
        /// Bytes the frame should have had (header included; 12 if the header itself was cut).
        expected: u64,
    },
    /// Nothing arrived from the peer within the timeout (or a write to it stalled that long).
    #[error("timed out after {} ms waiting for {peer}", after.as_millis())]
    Timeout {
        /// The peer.
        peer: PartyId,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The peer sent bytes that are not a valid frame, or a message of the wrong length.
    #[error("malformed data from {peer}: {detail}")]
    Malformed {
        /// The peer.
        peer: PartyId,
        /// What was wrong.
        detail: String,
    },
    /// This party tried to send a message larger than the maximum frame size.
    #[error("message of {len} bytes to {peer} exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// The peer the message was for.
        peer: PartyId,
        /// The message size.
        len: u64,
        /// The limit (`max_frame_bytes`).
        max: u64,
    },
    /// The peer sent more than this party has yet read, beyond the inbound budget
    /// (`max_buffered_bytes`): a runaway or misbehaving peer.
    #[error("{peer} sent {bytes} bytes that this party has not yet read, beyond its inbound budget of {budget} bytes")]
    Flooded {
        /// The peer.
        peer: PartyId,
        /// Bytes received but not yet read by the protocol, the frame in progress included.
        bytes: u64,
        /// The budget (`max_buffered_bytes`).
        budget: u64,
    },
    /// The connection handshake failed: the peer is not who it should be, or disagrees on
    /// the protocol version or session.
    #[error("handshake with {peer} failed: {mismatch}")]
    Handshake {
        /// The peer.
        peer: PartyId,
        /// What did not match.
        mismatch: HandshakeMismatch,
    },
    /// TLS failed (certificate not signed by the CA, wrong name, protocol error, ...).
    #[error("TLS error with {peer}: {detail}")]
    Tls {
        /// The peer.
        peer: PartyId,
        /// rustls's description.
        detail: String,
    },
    /// Another I/O error on the connection to the peer.
    #[error("I/O error on the link to {peer}: {detail}")]
    Io {
        /// The peer.
        peer: PartyId,
        /// The error kind.
        kind: io::ErrorKind,
        /// The operating system's description.
        detail: String,
    },
    /// This party could not listen on its address (e.g. the port is in use).
    #[error("cannot listen on {address}: {detail}")]
    Bind {
        /// The configured address.
        address: String,
        /// The operating system's description.
        detail: String,
    },
    /// This party could not connect to the peer within the timeout.
    #[error("cannot connect to {peer} at {address} within {} ms: {detail}", after.as_millis())]
    Connect {
        /// The peer.
        peer: PartyId,
        /// The peer's configured address.
        address: String,
        /// The timeout.
        after: Duration,
        /// The last connection error.
        detail: String,
    },
    /// The peer gave up and said why (its reason is quoted as sent, made printable).
    #[error("{peer} aborted the session: {reason}")]
    PeerAborted {
        /// The peer.
        peer: PartyId,
        /// The peer's reason.
        reason: String,
    },
    /// This party aborted ([`Channels::abort`](crate::Channels::abort)).
    #[error("this party aborted the session: {reason}")]
    Aborted {
        /// Why.
        reason: String,
    },
    /// The configuration is invalid.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// This party's own certificate, key or CA could not be loaded or used.
    #[error("TLS identity error: {detail}")]
    Identity {
        /// What was wrong.
        detail: String,
    },
}

impl TransportError {
    /// The peer this error concerns, if any.
    pub fn peer(&self) -> Option<PartyId> {
        use TransportError::*;
        match self {
            PeerClosed { peer }
            | Truncated { peer, .. }
            | Timeout { peer, .. }
            | Malformed { peer, .. }
            | TooLarge { peer, .. }
            | Flooded { peer, .. }
            | Handshake { peer, .. }
            | Tls { peer, .. }
            | Io { peer, .. }
            | Connect { peer, .. }
            | PeerAborted { peer, .. } => Some(*peer),
            Bind { .. } | Aborted { .. } | Config(_) | Identity { .. } => None,
        }
    }

    /// A TLS error with `peer`, with a hint for the common certificate problems.
    pub(crate) fn tls(peer: PartyId, e: &rustls::Error) -> TransportError {
        let hint = match e {
            rustls::Error::AlertReceived(_) => format!(
                "; {peer} rejected this party's TLS connection (do both use the same parties file: the same CA, \
                 or the same pinned fingerprints?)"
            ),
            rustls::Error::InvalidCertificate(_) => format!(
                "; {peer}'s certificate must be the one the parties file pins for it (or be signed by its CA) \
                 and name {}",
                peer.dns_name()
            ),
            _ => String::new(),
        };
        TransportError::Tls { peer, detail: format!("{}{hint}", tls_text(e)) }
    }

    /// Map an I/O error on the connection to `peer` (which may wrap a rustls error).
    pub(crate) fn from_io(peer: PartyId, e: &io::Error, timeout: Duration) -> TransportError {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return TransportError::tls(peer, tls);
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout { peer, after: timeout },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => TransportError::PeerClosed { peer },
            kind => TransportError::Io { peer, kind, detail: e.to_string() },
        }
    }
}

/// A rustls error in words (a certificate check's own message rather than its debug form).
pub(crate) fn tls_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            format!("invalid peer certificate: {}", other.0)
        }
        e => e.to_string(),
    }
}

/// Why a connection handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeMismatch {
    /// The peer's handshake message could not be decoded.
    #[error("bad handshake message: {0}")]
    Decode(#[from] HandshakeDecodeError),
    /// The first frame was not a handshake.
    #[error("expected a handshake frame, got {0}")]
    NotHandshake(String),
    /// Different protocol versions.
    #[error("protocol version mismatch: this party speaks version {ours}, the peer version {theirs}")]
    Version {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// Different session ids.
    #[error("session mismatch: this party is in session {ours:?}, the peer in session {theirs:?}")]
    Session {
        /// Ours.
        ours: String,
        /// The peer's.
        theirs: String,
    },
    /// The peer claims to be a different party than expected.
    #[error("peer claims to be party {claimed}, expected {expected}")]
    PartyId {
        /// Who it should be (from its certificate, or whom we dialled).
        expected: PartyId,
        /// The id in its handshake (raw, may be out of range).
        claimed: u8,
    },
    /// The peer's certificate does not name exactly one expected party.
    #[error("certificate identity: {0}")]
    Certificate(String),
    /// A second connection from a party that is already connected.
    #[error("{0} is already connected")]
    Duplicate(PartyId),
}
