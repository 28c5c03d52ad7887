//! TCP links with mutual TLS (rustls, `ring` provider), split by concern:
//!
//! * [`identity`]: certificates and keys, and which party a certificate names;
//! * [`pinned`]: trust by each party's certificate fingerprint instead of a CA;
//! * [`setup`]: dialling the lower parties, waiting for both links, building them;
//! * [`accept`]: accepting the higher parties, dropping strangers;
//! * [`handshake`]: blocking TLS I/O on a fresh connection and the triad handshake;
//! * [`link`]: an established link's handle, shared state and writer thread;
//! * [`reader`]: the reader thread and its frame assembler;
//! * [`service`]: TLS between `triad serve` servers and their enrolled clients.

mod accept;
mod handshake;
mod identity;
mod link;
mod pinned;
mod reader;
mod service;
mod setup;

pub use accept::HANDSHAKE_TIMEOUT;
pub use identity::{certificate_party, generate_party_identity, generate_test_pki, PartyPem, Pki, TlsIdentity};
pub use link::heartbeat_interval;
pub(crate) use reader::Assembler;
pub use service::{enrolled_client_name, generate_client_identity, service_acceptor, service_connector, ClientPem};
pub use setup::{connect_tls, connect_tls_with_listener};
pub(crate) use setup::{raw_dial, raw_read, raw_tls, raw_write};
