//! Three-party links for triad.
//!
//! Every party `i` of the ring `0 → 1 → 2 → 0` has two links: one to the **next**
//! party `i+1 mod 3` and one to the **previous** party `i-1 mod 3`. A [`Channels`]
//! value is one party's view of both links plus its cost meter. Protocol code only
//! ever sees [`Channels`]; two implementations sit behind it:
//!
//! * **in-process** ([`in_process`]): three parties as three threads of one process,
//!   connected by channels. A `Vec<u64>` sent to a neighbour is moved, never copied.
//! * **TCP with mutual TLS** ([`connect_tls`]): three processes (or hosts), configured by
//!   one TOML file ([`PartiesConfig`]). TLS 1.3 via rustls with the `ring` provider;
//!   every party's certificate names `party0`, `party1` or `party2` (subject
//!   alternative name), and both ends of every connection check that the peer's
//!   certificate names the expected party **and** is trusted, in one of two ways:
//!   * **pinned** (three organisations): each party made its own key and self-signed
//!     certificate ([`generate_party_identity`]), and the parties file pins every
//!     party's certificate by its SHA-256 [`Fingerprint`] ([`TlsIdentity::pinned`]).
//!     No CA key exists, so only the holder of a party's key can be that party;
//!   * **a shared CA** (local runs and tests): the certificate chains to the CA
//!     ([`TlsIdentity::from_pem`]). [`generate_test_pki`] makes such a CA and
//!     certificates in memory, and whoever holds its output can pose as any party.
//!
//! # Topology and setup (TCP)
//!
//! For each pair of parties the higher id connects to the lower id, which accepts:
//! party 0 accepts from 1 and 2, party 1 accepts from 2 and connects to 0, party 2
//! connects to 0 and 1. Connecting retries until the setup timeout
//! ([`PartiesConfig::setup_timeout`]: `setup_timeout_ms`, else `timeout_ms`), so parties
//! may be started in any order; the whole setup (connect, TLS, handshake) must finish
//! within it. After TLS each side sends a handshake message
//! ([`encode_handshake`]): magic, protocol version, session id and party id. Each side
//! checks the peer's version and session against its own, and that the party id it
//! claims is the one its certificate names (and, for the connecting side, the party it
//! meant to reach). Any mismatch refuses the connection with
//! [`TransportError::Handshake`] naming the peer and the mismatch; the refused peer is
//! sent an abort frame saying why. A party whose setup fails tells every peer it has
//! reached (dials already in flight still complete, in the background, to deliver the
//! reason), so its neighbours fail promptly rather than at their timeout.
//!
//! **Strangers do not break a setup.** Each accepted connection runs TLS and the
//! handshake in a thread of its own, within [`HANDSHAKE_TIMEOUT`] (5 s, capped by what is
//! left of the setup), at most 16 at once. A connection that fails *before a valid party
//! certificate is seen* (a port scan, plain TCP, a TLS client without a certificate or
//! with one the trust anchors refuse, a handshake that stalls) is logged on stderr, with
//! its address and the party it claimed to be (its certificate names or ALPN protocol
//! `triad-p<i>`), and dropped; the listener keeps accepting until the real peer arrives
//! or the setup deadline passes (then [`TransportError::Timeout`], after a summary line
//! of what was dropped). A peer that has shown a valid party certificate is a party: a
//! failure after that fails the setup, naming it.
//!
//! # Clients of `triad serve`
//!
//! With `triad serve` the three parties run as long-lived servers, and each also accepts
//! **clients** over TLS 1.3 at its [`PartyConfig::client_address`]. A client is
//! *enrolled by fingerprint*: it makes its own key and self-signed certificate
//! ([`generate_client_identity`]), whose subject alternative name is `client-<name>` and
//! never a party's name, and the parties file lists it in a `[[client]]` entry
//! ([`EnrolledClient`]: a name and the certificate's SHA-256 [`Fingerprint`]; see
//! [`PartiesConfig::clients`]). The server ([`service_acceptor`]) presents its **party
//! certificate** and requires a client certificate whose fingerprint is enrolled;
//! [`enrolled_client_name`] then says which client connected. The client
//! ([`service_connector`]) dials server `i` under the TLS server name `party<i>` and
//! accepts it only if its certificate has the fingerprint the client pins for it and
//! names `party<i>`. Both sides offer only the ALPN protocol `triad-client/1`, so a party
//! dialling a client port by mistake (it offers `triad-p<i>`) is refused, and the
//! party-to-party links never accept a client (its certificate names no party).
//!
//! # Wire format
//!
//! After the TLS handshake every byte on a link belongs to a frame:
//!
//! ```text
//! offset 0   3 bytes  magic "TRD"
//! offset 3   1 byte   kind: 1 = hello, 2 = data, 3 = bye, 4 = abort, 5 = heartbeat
//! offset 4   8 bytes  payload length, u64 little-endian
//! offset 12  payload
//! ```
//!
//! A data frame's payload is the message's **depth** ([`DATA_DEPTH_LEN`] = 8 bytes, u64
//! little-endian, at least 1; see "Cost accounting") followed by the message itself;
//! `u64` messages are little-endian. The length field counts both, so a data frame's
//! length is 8 + the message length:
//!
//! ```text
//! offset 12  8 bytes  depth, u64 little-endian (data frames only)
//! offset 20  message
//! ```
//!
//! [`decode_frame_header`] rejects a bad magic, an unknown kind, and any length above the
//! limit for its kind (for data frames the configured `max_frame_bytes`, default 4 GiB,
//! plus the 8-byte depth word, as `max_frame_bytes` bounds the message; a few KiB for
//! control frames) *before* anything is allocated; the receive buffer then grows with the
//! bytes that actually arrive, so garbage claiming a huge length costs nothing. The
//! reader rejects a data frame shorter than its depth word, or of depth 0, as
//! [`TransportError::Malformed`]. *hello* carries the handshake, *bye* (empty) marks a
//! graceful close, *abort* carries a one-line reason (UTF-8) when a party gives up,
//! *heartbeat* (empty) says the sender is alive; control frames carry no depth. The depth
//! word was added in protocol version 2 and heartbeats in version 3
//! ([`PROTOCOL_VERSION`]), so an older peer is refused at the handshake.
//!
//! # Never block, never hang
//!
//! * Sending never blocks the protocol: each TCP link has a writer thread fed by an
//!   unbounded queue, and a reader thread that always drains the socket into an inbound
//!   queue. Two parties sending large messages to each other at once therefore cannot
//!   deadlock. `TCP_NODELAY` is set; payloads are written in large chunks.
//! * Inbound memory is bounded per link: what a peer has sent and the protocol has not
//!   yet read (the frame in progress included, from its header on) may not exceed
//!   [`LinkConfig::max_buffered_bytes`] (`max_buffered_bytes`, default twice
//!   `max_frame_bytes`); beyond it the peer is [`TransportError::Flooded`], before the
//!   frame's body is allocated.
//! * The timeout (`timeout_ms`) is an **idle** timeout: a receive fails with
//!   [`TransportError::Timeout`] only once nothing at all has arrived from that peer for
//!   the whole timeout. A writer with nothing to send sends a heartbeat frame every
//!   [`heartbeat_interval`] (a quarter of the timeout, at most 5 s), so a party that
//!   computes for longer than the timeout (a large layer on a CPU) keeps its peers
//!   waiting, while a dead, stopped (SIGSTOP) or silent one is reported within the
//!   timeout. Heartbeats are control frames: the costs never count them. (In process,
//!   where a peer cannot go silent without failing, a receive waits at most the timeout.)
//! * On **any** error a party *fails*: it records the first error, tells both neighbours
//!   with an abort frame carrying the reason, and shuts both links down. Every later or
//!   currently blocked call on that party's [`Channels`] (on either link) returns that
//!   first error. Neighbours see the abort (or the closed connection) at once and fail
//!   in turn with [`TransportError::PeerAborted`], so when one party dies, is killed,
//!   sends garbage or goes silent, every party ends with a typed error within the timeout.
//! * A peer whose connection ends *without* a bye frame has died: the reader notices at
//!   once and fails the party, even while the protocol is blocked on the other link. A
//!   peer that said bye (its [`Channels`] was dropped normally) has finished: messages it
//!   sent before are still delivered, and only a receive beyond them fails with
//!   [`TransportError::PeerClosed`].
//! * Dropping a [`Channels`] is a graceful close: queued messages are flushed (bounded by
//!   the timeout) and a bye frame is sent. Dropping it while the thread panics aborts
//!   instead.
//!
//! # Error model
//!
//! [`TransportError`] variants name the peer ([`PartyId`]) and the cause; their
//! `Display` is one line a user can act on. Nothing a peer sends can make this crate
//! panic. Errors are `Clone` so the first error can be handed to every caller.
//!
//! # Testing support
//!
//! [`connect_tls_with_listener`] takes an already bound listener, so tests can bind
//! `127.0.0.1:0` and write the real port into the configuration. The hidden `testing`
//! module has `RawPeer`, a hand-driven TLS peer for sending truncated frames, garbage or
//! nothing at all, and `tls_stranger`, a TLS client that is not a party (no certificate,
//! or one the party must refuse).
//!
//! # Cost accounting
//!
//! Every party counts bytes and messages sent and received, and communication rounds,
//! attributed to the innermost active scope ([`Channels::scope`]; nested scopes form a
//! path like `lenet/conv1`). **Only message bytes are counted** (the 12-byte frame
//! header, the 8-byte depth word, the TLS record overhead and control frames are not),
//! so the in-process and TCP links report identical costs.
//!
//! **Round rule: causal depth.** Rounds measure latency, the length of the longest chain
//! of messages each waiting on the one before, with a Lamport-style clock over messages:
//!
//! * Every data message carries a **depth**: `K + 1`, where `K` is the largest depth of
//!   any message the sender has received so far (0 at start). A message sent before any
//!   receive has depth 1; messages sent without a receive in between share a depth,
//!   whichever neighbour they go to.
//! * On a receive, `K = max(K, depth of the message)`.
//! * The party's **clock** `C` is the largest depth it has sent or received: the depth of
//!   the deepest message it has touched.
//! * The **rounds attributed to a scope** are the increase of `C` while that scope is
//!   innermost: every send and receive adds its `C_after - C_before` to the current
//!   scope's [`Cost::rounds`]. A party's total rounds is therefore its clock now minus its
//!   clock at creation or at the last [`Channels::reset_costs`].
//! * `C` and `K` never reset: [`Channels::reset_costs`] only zeroes the tables, so depths
//!   stay comparable across parties.
//!
//! The latency of a computation started from a synchronised point (every party has
//! `K = C = c`, as after a symmetric exchange) is **exactly the maximum over the three
//! parties of their round totals**: the longest chain of messages sent since that point
//! and ending in a message of depth `c + d` has exactly `d` messages, and every message's
//! depth reaches its sender's clock. A single party's total is only its view: how far
//! past `c` the deepest message it sent or received was. Likewise per-scope figures are
//! each party's view of where its clock advanced; compare scopes by the maximum over
//! parties.
//!
//! For example, from a synchronised clock `c`: party 2 sends to party 1 (depth `c+1`),
//! party 0 sends to party 2 (depth `c+1`), and party 1, after receiving, sends to party
//! 0 (depth `c+2`). Parties 0 and 1 count 2 rounds and party 2 counts 1: latency 2. A
//! symmetric exchange from a synchronised point (every party sends to one neighbour and
//! receives from the other) counts 1 round on every party and leaves them synchronised.
#![warn(missing_docs)]

mod channels;
mod config;
mod cost;
mod error;
mod fingerprint;
mod inproc;
mod netmodel;
mod tls;
mod wire;

#[doc(hidden)]
pub mod testing;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

#[cfg(feature = "recording")]
pub use channels::Received;
pub use channels::{Channels, ScopeGuard};
pub use config::{ConfigError, EnrolledClient, PartiesConfig, PartyConfig, DEFAULT_TIMEOUT_MS};
pub use cost::{Cost, CostTable};
pub use error::{HandshakeMismatch, TransportError};
pub use fingerprint::Fingerprint;
pub use inproc::in_process;
pub use netmodel::NetModel;
pub use tls::{
    certificate_party, connect_tls, connect_tls_with_listener, enrolled_client_name, generate_client_identity,
    generate_party_identity, generate_test_pki, heartbeat_interval, service_acceptor, service_connector, ClientPem,
    PartyPem, Pki, TlsIdentity, HANDSHAKE_TIMEOUT,
};
pub use wire::{
    check_handshake, decode_frame_header, decode_handshake, encode_frame_header, encode_handshake, FrameError,
    FrameHeader, FrameKind, Handshake, HandshakeDecodeError, DATA_DEPTH_LEN, DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_LEN,
    FRAME_MAGIC, HANDSHAKE_MAGIC, MAX_ABORT_REASON_BYTES, MAX_HANDSHAKE_BYTES, MAX_SESSION_LEN, PROTOCOL_VERSION,
};

/// One of the three parties: 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct PartyId(u8);

impl PartyId {
    /// The three parties in order.
    pub const ALL: [PartyId; 3] = [PartyId(0), PartyId(1), PartyId(2)];

    /// The party with this id, if it is 0, 1 or 2.
    pub const fn new(id: u8) -> Option<PartyId> {
        if id < 3 {
            Some(PartyId(id))
        } else {
            None
        }
    }

    /// The id as an index 0..3.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The id as a number.
    pub const fn as_u8(self) -> u8 {
        self.0
    }

    /// The next party in the ring (i+1 mod 3).
    pub const fn next(self) -> PartyId {
        PartyId((self.0 + 1) % 3)
    }

    /// The previous party in the ring (i-1 mod 3).
    pub const fn prev(self) -> PartyId {
        PartyId((self.0 + 2) % 3)
    }

    /// The neighbour reached through `peer`.
    pub const fn peer(self, peer: Peer) -> PartyId {
        match peer {
            Peer::Next => self.next(),
            Peer::Prev => self.prev(),
        }
    }

    /// Which link leads from `self` to `other` (`None` when `other == self`).
    pub fn link_to(self, other: PartyId) -> Option<Peer> {
        if other == self.next() {
            Some(Peer::Next)
        } else if other == self.prev() {
            Some(Peer::Prev)
        } else {
            None
        }
    }

    /// The DNS name this party's certificate carries: `party0`, `party1` or `party2`.
    pub fn dns_name(self) -> String {
        format!("party{}", self.0)
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "party {}", self.0)
    }
}

impl TryFrom<u8> for PartyId {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        PartyId::new(v).ok_or_else(|| format!("party id {v} is out of range (0, 1 or 2)"))
    }
}

impl From<PartyId> for u8 {
    fn from(p: PartyId) -> u8 {
        p.0
    }
}

/// One of a party's two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// The link to party `i+1 mod 3`.
    Next,
    /// The link to party `i-1 mod 3`.
    Prev,
}

impl Peer {
    /// Both links, `Next` first.
    pub const BOTH: [Peer; 2] = [Peer::Next, Peer::Prev];

    pub(crate) const fn slot(self) -> usize {
        match self {
            Peer::Next => 0,
            Peer::Prev => 1,
        }
    }

    /// The other link.
    pub const fn other(self) -> Peer {
        match self {
            Peer::Next => Peer::Prev,
            Peer::Prev => Peer::Next,
        }
    }
}

/// Settings shared by both link implementations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// How long a peer may be silent before a receive from it fails (over TLS, heartbeats
    /// count as hearing from it), and how long a blocked socket write may wait.
    pub timeout: Duration,
    /// Largest data frame payload accepted or sent, in bytes.
    pub max_frame_bytes: u64,
    /// Over TLS, the most bytes a link holds received but not yet read by the protocol
    /// (the frame in progress included); beyond it the peer is
    /// [`TransportError::Flooded`]. At least `max_frame_bytes`.
    pub max_buffered_bytes: u64,
    /// Session id; over TCP both ends of every connection must agree on it.
    pub session: String,
    /// A modelled network ([`NetModel`]): every message this party sends is delivered a
    /// round-trip half and its serialisation later. `None`: as fast as the link goes.
    pub net: Option<NetModel>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_buffered_bytes: DEFAULT_MAX_FRAME_BYTES.saturating_mul(2),
            session: "triad".to_string(),
            net: None,
        }
    }
}
