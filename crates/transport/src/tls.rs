//! TCP links with mutual TLS (rustls, `ring` provider): identities, setup, and the
//! per-link reader and writer threads.

use crate::channels::{lock, Channels, Core, Event, Link};
use crate::config::{validate_session, PartiesConfig};
use crate::error::{HandshakeMismatch, TransportError};
use crate::wire::{
    check_handshake, decode_frame_header, decode_handshake, encode_frame_header, encode_handshake, le_bytes, printable,
    words_as_bytes_mut, FrameKind, Handshake, Payload, DATA_DEPTH_LEN, FRAME_HEADER_LEN, MAX_ABORT_REASON_BYTES,
};
use crate::PartyId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// Plaintext written to rustls per lock acquisition.
const WRITE_CHUNK: usize = 512 << 10;
/// Messages up to this size are written as one buffer together with their header.
const SMALL_MESSAGE: usize = 64 << 10;
/// Socket read buffer of the reader thread.
const READ_BUF: usize = 256 << 10;
/// How long an abort waits for the abort frame to leave before cutting the connection.
const ABORT_GRACE: Duration = Duration::from_millis(250);

fn identity_err(detail: impl fmt::Display) -> TransportError {
    TransportError::Identity { detail: detail.to_string() }
}

/// A party's TLS identity: the CA certificate, its own certificate chain and key.
pub struct TlsIdentity {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity { ca: self.ca.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl TlsIdentity {
    /// Build an identity from PEM text: the CA certificate, this party's certificate
    /// (chain, leaf first) and its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TransportError> {
        let ca = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .next()
            .ok_or_else(|| identity_err("no certificate in the CA PEM"))?
            .map_err(|e| identity_err(format!("bad CA PEM: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| identity_err(format!("bad certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(identity_err("no certificate in the certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| identity_err(format!("bad private key PEM: {e}")))?;
        Ok(TlsIdentity { ca, chain, key })
    }

    /// Load party `me`'s identity from the files `cfg` names.
    pub fn load(cfg: &PartiesConfig, me: PartyId) -> Result<Self, TransportError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| identity_err(format!("cannot read {}: {e}", p.display())))
        };
        let party = cfg.party(me);
        TlsIdentity::from_pem(&read(&cfg.ca)?, &read(&party.cert)?, &read(&party.key)?)
    }
}

/// One party's certificate and key, PEM encoded.
#[derive(Clone)]
pub struct PartyPem {
    /// The certificate (signed by the CA).
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for PartyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyPem").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// A CA and three party certificates, PEM encoded (from [`generate_test_pki`]).
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate. (The CA key is not kept.)
    pub ca_cert_pem: String,
    /// Parties 0, 1, 2.
    pub parties: [PartyPem; 3],
}

impl Pki {
    /// The identity of `party`.
    pub fn identity(&self, party: PartyId) -> Result<TlsIdentity, TransportError> {
        let p = &self.parties[party.index()];
        TlsIdentity::from_pem(&self.ca_cert_pem, &p.cert_pem, &p.key_pem)
    }
}

/// Generate a fresh CA and a certificate for each party (ECDSA P-256).
///
/// Party `i`'s certificate names `party{i}` (the identity the handshake checks) and, if
/// not empty, `hosts[i]` (a host name or IP address, no port) as subject alternative
/// names, and is valid for both TLS server and client authentication. The CA key is
/// discarded. Used by tests and by `triad keygen`.
pub fn generate_test_pki(hosts: [&str; 3]) -> Result<Pki, TransportError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| identity_err(format!("certificate generation failed: {e}"));
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    // A name unique to this CA, so a certificate from another triad CA reads as "unknown
    // issuer" rather than as a bad signature.
    let tag: String = ca_key.public_key_raw().iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
    ca_params.distinguished_name.push(DnType::CommonName, format!("triad CA {tag}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;
    let mut parties = Vec::with_capacity(3);
    for (p, host) in PartyId::ALL.iter().zip(hosts) {
        let name = p.dns_name();
        let mut sans = vec![name.clone()];
        if !host.is_empty() && host != name {
            sans.push(host.to_string());
        }
        let mut params = CertificateParams::new(sans).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        parties.push(PartyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() });
    }
    let [a, b, c]: [PartyPem; 3] =
        parties.try_into().map_err(|_| identity_err("internal: expected three certificates"))?;
    Ok(Pki { ca_cert_pem: ca.pem(), parties: [a, b, c] })
}

/// The parties (`party0`..`party2`) a certificate names, without checking its chain.
fn cert_parties(der: &CertificateDer<'_>) -> Vec<PartyId> {
    let Ok(ee) = webpki::EndEntityCert::try_from(der) else {
        return Vec::new();
    };
    PartyId::ALL
        .into_iter()
        .filter(|p| {
            ServerName::try_from(p.dns_name()).map(|n| ee.verify_is_valid_for_subject_name(&n).is_ok()).unwrap_or(false)
        })
        .collect()
}

fn alpn(p: PartyId) -> Vec<u8> {
    format!("triad-p{}", p.as_u8()).into_bytes()
}

fn alpn_party(proto: &[u8]) -> Option<PartyId> {
    match proto {
        [b't', b'r', b'i', b'a', b'd', b'-', b'p', d] => PartyId::new(d.wrapping_sub(b'0')),
        _ => None,
    }
}

/// A client-certificate verifier that records which party a client claims to be (from
/// its certificate's names, before the chain is checked), so that a rejected client can
/// be named in the error.
#[derive(Debug)]
struct ClaimVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    claim: Arc<Mutex<Option<PartyId>>>,
}

impl ClientCertVerifier for ClaimVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let [p] = cert_parties(end_entity)[..] {
            *lock(&self.claim) = Some(p);
        }
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Everything the setup threads share.
struct Setup {
    me: PartyId,
    cfg: PartiesConfig,
    hello: Handshake,
    deadline: Instant,
    cancel: AtomicBool,
    provider: Arc<CryptoProvider>,
    identity: TlsIdentity,
    client: Option<Arc<ClientConfig>>,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl Setup {
    fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    fn server_config(&self, claim: Arc<Mutex<Option<PartyId>>>) -> Result<Arc<ServerConfig>, TransportError> {
        let verifier = Arc::new(ClaimVerifier { inner: Arc::clone(&self.client_verifier), claim });
        let mut sc = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(identity_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.identity.chain.clone(), self.identity.key.clone_key())
            .map_err(identity_err)?;
        sc.send_tls13_tickets = 0;
        sc.alpn_protocols = PartyId::ALL.into_iter().filter(|&p| p > self.me).map(alpn).collect();
        Ok(Arc::new(sc))
    }

    /// Socket timeouts for the setup phase: whatever is left of the deadline.
    fn set_setup_timeouts(&self, sock: &TcpStream) -> io::Result<()> {
        let left = self.left().max(Duration::from_millis(1));
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        sock.set_nodelay(true)
    }
}

/// A connection that finished TLS and the handshake.
struct Established {
    peer: PartyId,
    sock: TcpStream,
    conn: Connection,
}

fn tls_handshake(conn: &mut Connection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// Write plaintext through a TLS connection on a blocking socket (setup phase only).
fn blocking_write(conn: &mut Connection, sock: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    conn.writer().write_all(data)?;
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    sock.flush()
}

/// Read exactly `buf.len()` plaintext bytes from a TLS connection on a blocking socket.
fn blocking_read_exact(conn: &mut Connection, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match conn.reader().read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_tls(sock)?;
                if let Err(e) = conn.process_new_packets() {
                    // Tell the peer (alert) before giving up.
                    let _ = conn.write_tls(sock);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write one complete frame through a blocking TLS connection (setup phase only).
fn write_frame_blocking(
    conn: &mut Connection,
    sock: &mut TcpStream,
    kind: FrameKind,
    payload: &[u8],
) -> io::Result<()> {
    let mut buf = encode_frame_header(kind, payload.len() as u64).to_vec();
    buf.extend_from_slice(payload);
    blocking_write(conn, sock, &buf)
}

fn abort_payload(reason: &str) -> &[u8] {
    let max = MAX_ABORT_REASON_BYTES as usize;
    let mut end = reason.len().min(max);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

/// Exchange handshakes with `peer` on a fresh TLS connection.
fn exchange_hello(
    setup: &Setup,
    conn: &mut Connection,
    sock: &mut TcpStream,
    peer: PartyId,
) -> Result<(), TransportError> {
    let timeout = setup.timeout();
    let io_err = |e: io::Error| TransportError::from_io(peer, &e, timeout);
    write_frame_blocking(conn, sock, FrameKind::Hello, &encode_handshake(&setup.hello)).map_err(io_err)?;
    let mut h = [0u8; FRAME_HEADER_LEN];
    blocking_read_exact(conn, sock, &mut h).map_err(io_err)?;
    let hs = |mismatch| TransportError::Handshake { peer, mismatch };
    let header = decode_frame_header(&h, setup.cfg.max_frame_bytes)
        .map_err(|e| hs(HandshakeMismatch::NotHandshake(e.to_string())))?;
    match header.kind {
        FrameKind::Hello => {}
        FrameKind::Abort => {
            let mut reason = vec![0u8; header.len as usize];
            blocking_read_exact(conn, sock, &mut reason).map_err(io_err)?;
            return Err(TransportError::PeerAborted {
                peer,
                reason: printable(&String::from_utf8_lossy(&reason), 1024),
            });
        }
        kind => return Err(hs(HandshakeMismatch::NotHandshake(format!("a {kind} frame")))),
    }
    // Hello frames are at most MAX_HANDSHAKE_BYTES long (checked by the header decoder).
    let mut body = vec![0u8; header.len as usize];
    blocking_read_exact(conn, sock, &mut body).map_err(io_err)?;
    let theirs = decode_handshake(&body).map_err(|e| hs(HandshakeMismatch::Decode(e)))?;
    check_handshake(&setup.hello, &theirs, peer).map_err(hs)
}

/// After TLS and (for the acceptor) identity checks: exchange handshakes, telling the
/// peer why if we refuse it.
fn finish_connection(
    setup: &Setup,
    mut conn: Connection,
    mut sock: TcpStream,
    peer: PartyId,
) -> Result<Established, TransportError> {
    match exchange_hello(setup, &mut conn, &mut sock, peer) {
        Ok(()) => Ok(Established { peer, sock, conn }),
        Err(e) => {
            if matches!(e, TransportError::Handshake { .. }) {
                let reason = format!("{} refused the connection: {e}", setup.me);
                let _ = write_frame_blocking(&mut conn, &mut sock, FrameKind::Abort, abort_payload(&reason));
            }
            Err(e)
        }
    }
}

/// Tell the peer of an established connection why we give up (best effort, bounded).
fn abort_established(est: &mut Established, reason: &str) {
    let _ = est.sock.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = write_frame_blocking(&mut est.conn, &mut est.sock, FrameKind::Abort, abort_payload(reason));
    let _ = est.sock.shutdown(Shutdown::Write);
}

fn check_cert_identity(conn: &Connection, allowed: &[PartyId], fallback: PartyId) -> Result<PartyId, TransportError> {
    let parties = conn.peer_certificates().and_then(|c| c.first()).map(cert_parties).unwrap_or_default();
    let cert_err =
        |peer, what: String| TransportError::Handshake { peer, mismatch: HandshakeMismatch::Certificate(what) };
    match parties[..] {
        [p] if allowed.contains(&p) => Ok(p),
        [p] => Err(cert_err(p, format!("the certificate names {p}, which was not expected here"))),
        [] => Err(cert_err(fallback, "the certificate names no party (party0, party1 or party2)".into())),
        _ => Err(cert_err(fallback, "the certificate names more than one party".into())),
    }
}

/// Dial `peer` (retrying until the deadline), then TLS and handshake.
fn connect_one(setup: &Setup, peer: PartyId) -> Result<Established, TransportError> {
    let address = setup.cfg.party(peer).address.clone();
    let mut last = String::from("no attempt made");
    let mut attempted = false;
    let mut sock = 'dial: loop {
        // Once the setup has failed elsewhere, one attempt is still made, so that the
        // peer hears why rather than waiting for its timeout.
        if setup.cancelled() && attempted {
            return Err(TransportError::Aborted { reason: "setup cancelled".into() });
        }
        let left = setup.left();
        if left.is_zero() {
            return Err(TransportError::Connect { peer, address, after: setup.timeout(), detail: last });
        }
        match address.to_socket_addrs() {
            Ok(addrs) => {
                for a in addrs {
                    let t = setup.left().min(Duration::from_secs(2));
                    if t.is_zero() {
                        break;
                    }
                    match TcpStream::connect_timeout(&a, t) {
                        Ok(s) => break 'dial s,
                        Err(e) => last = format!("{a}: {e}"),
                    }
                }
            }
            Err(e) => last = format!("cannot resolve the address: {e}"),
        }
        attempted = true;
        thread::sleep(setup.left().min(Duration::from_millis(20)));
    };
    let io_err = |e: io::Error| TransportError::from_io(peer, &e, setup.timeout());
    setup.set_setup_timeouts(&sock).map_err(io_err)?;
    let client = setup.client.clone().ok_or_else(|| identity_err("no client config"))?;
    let name = ServerName::try_from(peer.dns_name()).map_err(identity_err)?;
    let mut conn = Connection::Client(ClientConnection::new(client, name).map_err(|e| TransportError::tls(peer, &e))?);
    tls_handshake(&mut conn, &mut sock).map_err(io_err)?;
    check_cert_identity(&conn, &[peer], peer)?;
    finish_connection(setup, conn, sock, peer)
}

/// Accept one connection and find out which pending party it is.
fn accept_one(
    setup: &Setup,
    mut sock: TcpStream,
    pending: &[PartyId],
    expected: &[PartyId],
) -> Result<Established, (PartyId, TransportError)> {
    let guess = |claim: Option<PartyId>, conn: Option<&Connection>| -> PartyId {
        let alpn_claim = conn.and_then(|c| c.alpn_protocol()).and_then(alpn_party);
        claim
            .filter(|p| pending.contains(p))
            .or(alpn_claim.filter(|p| pending.contains(p)))
            .or(pending.last().copied())
            .unwrap_or(setup.me.next())
    };
    let claim = Arc::new(Mutex::new(None));
    let fail0 = |e: TransportError| (guess(None, None), e);
    sock.set_nonblocking(false).and_then(|()| setup.set_setup_timeouts(&sock)).map_err(|e| {
        let p = guess(None, None);
        (p, TransportError::from_io(p, &e, setup.timeout()))
    })?;
    let sc = setup.server_config(Arc::clone(&claim)).map_err(fail0)?;
    let mut conn = Connection::Server(ServerConnection::new(sc).map_err(|e| {
        let p = guess(None, None);
        (p, TransportError::tls(p, &e))
    })?);
    if let Err(e) = tls_handshake(&mut conn, &mut sock) {
        let p = guess(*lock(&claim), Some(&conn));
        return Err((p, TransportError::from_io(p, &e, setup.timeout())));
    }
    let fallback = guess(*lock(&claim), Some(&conn));
    let peer = check_cert_identity(&conn, expected, fallback).map_err(|e| (fallback, e))?;
    if !pending.contains(&peer) {
        return Err((peer, TransportError::Handshake { peer, mismatch: HandshakeMismatch::Duplicate(peer) }));
    }
    finish_connection(setup, conn, sock, peer).map_err(|e| (peer, e))
}

type SetupResult = (PartyId, Result<Established, TransportError>);

fn accept_loop(setup: Arc<Setup>, listener: TcpListener, tx: Sender<SetupResult>) {
    let expected: Vec<PartyId> = PartyId::ALL.into_iter().filter(|&p| p > setup.me).collect();
    let mut pending = expected.clone();
    if let Err(e) = listener.set_nonblocking(true) {
        for &p in &pending {
            let _ = tx.send((p, Err(TransportError::from_io(p, &e, setup.timeout()))));
        }
        return;
    }
    while !pending.is_empty() && !setup.cancelled() {
        if setup.left().is_zero() {
            for &p in &pending {
                let _ = tx.send((p, Err(TransportError::Timeout { peer: p, after: setup.timeout() })));
            }
            return;
        }
        match listener.accept() {
            Ok((sock, _)) => match accept_one(&setup, sock, &pending, &expected) {
                Ok(est) => {
                    pending.retain(|&p| p != est.peer);
                    let _ = tx.send((est.peer, Ok(est)));
                }
                Err((p, e)) => {
                    let _ = tx.send((p, Err(e)));
                    return;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let p = pending[0];
                let _ = tx.send((p, Err(TransportError::from_io(p, &e, setup.timeout()))));
                return;
            }
        }
    }
}

/// Connect party `me` to the other two over TCP with mutual TLS, as `cfg` describes,
/// binding `me`'s configured address if it must accept connections (parties 0 and 1).
///
/// The whole setup must finish within `cfg.timeout`. Errors name the peer at fault.
pub fn connect_tls(cfg: &PartiesConfig, me: PartyId, identity: TlsIdentity) -> Result<Channels, TransportError> {
    connect_tls_with_listener(cfg, me, identity, None)
}

/// [`connect_tls`] with an already bound listener for `me` (ignored for party 2, which
/// only dials). Lets tests bind port 0 and put the real port in the configuration.
pub fn connect_tls_with_listener(
    cfg: &PartiesConfig,
    me: PartyId,
    identity: TlsIdentity,
    listener: Option<TcpListener>,
) -> Result<Channels, TransportError> {
    validate_session(&cfg.session)?;
    let deadline = Instant::now() + cfg.timeout;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca.clone()).map_err(|e| identity_err(format!("bad CA certificate: {e}")))?;
    let roots = Arc::new(roots);
    let lower: Vec<PartyId> = PartyId::ALL.into_iter().filter(|&p| p < me).collect();
    let accepts = PartyId::ALL.into_iter().any(|p| p > me);
    let client = if lower.is_empty() {
        None
    } else {
        let mut cc = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(identity_err)?
            .with_root_certificates(Arc::clone(&roots))
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| identity_err(format!("bad certificate or key: {e}")))?;
        cc.resumption = Resumption::disabled();
        cc.alpn_protocols = vec![alpn(me)];
        Some(Arc::new(cc))
    };
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| identity_err(format!("bad CA certificate: {e}")))?;
    let setup = Arc::new(Setup {
        me,
        cfg: cfg.clone(),
        hello: Handshake::new(me, &cfg.session),
        deadline,
        cancel: AtomicBool::new(false),
        provider,
        identity,
        client,
        client_verifier,
    });
    // Surface key problems before any connection.
    setup.server_config(Arc::new(Mutex::new(None)))?;

    let (tx, rx) = channel::<SetupResult>();
    if accepts {
        let listener = match listener {
            Some(l) => l,
            None => {
                let address = &cfg.party(me).address;
                TcpListener::bind(address)
                    .map_err(|e| TransportError::Bind { address: address.clone(), detail: e.to_string() })?
            }
        };
        let (s, t) = (Arc::clone(&setup), tx.clone());
        spawn(format!("triad-{}-accept", me.as_u8()), move || accept_loop(s, listener, t))?;
    }
    for p in lower {
        let (s, t) = (Arc::clone(&setup), tx.clone());
        spawn(format!("triad-{}-dial-{}", me.as_u8(), p.as_u8()), move || {
            let r = connect_one(&s, p);
            let _ = t.send((p, r));
        })?;
    }
    drop(tx);

    let mut slots: [Option<Established>; 3] = [None, None, None];
    // On failure, tell every peer we reached (or still reach: dials in flight finish in
    // the background) why this party gives up, so none waits for its timeout.
    let fail =
        |setup: &Arc<Setup>, slots: &mut [Option<Established>; 3], rx: Receiver<SetupResult>, e: TransportError| {
            setup.cancel.store(true, Ordering::SeqCst);
            let reason = format!("{} could not complete setup: {e}", setup.me);
            for est in slots.iter_mut().flatten() {
                abort_established(est, &reason);
            }
            let _ = spawn(format!("triad-{}-setup-abort", setup.me.as_u8()), move || {
                for (_, r) in rx {
                    if let Ok(mut est) = r {
                        abort_established(&mut est, &reason);
                    }
                }
            });
            e
        };
    while slots.iter().flatten().count() < 2 {
        let wait = setup.left() + Duration::from_millis(500);
        match rx.recv_timeout(wait) {
            Ok((_, Ok(est))) => {
                let i = est.peer.index();
                slots[i] = Some(est);
            }
            Ok((_, Err(e))) => return Err(fail(&setup, &mut slots, rx, e)),
            Err(_) => {
                let missing =
                    PartyId::ALL.into_iter().find(|&p| p != me && slots[p.index()].is_none()).unwrap_or(me.next());
                let e = TransportError::Timeout { peer: missing, after: cfg.timeout };
                return Err(fail(&setup, &mut slots, rx, e));
            }
        }
    }
    let next = slots[me.next().index()].take();
    let prev = slots[me.prev().index()].take();
    let (Some(next), Some(prev)) = (next, prev) else {
        return Err(identity_err("internal: setup finished without both links"));
    };
    build_channels(cfg, me, next, prev)
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), TransportError> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(drop)
        .map_err(|e| identity_err(format!("cannot start a thread: {e}")))
}

fn build_channels(
    cfg: &PartiesConfig,
    me: PartyId,
    next: Established,
    prev: Established,
) -> Result<Channels, TransportError> {
    let link_cfg = cfg.link_config();
    let (tn, rn) = channel();
    let (tp, rp) = channel();
    let core = Arc::new(Core::new(me, [tn.clone(), tp.clone()]));
    let (ln, sn) = TlsLink::new(me, next, &link_cfg, tn)?;
    let (lp, sp) = TlsLink::new(me, prev, &link_cfg, tp)?;
    let links: [Arc<dyn Link>; 2] = [ln, lp];
    let channels = Channels::new(Arc::clone(&core), links, [rn, rp], &link_cfg);
    // Threads start only once the core knows its links, so a failure can abort both.
    sn.start(&core)?;
    sp.start(&core)?;
    Ok(channels)
}

enum Cmd {
    /// A message and its depth.
    Data(u64, Payload),
    Bye,
    Abort,
}

/// State shared by a link's handle and its two threads.
#[derive(Debug)]
struct LinkShared {
    me: PartyId,
    peer: PartyId,
    sock: TcpStream,
    conn: Mutex<Connection>,
    aborting: AtomicBool,
    /// Set by a graceful close: from then on the peer closing its side is expected, and an
    /// error on this link (a reset from a peer that already left) must not abort the session.
    closing: AtomicBool,
    /// Set when the reader thread has ended.
    read_ended: AtomicBool,
    reason: Mutex<String>,
    timeout: Duration,
    max_frame_bytes: u64,
}

impl LinkShared {
    fn aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    /// Whether an error on this link should fail the session: not once it is aborting or
    /// closing gracefully.
    fn live(&self) -> bool {
        !self.aborting() && !self.closing.load(Ordering::SeqCst)
    }

    fn io_err(&self, e: &io::Error) -> TransportError {
        TransportError::from_io(self.peer, e, self.timeout)
    }
}

/// The handle of one TLS link.
#[derive(Debug)]
struct TlsLink {
    shared: Arc<LinkShared>,
    queue: Mutex<Option<Sender<Cmd>>>,
    /// Signalled when the writer has sent everything (bye included) or given up.
    done: Mutex<Option<Receiver<()>>>,
    /// Signalled when the reader has ended (the peer's bye and close_notify, or an error).
    read_done: Mutex<Option<Receiver<()>>>,
    /// The thread that cuts the connection after an abort.
    cut: Mutex<Option<thread::JoinHandle<()>>>,
}

/// What is needed to start a link's threads.
struct LinkStarter {
    shared: Arc<LinkShared>,
    queue: Receiver<Cmd>,
    done: Sender<()>,
    read_done: Sender<()>,
    inbound: Sender<Event>,
}

impl TlsLink {
    fn new(
        me: PartyId,
        est: Established,
        cfg: &crate::LinkConfig,
        inbound: Sender<Event>,
    ) -> Result<(Arc<TlsLink>, LinkStarter), TransportError> {
        let Established { peer, sock, mut conn } = est;
        let timeout = cfg.timeout;
        let io_err = |e: io::Error| TransportError::from_io(peer, &e, timeout);
        sock.set_read_timeout(None).map_err(io_err)?;
        sock.set_write_timeout(Some(timeout)).map_err(io_err)?;
        sock.set_nodelay(true).map_err(io_err)?;
        conn.set_buffer_limit(None);
        let shared = Arc::new(LinkShared {
            me,
            peer,
            sock,
            conn: Mutex::new(conn),
            aborting: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            read_ended: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
            timeout,
            max_frame_bytes: cfg.max_frame_bytes,
        });
        let (qtx, qrx) = channel();
        let (dtx, drx) = channel();
        let (rtx, rrx) = channel();
        let link = Arc::new(TlsLink {
            shared: Arc::clone(&shared),
            queue: Mutex::new(Some(qtx)),
            done: Mutex::new(Some(drx)),
            read_done: Mutex::new(Some(rrx)),
            cut: Mutex::new(None),
        });
        Ok((link, LinkStarter { shared, queue: qrx, done: dtx, read_done: rtx, inbound }))
    }
}

impl LinkStarter {
    fn start(self, core: &Arc<Core>) -> Result<(), TransportError> {
        let LinkStarter { shared, queue, done, read_done, inbound } = self;
        let (me, peer) = (shared.me.as_u8(), shared.peer.as_u8());
        let (s, c) = (Arc::clone(&shared), Arc::downgrade(core));
        spawn(format!("triad-{me}-tx-{peer}"), move || {
            writer_main(&s, queue, &c);
            let _ = done.send(());
        })?;
        let c = Arc::downgrade(core);
        spawn(format!("triad-{me}-rx-{peer}"), move || {
            if let Err(e) = read_loop(&shared, &inbound) {
                if shared.live() {
                    if let Some(core) = c.upgrade() {
                        core.fail(e);
                    }
                }
            }
            shared.read_ended.store(true, Ordering::SeqCst);
            let _ = read_done.send(());
        })
    }
}

impl Link for TlsLink {
    fn send(&self, depth: u64, payload: Payload) -> Result<(), TransportError> {
        let peer = self.shared.peer;
        match lock(&self.queue).as_ref() {
            Some(tx) => tx.send(Cmd::Data(depth, payload)).map_err(|_| TransportError::PeerClosed { peer }),
            None => Err(TransportError::PeerClosed { peer }),
        }
    }

    fn close(&self) {
        if let Some(tx) = lock(&self.queue).take() {
            self.shared.closing.store(true, Ordering::SeqCst);
            let _ = tx.send(Cmd::Bye);
        }
    }

    /// Wait for our bye to leave and then for the peer's: a process that exited while its
    /// peer still had a bye in flight to it would answer with a reset, and a peer still
    /// sending to another party must not read that reset as a failure of the session.
    fn wait_closed(&self, deadline: Instant) {
        if let Some(cut) = lock(&self.cut).take() {
            // Aborted: the cut thread ends within two grace periods.
            let _ = cut.join();
            return;
        }
        for done in [&self.done, &self.read_done] {
            if let Some(rx) = lock(done).take() {
                let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }

    fn abort(&self, reason: &str) -> Option<Arc<Core>> {
        *lock(&self.shared.reason) = reason.to_string();
        self.shared.aborting.store(true, Ordering::SeqCst);
        if let Some(tx) = lock(&self.queue).take() {
            let _ = tx.send(Cmd::Abort);
        }
        let done = lock(&self.done).take();
        let read_done = lock(&self.read_done).take();
        let shared = Arc::clone(&self.shared);
        // Let the abort frame leave, then keep reading (the reader discards what comes)
        // until the peer hangs up too: a socket closed with unread data answers with a
        // reset, which can destroy the abort frame before the peer reads it.
        let cut = move || {
            for rx in [done, read_done].into_iter().flatten() {
                let _ = rx.recv_timeout(ABORT_GRACE);
            }
            let _ = shared.sock.shutdown(Shutdown::Both);
        };
        let me = self.shared.me.as_u8();
        match thread::Builder::new().name(format!("triad-{me}-abort")).spawn(cut) {
            Ok(h) => *lock(&self.cut) = Some(h),
            // Could not start a thread: cut the connection now.
            Err(_) => {
                let _ = self.shared.sock.shutdown(Shutdown::Both);
            }
        }
        None
    }
}

/// Encrypts plaintext and writes TLS records to the socket, never holding the
/// connection lock while blocked on the socket (the reader needs it to decrypt).
struct TlsWriter<'a> {
    shared: &'a LinkShared,
    out: Vec<u8>,
}

impl TlsWriter<'_> {
    fn write_plain(&mut self, data: &[u8]) -> Result<(), TransportError> {
        {
            let mut conn = lock(&self.shared.conn);
            conn.writer().write_all(data).map_err(|e| self.shared.io_err(&e))?;
            while conn.wants_write() {
                conn.write_tls(&mut self.out).map_err(|e| self.shared.io_err(&e))?;
            }
        }
        self.flush_out()
    }

    fn flush_out(&mut self) -> Result<(), TransportError> {
        let r = (&self.shared.sock).write_all(&self.out);
        self.out.clear();
        r.map_err(|e| self.shared.io_err(&e))
    }

    /// Write a frame whose payload is `prefix` then `bytes` (the prefix is the depth word
    /// of a data frame, empty for control frames).
    fn frame(&mut self, kind: FrameKind, prefix: &[u8], bytes: &[u8]) -> Result<(), TransportError> {
        let header = encode_frame_header(kind, (prefix.len() + bytes.len()) as u64);
        if bytes.len() <= SMALL_MESSAGE {
            let mut buf = Vec::with_capacity(FRAME_HEADER_LEN + prefix.len() + bytes.len());
            buf.extend_from_slice(&header);
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(bytes);
            return self.write_plain(&buf);
        }
        let mut head = Vec::with_capacity(FRAME_HEADER_LEN + prefix.len());
        head.extend_from_slice(&header);
        head.extend_from_slice(prefix);
        self.write_plain(&head)?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if self.shared.aborting() {
                return Err(TransportError::Aborted { reason: "link aborted".into() });
            }
            self.write_plain(chunk)?;
        }
        Ok(())
    }

    fn send_abort(&mut self) {
        let reason = lock(&self.shared.reason).clone();
        let _ = self.frame(FrameKind::Abort, &[], abort_payload(&reason));
        let _ = self.shared.sock.shutdown(Shutdown::Write);
    }

    fn send_bye(&mut self) -> Result<(), TransportError> {
        self.frame(FrameKind::Bye, &[], &[])?;
        {
            let mut conn = lock(&self.shared.conn);
            conn.send_close_notify();
            while conn.wants_write() {
                conn.write_tls(&mut self.out).map_err(|e| self.shared.io_err(&e))?;
            }
        }
        self.flush_out()?;
        let _ = self.shared.sock.shutdown(Shutdown::Write);
        Ok(())
    }
}

fn payload_bytes(p: &Payload) -> Cow<'_, [u8]> {
    match p {
        Payload::Bytes(b) => Cow::Borrowed(b),
        Payload::Words { words, len_bytes } => match le_bytes(words) {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..*len_bytes]),
            Cow::Owned(mut v) => {
                v.truncate(*len_bytes);
                Cow::Owned(v)
            }
        },
    }
}

fn writer_main(shared: &LinkShared, queue: Receiver<Cmd>, core: &Weak<Core>) {
    let mut w = TlsWriter { shared, out: Vec::with_capacity(WRITE_CHUNK + (WRITE_CHUNK >> 4)) };
    for cmd in queue.iter() {
        if shared.aborting() {
            w.send_abort();
            return;
        }
        let r = match cmd {
            Cmd::Data(depth, p) => w.frame(FrameKind::Data, &depth.to_le_bytes(), &payload_bytes(&p)),
            Cmd::Bye => {
                let r = w.send_bye();
                if let Err(e) = r {
                    if shared.live() {
                        if let Some(c) = core.upgrade() {
                            c.fail(e);
                        }
                    }
                }
                return;
            }
            Cmd::Abort => {
                w.send_abort();
                return;
            }
        };
        if let Err(e) = r {
            if shared.live() {
                // A write fails when the peer has gone; if it left an abort frame saying
                // why, let the reader deliver it first so that the error names the cause.
                let until = Instant::now() + ABORT_GRACE;
                while !shared.read_ended.load(Ordering::SeqCst) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(2));
                }
                if let Some(c) = core.upgrade() {
                    c.fail(e);
                }
            }
            return;
        }
    }
}

/// Reassembles frames from the plaintext stream into word-aligned buffers.
struct Assembler {
    max_frame_bytes: u64,
    header: [u8; FRAME_HEADER_LEN],
    header_got: usize,
    body: Option<Body>,
}

/// The payload of the frame in progress. A data frame's depth word goes to `depth`, the
/// message after it to `words` (so the message stays word-aligned, never shifted).
struct Body {
    kind: FrameKind,
    /// The depth word as received so far.
    depth: [u8; DATA_DEPTH_LEN],
    /// Bytes of the depth word expected: [`DATA_DEPTH_LEN`] for data frames, else 0.
    depth_len: usize,
    depth_got: usize,
    /// Bytes of the message after the depth word.
    len: usize,
    words: Vec<u64>,
    got: usize,
}

/// A complete frame: its kind, its depth (data frames; 0 otherwise) and its message
/// (`len` bytes in `words`, native order).
struct Frame {
    kind: FrameKind,
    depth: u64,
    words: Vec<u64>,
    len: usize,
}

impl Frame {
    fn bytes(&self) -> &[u8] {
        &crate::wire::words_as_bytes(&self.words)[..self.len]
    }
}

impl Assembler {
    fn new(max_frame_bytes: u64) -> Assembler {
        Assembler { max_frame_bytes, header: [0; FRAME_HEADER_LEN], header_got: 0, body: None }
    }

    /// Where the next plaintext bytes go; never empty.
    fn dst(&mut self) -> &mut [u8] {
        match &mut self.body {
            None => &mut self.header[self.header_got..],
            Some(b) => {
                if b.depth_got < b.depth_len {
                    return &mut b.depth[b.depth_got..b.depth_len];
                }
                if b.got == b.words.len() * 8 {
                    // Grow with the data that actually arrives (a header may lie).
                    let total = b.len.div_ceil(8);
                    let cur = b.words.len();
                    let new = total.min((cur * 2).max(cur + (64 << 10)));
                    b.words.resize(new, 0);
                }
                let end = b.len.min(b.words.len() * 8);
                &mut words_as_bytes_mut(&mut b.words)[b.got..end]
            }
        }
    }

    /// Record `n` bytes written into `dst()`; returns a frame when one completes.
    fn advance(&mut self, n: usize, peer: PartyId) -> Result<Option<Frame>, TransportError> {
        match &mut self.body {
            None => {
                self.header_got += n;
                if self.header_got < FRAME_HEADER_LEN {
                    return Ok(None);
                }
                self.header_got = 0;
                let h = decode_frame_header(&self.header, self.max_frame_bytes)
                    .map_err(|e| TransportError::Malformed { peer, detail: e.to_string() })?;
                let len = usize::try_from(h.len).map_err(|_| TransportError::Malformed {
                    peer,
                    detail: format!("frame of {} bytes does not fit in memory", h.len),
                })?;
                let depth_len = if h.kind == FrameKind::Data { DATA_DEPTH_LEN } else { 0 };
                let Some(len) = len.checked_sub(depth_len) else {
                    return Err(TransportError::Malformed {
                        peer,
                        detail: format!("data frame of {len} bytes is shorter than its {DATA_DEPTH_LEN}-byte depth"),
                    });
                };
                if depth_len == 0 && len == 0 {
                    return Ok(Some(Frame { kind: h.kind, depth: 0, words: Vec::new(), len: 0 }));
                }
                self.body = Some(Body {
                    kind: h.kind,
                    depth: [0; DATA_DEPTH_LEN],
                    depth_len,
                    depth_got: 0,
                    len,
                    words: Vec::new(),
                    got: 0,
                });
                Ok(None)
            }
            Some(b) => {
                if b.depth_got < b.depth_len {
                    b.depth_got += n;
                } else {
                    b.got += n;
                }
                if b.depth_got < b.depth_len || b.got < b.len {
                    return Ok(None);
                }
                let Some(b) = self.body.take() else {
                    return Ok(None);
                };
                #[allow(unused_mut)]
                let mut words = b.words;
                #[cfg(not(target_endian = "little"))]
                for w in &mut words {
                    *w = u64::from_le(*w);
                }
                let depth = if b.depth_len == 0 { 0 } else { u64::from_le_bytes(b.depth) };
                Ok(Some(Frame { kind: b.kind, depth, words, len: b.len }))
            }
        }
    }

    /// `(received, expected)` bytes of the frame in progress, if any.
    fn partial(&self) -> Option<(u64, u64)> {
        match &self.body {
            Some(b) => {
                Some(((FRAME_HEADER_LEN + b.depth_got + b.got) as u64, (FRAME_HEADER_LEN + b.depth_len + b.len) as u64))
            }
            None if self.header_got > 0 => Some((self.header_got as u64, FRAME_HEADER_LEN as u64)),
            None => None,
        }
    }
}

enum Flow {
    Continue,
    Stop,
}

struct ReadState {
    asm: Assembler,
    bye: bool,
}

impl ReadState {
    fn handle(&mut self, shared: &LinkShared, inbound: &Sender<Event>, frame: Frame) -> Result<Flow, TransportError> {
        let peer = shared.peer;
        match frame.kind {
            FrameKind::Data => {
                if self.bye {
                    return Err(TransportError::Malformed { peer, detail: "data frame after bye".into() });
                }
                if frame.depth == 0 {
                    // Every sender stamps at least 1: a zero means the stream is out of sync.
                    return Err(TransportError::Malformed { peer, detail: "data frame with depth 0".into() });
                }
                let payload = Payload::Words { len_bytes: frame.len, words: frame.words };
                Ok(match inbound.send(Event::Data { depth: frame.depth, payload }) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                })
            }
            FrameKind::Bye => {
                self.bye = true;
                Ok(match inbound.send(Event::Closed) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                })
            }
            FrameKind::Abort => Err(TransportError::PeerAborted {
                peer,
                reason: printable(&String::from_utf8_lossy(frame.bytes()), 1024),
            }),
            FrameKind::Hello => {
                Err(TransportError::Malformed { peer, detail: "unexpected hello frame after the handshake".into() })
            }
        }
    }

    /// The stream ended: fine after bye at a frame boundary, an error otherwise.
    fn end(&self, peer: PartyId) -> Result<(), TransportError> {
        match self.asm.partial() {
            Some((received, expected)) => Err(TransportError::Truncated { peer, received, expected }),
            None if self.bye => Ok(()),
            None => Err(TransportError::PeerClosed { peer }),
        }
    }
}

/// Decrypt what rustls has, deliver complete frames. Returns `Some(())` when the peer
/// sent close_notify (its stream is over) or the party is gone.
fn drain(
    shared: &LinkShared,
    conn: &mut Connection,
    st: &mut ReadState,
    inbound: &Sender<Event>,
) -> Result<Option<()>, TransportError> {
    conn.process_new_packets().map_err(|e| TransportError::tls(shared.peer, &e))?;
    loop {
        match conn.reader().read(st.asm.dst()) {
            Ok(0) => return Ok(Some(())),
            Ok(n) => {
                if let Some(frame) = st.asm.advance(n, shared.peer)? {
                    if let Flow::Stop = st.handle(shared, inbound, frame)? {
                        return Ok(Some(()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(shared.io_err(&e)),
        }
    }
}

fn read_loop(shared: &LinkShared, inbound: &Sender<Event>) -> Result<(), TransportError> {
    let mut st = ReadState { asm: Assembler::new(shared.max_frame_bytes), bye: false };
    let mut raw = vec![0u8; READ_BUF];
    // The handshake may have left records buffered in rustls.
    if drain(shared, &mut lock(&shared.conn), &mut st, inbound)?.is_some() {
        return st.end(shared.peer);
    }
    loop {
        let n = match (&shared.sock).read(&mut raw) {
            Ok(0) => return st.end(shared.peer),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if shared.aborting() {
                    return Ok(());
                }
                return Err(shared.io_err(&e));
            }
        };
        let mut input = &raw[..n];
        let mut conn = lock(&shared.conn);
        while !input.is_empty() {
            conn.read_tls(&mut input).map_err(|e| shared.io_err(&e))?;
            if drain(shared, &mut conn, &mut st, inbound)?.is_some() {
                drop(conn);
                return st.end(shared.peer);
            }
        }
    }
}

/// Test support: dial `to` as `me`, run TLS, send `hello` (whatever it says) and read the
/// peer's first frame header and payload. No identity or handshake checks on our side.
pub(crate) fn raw_dial(
    cfg: &PartiesConfig,
    me: PartyId,
    identity: &TlsIdentity,
    to: PartyId,
    hello: &Handshake,
) -> Result<(TcpStream, Connection), TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca.clone()).map_err(identity_err)?;
    let roots = Arc::new(roots);
    let mut cc = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(identity_err)?
        .with_root_certificates(Arc::clone(&roots))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(identity_err)?;
    cc.resumption = Resumption::disabled();
    cc.alpn_protocols = vec![alpn(me)];
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider)).build();
    let setup = Setup {
        me,
        cfg: cfg.clone(),
        hello: hello.clone(),
        deadline: Instant::now() + cfg.timeout,
        cancel: AtomicBool::new(false),
        provider,
        identity: identity.clone(),
        client: Some(Arc::new(cc)),
        client_verifier: client_verifier.map_err(identity_err)?,
    };
    let address = cfg.party(to).address.clone();
    let mut sock = TcpStream::connect(&address).map_err(|e| TransportError::Connect {
        peer: to,
        address,
        after: cfg.timeout,
        detail: e.to_string(),
    })?;
    let io_err = |e: io::Error| TransportError::from_io(to, &e, cfg.timeout);
    setup.set_setup_timeouts(&sock).map_err(io_err)?;
    let name = ServerName::try_from(to.dns_name()).map_err(identity_err)?;
    let client = setup.client.clone().ok_or_else(|| identity_err("no client"))?;
    let mut conn = Connection::Client(ClientConnection::new(client, name).map_err(identity_err)?);
    tls_handshake(&mut conn, &mut sock).map_err(io_err)?;
    write_frame_blocking(&mut conn, &mut sock, FrameKind::Hello, &encode_handshake(hello)).map_err(io_err)?;
    Ok((sock, conn))
}

/// Test support: write raw plaintext bytes through the TLS connection.
pub(crate) fn raw_write(conn: &mut Connection, sock: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    blocking_write(conn, sock, bytes)
}

/// Test support: read exactly `buf.len()` plaintext bytes.
pub(crate) fn raw_read(conn: &mut Connection, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    blocking_read_exact(conn, sock, buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn assembler_rejects_huge_claims_without_allocating() {
        let mut a = Assembler::new(1 << 20);
        let h = encode_frame_header(FrameKind::Data, 1 << 40);
        let dst = a.dst();
        dst.copy_from_slice(&h);
        let e = a.advance(12, PartyId::ALL[1]).err().unwrap();
        assert!(matches!(e, TransportError::Malformed { .. }));
    }

    #[test]
    fn assembler_grows_with_data() {
        let mut a = Assembler::new(u64::MAX);
        let h = encode_frame_header(FrameKind::Data, 3 << 30);
        a.dst().copy_from_slice(&h);
        assert!(a.advance(12, PartyId::ALL[1]).unwrap().is_none());
        // The first buffer is small even though 3 GiB are claimed.
        assert!(a.dst().len() <= 512 << 10);
        assert_eq!(a.partial(), Some((12, 12 + (3 << 30))));
    }

    /// Feed `bytes` to the assembler in pieces of at most `step`, collecting frames.
    fn feed(a: &mut Assembler, bytes: &[u8], step: usize) -> Result<Vec<Frame>, TransportError> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let dst = a.dst();
            let n = dst.len().min(rest.len()).min(step);
            dst[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            out.extend(a.advance(n, PartyId::ALL[1])?);
        }
        Ok(out)
    }

    #[test]
    fn assembler_splits_depth_from_message() {
        let mut wire = encode_frame_header(FrameKind::Data, 8 + 11).to_vec();
        wire.extend_from_slice(&7u64.to_le_bytes());
        wire.extend_from_slice(b"hello world");
        wire.extend_from_slice(&encode_frame_header(FrameKind::Data, 8));
        wire.extend_from_slice(&9u64.to_le_bytes());
        wire.extend_from_slice(&encode_frame_header(FrameKind::Bye, 0));
        for step in [1, 3, 8, 1000] {
            let mut a = Assembler::new(11);
            let frames = feed(&mut a, &wire, step).unwrap();
            assert_eq!(frames.len(), 3);
            assert_eq!((frames[0].kind, frames[0].depth, frames[0].bytes()), (FrameKind::Data, 7, &b"hello world"[..]));
            assert_eq!((frames[1].kind, frames[1].depth, frames[1].len), (FrameKind::Data, 9, 0));
            assert_eq!((frames[2].kind, frames[2].depth, frames[2].len), (FrameKind::Bye, 0, 0));
            assert_eq!(a.partial(), None);
        }
        // Partway through the depth word, and partway through the message.
        let mut a = Assembler::new(11);
        feed(&mut a, &wire[..15], 1000).unwrap();
        assert_eq!(a.partial(), Some((15, 31)));
        feed(&mut a, &wire[15..22], 1000).unwrap();
        assert_eq!(a.partial(), Some((22, 31)));
    }

    #[test]
    fn assembler_rejects_data_frame_without_depth() {
        let mut a = Assembler::new(100);
        let e = feed(&mut a, &encode_frame_header(FrameKind::Data, 5), 100).err().unwrap();
        assert!(matches!(&e, TransportError::Malformed { detail, .. } if detail.contains("depth")), "{e:?}");
        let mut a = Assembler::new(100);
        let e = feed(&mut a, &encode_frame_header(FrameKind::Data, 0), 100).err().unwrap();
        assert!(matches!(e, TransportError::Malformed { .. }), "{e:?}");
    }

    #[test]
    fn alpn_names() {
        for p in PartyId::ALL {
            assert_eq!(alpn_party(&alpn(p)), Some(p));
        }
        assert_eq!(alpn_party(b"triad-p7"), None);
        assert_eq!(alpn_party(b"h2"), None);
    }
}
