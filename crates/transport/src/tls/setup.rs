//! Setup: dial the lower parties, accept the higher ones, and build the links.

use super::{accept::accept_loop, handshake::*, identity::*, link::*};
use crate::channels::{Channels, Core, Link};
use crate::config::{validate_session, PartiesConfig};
use crate::error::TransportError;
use crate::wire::{encode_handshake, FrameKind, Handshake};
use crate::PartyId;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig};
use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Everything the setup threads share.
pub(super) struct Setup {
    pub(super) me: PartyId,
    pub(super) cfg: PartiesConfig,
    pub(super) hello: Handshake,
    pub(super) deadline: Instant,
    pub(super) cancel: AtomicBool,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) identity: TlsIdentity,
    pub(super) client: Option<Arc<ClientConfig>>,
    pub(super) client_verifier: Arc<dyn ClientCertVerifier>,
}

impl Setup {
    pub(super) fn timeout(&self) -> Duration {
        self.cfg.setup_timeout()
    }

    pub(super) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub(super) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    pub(super) fn server_config(
        &self,
        claim: Arc<Mutex<Option<PartyId>>>,
    ) -> Result<Arc<ServerConfig>, TransportError> {
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
}

/// What a dial or accept thread reports: the party and its connection or error.
pub(super) type SetupResult = (PartyId, Result<Established, TransportError>);

/// Dial `peer` (retrying until the deadline), then TLS and handshake.
pub(super) fn connect_one(setup: &Setup, peer: PartyId) -> Result<Established, TransportError> {
    let address = setup.cfg.party(peer).address.clone();
    let mut last = String::from("no attempt made");
    let mut attempted = false;
    let sock = 'dial: loop {
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
    let limit = Limit { at: setup.deadline, after: setup.timeout() };
    let io_err = |e: io::Error| TransportError::from_io(peer, &e, limit.after);
    sock.set_nodelay(true).map_err(io_err)?;
    let client = setup.client.clone().ok_or_else(|| identity_err("no client config"))?;
    let name = ServerName::try_from(peer.dns_name()).map_err(identity_err)?;
    let mut conn = Connection::Client(ClientConnection::new(client, name).map_err(|e| TransportError::tls(peer, &e))?);
    tls_handshake(&mut conn, &mut limit.on(&sock)).map_err(io_err)?;
    check_cert_identity(&conn, &[peer], peer)?;
    finish_connection(setup, conn, sock, peer, limit)
}

/// Connect party `me` to the other two over TCP with mutual TLS, as `cfg` describes,
/// binding `me`'s configured address if it must accept connections (parties 0 and 1).
///
/// The whole setup must finish within `cfg.setup_timeout()`. Errors name the peer at fault.
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
    let deadline = Instant::now() + cfg.setup_timeout();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let lower: Vec<PartyId> = PartyId::ALL.into_iter().filter(|&p| p < me).collect();
    let accepts = PartyId::ALL.into_iter().any(|p| p > me);
    let client =
        if lower.is_empty() { None } else { Some(identity.client_config(&provider, Some(&identity), Some(me))?) };
    let client_verifier = identity.client_verifier(&provider, me)?;
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
                let e = TransportError::Timeout { peer: missing, after: cfg.setup_timeout() };
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

pub(super) fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), TransportError> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(drop)
        .map_err(|e| identity_err(format!("cannot start a thread: {e}")))
}

pub(super) fn build_channels(
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

/// Test support: dial `to` as `me`, run TLS and send `hello` (whatever it says). No
/// identity or handshake checks on our side.
pub(crate) fn raw_dial(
    cfg: &PartiesConfig,
    me: PartyId,
    identity: &TlsIdentity,
    to: PartyId,
    hello: &Handshake,
) -> Result<(TcpStream, Connection), TransportError> {
    let address = &cfg.party(to).address;
    let (mut sock, mut conn) = raw_tls(address, to, identity, Some(identity), Some(me), cfg.timeout)?;
    write_frame_blocking(&mut conn, &mut sock, FrameKind::Hello, &encode_handshake(hello))
        .map_err(|e| TransportError::from_io(to, &e, cfg.timeout))?;
    Ok((sock, conn))
}

/// Test support: connect to `address` and run TLS with party `to`, trusting what
/// `trust` trusts, presenting `client`'s certificate (or none) and offering ALPN as
/// `alpn_as`; every wait is bounded by `timeout`.
pub(crate) fn raw_tls(
    address: &str,
    to: PartyId,
    trust: &TlsIdentity,
    client: Option<&TlsIdentity>,
    alpn_as: Option<PartyId>,
    timeout: Duration,
) -> Result<(TcpStream, Connection), TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cc = trust.client_config(&provider, client, alpn_as)?;
    let sock = TcpStream::connect(address).map_err(|e| TransportError::Connect {
        peer: to,
        address: address.to_string(),
        after: timeout,
        detail: e.to_string(),
    })?;
    let limit = Limit { at: Instant::now() + timeout, after: timeout };
    let name = ServerName::try_from(to.dns_name()).map_err(identity_err)?;
    let mut conn = Connection::Client(ClientConnection::new(cc, name).map_err(identity_err)?);
    tls_handshake(&mut conn, &mut limit.on(&sock)).map_err(|e| TransportError::from_io(to, &e, timeout))?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(|e| TransportError::from_io(to, &e, timeout))?;
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
