//! The parties file: addresses, certificates, session and timeout.
//!
//! ```toml
//! session = "demo-2026"     # session id, checked in the handshake
//! timeout_ms = 30000        # optional, default 30000: how long a peer may be silent
//! # setup_timeout_ms = 120000  # optional, default timeout_ms: connect, TLS, handshake
//! # max_frame_bytes = 4294967296   # optional, default 4 GiB
//! # max_buffered_bytes = 8589934592 # optional, default 2 x max_frame_bytes: inbound budget per link
//! ca = "pki/ca.pem"
//! [[party]]
//! id = 0
//! address = "127.0.0.1:7000"
//! cert = "pki/party0.pem"
//! key = "pki/party0.key"
//! # ... parties 1 and 2
//! ```
//!
//! **Trust** comes from one of two places. With `ca`, every party's certificate must be
//! signed by that CA (whoever holds the CA key can pose as any party: the one-machine
//! `triad keygen` discards it). Without `ca`, every `[[party]]` entry carries the
//! `fingerprint` of that party's own certificate (see [`Fingerprint`]), made by the
//! party itself on its own machine; a peer is that party if and only if its certificate
//! has that fingerprint and names it:
//!
//! ```toml
//! session = "demo-2026"
//! [[party]]
//! id = 0
//! address = "alice.example:7000"
//! cert = "party0.pem"       # read only by party 0 (its own certificate)
//! key = "party0.key"        # read only by party 0, never leaves its machine
//! fingerprint = "sha256:3A:91:..."
//! # ... parties 1 and 2
//! ```
//!
//! **Clients of `triad serve`** (optional): a `[[party]]` entry may say where that
//! party's server accepts clients (`client_address`, `host:port`), and `[[client]]`
//! entries enrol each client by a name and the fingerprint of its certificate (made by
//! the client itself, [`generate_client_identity`](crate::generate_client_identity)):
//!
//! ```toml
//! [[party]]
//! id = 0
//! address = "alice.example:7000"
//! client_address = "alice.example:7100"   # optional
//! # cert, key, fingerprint as above; parties 1 and 2 likewise
//! [[client]]
//! name = "carol"                          # 1 to 64 of A-Z a-z 0-9 . _ -
//! fingerprint = "sha256:5C:0E:..."
//! ```
//!
//! Names and fingerprints must be unique, and no client may have a party's pinned
//! fingerprint.

use crate::fingerprint::Fingerprint;
use crate::wire::{DEFAULT_MAX_FRAME_BYTES, MAX_SESSION_LEN};
use crate::{LinkConfig, NetModel, PartyId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default timeout when the file gives none: 30 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Why a parties file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {detail}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's description.
        detail: String,
    },
    /// Not valid TOML, or a field is missing, unknown or of the wrong type.
    #[error("invalid config{}: {message}", location(*line, *column))]
    Syntax {
        /// 1-based line of the problem, if known.
        line: Option<usize>,
        /// 1-based column of the problem, if known.
        column: Option<usize>,
        /// The parser's description.
        message: String,
    },
    /// `session` is empty.
    #[error("session id must not be empty")]
    EmptySession,
    /// `session` is too long.
    #[error("session id is {len} bytes long; at most {max} are allowed")]
    SessionTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `session` contains a control character.
    #[error("session id must not contain control characters")]
    SessionControlChar,
    /// `timeout_ms` is zero.
    #[error("timeout_ms must be positive")]
    ZeroTimeout,
    /// `setup_timeout_ms` is zero.
    #[error("setup_timeout_ms must be positive")]
    ZeroSetupTimeout,
    /// `max_frame_bytes` is zero.
    #[error("max_frame_bytes must be positive")]
    ZeroMaxFrame,
    /// `max_buffered_bytes` is below `max_frame_bytes`.
    #[error("max_buffered_bytes ({buffered}) must be at least max_frame_bytes ({frame})")]
    BufferBelowFrame {
        /// `max_buffered_bytes`.
        buffered: u64,
        /// `max_frame_bytes`.
        frame: u64,
    },
    /// A party id other than 0, 1, 2.
    #[error("party id {0} is out of range (must be 0, 1 or 2)")]
    BadPartyId(i64),
    /// Two `[[party]]` entries with the same id.
    #[error("party {0} is listed more than once")]
    DuplicateParty(u8),
    /// No `[[party]]` entry for this id.
    #[error("party {0} is missing (the file needs [[party]] entries with ids 0, 1 and 2)")]
    MissingParty(u8),
    /// An address that is not `host:port`.
    #[error("party {party}: address {address:?} is invalid: {reason}")]
    BadAddress {
        /// The party id.
        party: u8,
        /// The address as written.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither a CA nor a fingerprint for every party: nothing to trust.
    #[error("the parties file needs either `ca` (a shared CA certificate) or a `fingerprint` in every [[party]] entry{}", missing.map(|p| format!(" (party {p} has none)")).unwrap_or_default())]
    NoTrust {
        /// A party without a fingerprint, when some have one.
        missing: Option<u8>,
    },
    /// Both a CA and fingerprints.
    #[error("the parties file gives both `ca` and fingerprints: use one (fingerprints for three organisations, a CA for local runs)")]
    MixedTrust,
    /// A fingerprint that does not parse.
    #[error("party {party}: bad fingerprint: {reason}")]
    BadFingerprint {
        /// The party id.
        party: u8,
        /// What is wrong.
        reason: String,
    },
    /// A `client_address` that is not `host:port`.
    #[error("party {party}: client_address {address:?} is invalid: {reason}")]
    BadClientAddress {
        /// The party id.
        party: u8,
        /// The address as written.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// A `[[client]]` name that is empty, too long or has a character outside
    /// `A-Z a-z 0-9 . _ -`.
    #[error("client name {name:?} is invalid: a name is 1 to {max} characters from A-Z, a-z, 0-9, '.', '_' and '-'", max = MAX_CLIENT_NAME_LEN)]
    BadClientName {
        /// The name as written.
        name: String,
    },
    /// A `[[client]]` fingerprint that does not parse.
    #[error("client {name:?}: bad fingerprint: {reason}")]
    BadClientFingerprint {
        /// The client's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two `[[client]]` entries with the same name.
    #[error("client {0:?} is enrolled more than once")]
    DuplicateClient(String),
    /// Two `[[client]]` entries with the same fingerprint.
    #[error("clients {first:?} and {second:?} have the same fingerprint {fingerprint}: each client needs a certificate of its own")]
    DuplicateClientFingerprint {
        /// The earlier entry's name.
        first: String,
        /// The later entry's name.
        second: String,
        /// The shared fingerprint.
        fingerprint: Fingerprint,
    },
    /// A `[[client]]` fingerprint that is a party's pinned fingerprint.
    #[error("client {name:?} has the fingerprint pinned for party {party}: a client needs a certificate of its own, never a party's")]
    ClientIsParty {
        /// The client's name.
        name: String,
        /// The party whose pin it is.
        party: u8,
    },
    /// An empty path.
    #[error("{field} path must not be empty{}", party.map(|p| format!(" (party {p})")).unwrap_or_default())]
    EmptyPath {
        /// The party, or `None` for `ca`.
        party: Option<u8>,
        /// `ca`, `cert` or `key`.
        field: &'static str,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// One party's entry in the parties file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyConfig {
    /// The party.
    pub id: PartyId,
    /// `host:port` it listens on (parties 0 and 1) and others connect to.
    pub address: String,
    /// Its certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The SHA-256 of its certificate, when trust is pinned rather than from a CA.
    pub fingerprint: Option<Fingerprint>,
    /// `host:port` where this party's server (`triad serve`) accepts clients, if it
    /// serves any (`client_address`).
    pub client_address: Option<String>,
}

/// Longest client name: 64 characters.
const MAX_CLIENT_NAME_LEN: usize = 64;

/// A client enrolled with the servers (a `[[client]]` entry): a peer presenting a
/// certificate with this fingerprint is this client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolledClient {
    /// Its name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The SHA-256 of its certificate.
    pub fingerprint: Fingerprint,
}

/// The parsed parties file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartiesConfig {
    /// Session id, checked in every handshake.
    pub session: String,
    /// Idle timeout: how long a peer may send nothing at all (no message, no heartbeat)
    /// before it is declared dead. Also the setup timeout unless `setup_timeout` is set.
    pub timeout: Duration,
    /// How long the setup (connect, TLS, handshake) may take, if not `timeout`.
    pub setup_timeout: Option<Duration>,
    /// Largest data frame.
    pub max_frame_bytes: u64,
    /// Inbound budget per link, if not twice `max_frame_bytes` (see
    /// [`LinkConfig::max_buffered_bytes`]).
    pub max_buffered_bytes: Option<u64>,
    /// The CA certificate (PEM), when trust comes from a shared CA; `None` when every
    /// party's certificate is pinned by its [`PartyConfig::fingerprint`].
    pub ca: Option<PathBuf>,
    /// Parties 0, 1, 2 in order.
    pub parties: [PartyConfig; 3],
    /// The clients enrolled with the servers (`[[client]]` entries), in file order.
    pub clients: Vec<EnrolledClient>,
    /// A modelled network for measurements ([`NetModel`]; `triad party --rtt-ms --gbps`),
    /// never read from or written to the file.
    pub net: Option<NetModel>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_frame_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_buffered_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<String>,
    #[serde(default)]
    party: Vec<RawParty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    client: Vec<RawClient>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    id: i64,
    address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_address: Option<String>,
    cert: String,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    fingerprint: String,
}

/// Check a session id.
pub(crate) fn validate_session(session: &str) -> Result<(), ConfigError> {
    if session.is_empty() {
        return Err(ConfigError::EmptySession);
    }
    if session.len() > MAX_SESSION_LEN {
        return Err(ConfigError::SessionTooLong { len: session.len(), max: MAX_SESSION_LEN });
    }
    if session.chars().any(char::is_control) {
        return Err(ConfigError::SessionControlChar);
    }
    Ok(())
}

/// Check that `address` looks like `host:port` (no name resolution).
fn validate_address(party: u8, address: &str) -> Result<(), ConfigError> {
    address_problem(address).map_err(|reason| ConfigError::BadAddress {
        party,
        address: address.to_string(),
        reason: reason.to_string(),
    })
}

/// Check that a party's `client_address` looks like `host:port` (no name resolution).
fn validate_client_address(party: u8, address: &str) -> Result<(), ConfigError> {
    address_problem(address).map_err(|reason| ConfigError::BadClientAddress {
        party,
        address: address.to_string(),
        reason: reason.to_string(),
    })
}

/// What is wrong with `address` as `host:port`, if anything.
fn address_problem(address: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']' after an IPv6 address")?;
        let port = after.strip_prefix(':').ok_or("expected host:port")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not a valid IPv6 address between '[' and ']'");
        }
        (host, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or("expected host:port")?;
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]:7000");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the host contains whitespace");
    }
    let port: u16 = port.parse().map_err(|_| "the port is not a number from 1 to 65535")?;
    if port == 0 {
        return Err("port 0 is not allowed");
    }
    Ok(())
}

/// Whether `name` is a valid client name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
pub(crate) fn valid_client_name(name: &str) -> bool {
    (1..=MAX_CLIENT_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Check the `[[client]]` entries against each other and the parties' pins.
fn parse_clients(raw: Vec<RawClient>, parties: &[PartyConfig; 3]) -> Result<Vec<EnrolledClient>, ConfigError> {
    let mut clients: Vec<EnrolledClient> = Vec::with_capacity(raw.len());
    for c in raw {
        if !valid_client_name(&c.name) {
            return Err(ConfigError::BadClientName { name: c.name });
        }
        let fingerprint = match c.fingerprint.parse::<Fingerprint>() {
            Ok(f) => f,
            Err(reason) => return Err(ConfigError::BadClientFingerprint { name: c.name, reason }),
        };
        if clients.iter().any(|e| e.name == c.name) {
            return Err(ConfigError::DuplicateClient(c.name));
        }
        if let Some(e) = clients.iter().find(|e| e.fingerprint == fingerprint) {
            return Err(ConfigError::DuplicateClientFingerprint { first: e.name.clone(), second: c.name, fingerprint });
        }
        if let Some(p) = parties.iter().find(|p| p.fingerprint == Some(fingerprint)) {
            return Err(ConfigError::ClientIsParty { name: c.name, party: p.id.as_u8() });
        }
        clients.push(EnrolledClient { name: c.name, fingerprint });
    }
    Ok(clients)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit_once('\n').map_or(before, |(_, l)| l).chars().count() + 1;
    (line, col)
}

impl PartiesConfig {
    /// Parse a parties file. Pure: paths are kept as written (see [`PartiesConfig::load`]).
    pub fn parse(text: &str) -> Result<PartiesConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError::Syntax { line, column, message: e.message().trim().replace('\n', "; ") }
        })?;
        validate_session(&raw.session)?;
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if raw.setup_timeout_ms == Some(0) {
            return Err(ConfigError::ZeroSetupTimeout);
        }
        let max_frame_bytes = raw.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
        if max_frame_bytes == 0 {
            return Err(ConfigError::ZeroMaxFrame);
        }
        if let Some(buffered) = raw.max_buffered_bytes.filter(|&b| b < max_frame_bytes) {
            return Err(ConfigError::BufferBelowFrame { buffered, frame: max_frame_bytes });
        }
        if raw.ca.as_deref() == Some("") {
            return Err(ConfigError::EmptyPath { party: None, field: "ca" });
        }
        let mut slots: [Option<PartyConfig>; 3] = [None, None, None];
        for p in raw.party {
            let id = u8::try_from(p.id).ok().and_then(PartyId::new).ok_or(ConfigError::BadPartyId(p.id))?;
            let n = id.as_u8();
            if slots[id.index()].is_some() {
                return Err(ConfigError::DuplicateParty(n));
            }
            validate_address(n, &p.address)?;
            if let Some(a) = &p.client_address {
                validate_client_address(n, a)?;
            }
            for (field, v) in [("cert", &p.cert), ("key", &p.key)] {
                if v.is_empty() {
                    return Err(ConfigError::EmptyPath { party: Some(n), field });
                }
            }
            let fingerprint = p
                .fingerprint
                .map(|f| f.parse::<Fingerprint>().map_err(|reason| ConfigError::BadFingerprint { party: n, reason }))
                .transpose()?;
            slots[id.index()] = Some(PartyConfig {
                id,
                address: p.address,
                cert: PathBuf::from(p.cert),
                key: PathBuf::from(p.key),
                fingerprint,
                client_address: p.client_address,
            });
        }
        let [a, b, c] = slots;
        let a = a.ok_or(ConfigError::MissingParty(0))?;
        let b = b.ok_or(ConfigError::MissingParty(1))?;
        let c = c.ok_or(ConfigError::MissingParty(2))?;
        let unpinned = [&a, &b, &c].into_iter().find(|p| p.fingerprint.is_none()).map(|p| p.id.as_u8());
        let pinned = [&a, &b, &c].iter().filter(|p| p.fingerprint.is_some()).count();
        match (raw.ca.is_some(), pinned) {
            (true, 0) | (false, 3) => {}
            (true, _) => return Err(ConfigError::MixedTrust),
            (false, n) => return Err(ConfigError::NoTrust { missing: unpinned.filter(|_| n > 0) }),
        }
        let parties = [a, b, c];
        let clients = parse_clients(raw.client, &parties)?;
        Ok(PartiesConfig {
            session: raw.session,
            timeout: Duration::from_millis(timeout_ms),
            setup_timeout: raw.setup_timeout_ms.map(Duration::from_millis),
            max_frame_bytes,
            max_buffered_bytes: raw.max_buffered_bytes,
            ca: raw.ca.map(PathBuf::from),
            parties,
            clients,
            net: None,
        })
    }

    /// Read and parse a parties file; relative paths in it are resolved against the
    /// file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<PartiesConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.to_path_buf(), detail: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Ok(PartiesConfig::parse(&text)?.with_base_dir(base))
    }

    /// Resolve relative `ca`, `cert` and `key` paths against `dir`.
    pub fn with_base_dir(mut self, dir: &Path) -> PartiesConfig {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(ca) = &mut self.ca {
            fix(ca);
        }
        for p in &mut self.parties {
            fix(&mut p.cert);
            fix(&mut p.key);
        }
        self
    }

    /// How long the setup may take: `setup_timeout`, else `timeout`.
    pub fn setup_timeout(&self) -> Duration {
        self.setup_timeout.unwrap_or(self.timeout)
    }

    /// The entry of party `id`.
    pub fn party(&self, id: PartyId) -> &PartyConfig {
        &self.parties[id.index()]
    }

    /// The link settings this file implies.
    pub fn link_config(&self) -> LinkConfig {
        LinkConfig {
            timeout: self.timeout,
            max_frame_bytes: self.max_frame_bytes,
            max_buffered_bytes: self.max_buffered_bytes.unwrap_or(self.max_frame_bytes.saturating_mul(2)),
            session: self.session.clone(),
            net: self.net,
        }
    }

    /// Write the configuration back as TOML (paths as stored; `parse` reads it back).
    pub fn to_toml(&self) -> String {
        let raw = RawConfig {
            session: self.session.clone(),
            timeout_ms: Some(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)),
            setup_timeout_ms: self.setup_timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            max_frame_bytes: (self.max_frame_bytes != DEFAULT_MAX_FRAME_BYTES).then_some(self.max_frame_bytes),
            max_buffered_bytes: self.max_buffered_bytes,
            ca: self.ca.as_ref().map(|c| c.to_string_lossy().into_owned()),
            party: self
                .parties
                .iter()
                .map(|p| RawParty {
                    id: i64::from(p.id.as_u8()),
                    address: p.address.clone(),
                    client_address: p.client_address.clone(),
                    cert: p.cert.to_string_lossy().into_owned(),
                    key: p.key.to_string_lossy().into_owned(),
                    fingerprint: p.fingerprint.map(|f| f.to_string()),
                })
                .collect(),
            client: self
                .clients
                .iter()
                .map(|c| RawClient { name: c.name.clone(), fingerprint: c.fingerprint.to_string() })
                .collect(),
        };
        toml::to_string(&raw).unwrap_or_default()
    }
}
