//! TLS for the clients of `triad serve`: each party's server accepts enrolled clients.
//!
//! A client makes its own key and self-signed certificate ([`generate_client_identity`]),
//! naming `client-<name>` and never a party, and the operators enrol it by the
//! certificate's fingerprint (a `[[client]]` entry in the parties file). A server
//! ([`service_acceptor`]) presents its party certificate and requires a client
//! certificate whose fingerprint is enrolled; a client ([`service_connector`]) accepts
//! server `i` only if its certificate has the fingerprint the client pins for it and
//! names `party<i>`. Both sides speak TLS 1.3 with ALPN protocol `triad-client/1`.

use super::identity::{identity_err, rcgen_err, TlsIdentity};
use super::pinned::{pin_error, signature_checks, PinnedServers};
use crate::config::{valid_client_name, EnrolledClient, PartiesConfig};
use crate::error::TransportError;
use crate::fingerprint::Fingerprint;
use crate::PartyId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, ServerConnection, SignatureScheme};
use std::fmt;
use std::sync::Arc;

/// The ALPN protocol a client and a server of `triad serve` agree on.
const CLIENT_ALPN: &[u8] = b"triad-client/1";

/// A client's certificate and key, PEM encoded (from [`generate_client_identity`]).
///
/// Its `Debug` output leaves the key out.
#[derive(Clone)]
pub struct ClientPem {
    /// The client's name (its certificate names `client-<name>`).
    pub name: String,
    /// The self-signed certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8); never leaves the client's machine.
    pub key_pem: String,
    /// The certificate's SHA-256, which the servers enrol it by.
    pub fingerprint: Fingerprint,
}

impl fmt::Debug for ClientPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPem")
            .field("name", &self.name)
            .field("cert_pem", &self.cert_pem)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Generate a client's own key (ECDSA P-256) and a self-signed certificate whose subject
/// alternative name is `client-<name>` (never a party's name, so it cannot pass as a
/// party), for TLS client authentication. `name` is 1 to 64 characters from
/// `A-Z a-z 0-9 . _ -`, as in a `[[client]]` entry. The servers accept it once its
/// [`ClientPem::fingerprint`] is enrolled.
pub fn generate_client_identity(name: &str) -> Result<ClientPem, TransportError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    if !valid_client_name(name) {
        return Err(identity_err(format!(
            "client name {name:?} is invalid: a name is 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"
        )));
    }
    let dns = format!("client-{name}");
    let mut params = CertificateParams::new(vec![dns.clone()]).map_err(rcgen_err)?;
    params.distinguished_name.push(DnType::CommonName, dns);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().map_err(rcgen_err)?;
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(ClientPem {
        name: name.to_string(),
        fingerprint: Fingerprint::of(cert.der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The server's check of a client: its certificate's fingerprint must be enrolled.
#[derive(Debug)]
struct EnrolledClients {
    pins: Vec<Fingerprint>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for EnrolledClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = Fingerprint::of(end_entity);
        if self.pins.contains(&fp) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(pin_error(format!("certificate {fp} is not enrolled as a client ([[client]] in the parties file)")))
        }
    }
    signature_checks!();
}

/// The TLS server configuration of party `me`'s `triad serve`: TLS 1.3, presenting the
/// certificate chain and key `cfg` names for `me` (loaded as [`TlsIdentity::load`]
/// does, so with pinned trust its fingerprint must be `me`'s pin), and requiring a
/// client certificate whose SHA-256 fingerprint is one of `cfg.clients`. ALPN protocol
/// `triad-client/1`; no session tickets. Errors if no client is enrolled.
pub fn service_acceptor(cfg: &PartiesConfig, me: PartyId) -> Result<Arc<ServerConfig>, TransportError> {
    if cfg.clients.is_empty() {
        return Err(identity_err(
            "no client is enrolled: add [[client]] entries (name and fingerprint) to the parties file",
        ));
    }
    let identity = TlsIdentity::load(cfg, me)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(EnrolledClients {
        pins: cfg.clients.iter().map(|c| c.fingerprint).collect(),
        algs: provider.signature_verification_algorithms,
    });
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(identity_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| identity_err(format!("bad certificate or key for {me}: {e}")))?;
    sc.send_tls13_tickets = 0;
    sc.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    Ok(Arc::new(sc))
}

/// After the handshake on a connection accepted with [`service_acceptor`], the name of
/// the enrolled client whose fingerprint is the peer's certificate's (`None` before the
/// handshake, or if none matches).
pub fn enrolled_client_name(clients: &[EnrolledClient], conn: &ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    let fp = Fingerprint::of(cert);
    clients.iter().find(|c| c.fingerprint == fp).map(|c| c.name.clone())
}

/// The TLS client configuration of a client of `triad serve`: TLS 1.3, presenting the
/// client's certificate and key (PEM text), and accepting server `i` (TLS server name
/// `party<i>`, [`PartyId::dns_name`]) only if its certificate's SHA-256 fingerprint is
/// `servers[i]` and it names `party<i>`. ALPN protocol `triad-client/1`; no resumption.
pub fn service_connector(
    cert_pem: &str,
    key_pem: &str,
    servers: [Fingerprint; 3],
) -> Result<Arc<ClientConfig>, TransportError> {
    let (chain, key) = TlsIdentity::own(cert_pem, key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedServers { pins: servers, algs: provider.signature_verification_algorithms });
    let mut cc = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(identity_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| identity_err(format!("bad certificate or key: {e}")))?;
    cc.resumption = Resumption::disabled();
    cc.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    Ok(Arc::new(cc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::PartyConfig;
    use crate::tls::identity::{cert_parties, certificate_party, generate_party_identity, PartyPem};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, StreamOwned};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    /// A fresh directory under the system's temporary directory.
    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("triad-transport-service-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Three pinned parties, their certificates and keys written to `dir`.
    struct Parties {
        dir: PathBuf,
        pems: [PartyPem; 3],
        pins: [Fingerprint; 3],
    }

    impl Parties {
        fn new() -> Parties {
            let dir = temp_dir();
            let pems = PartyId::ALL.map(|p| generate_party_identity(p, "127.0.0.1").unwrap());
            for (p, pem) in PartyId::ALL.iter().zip(&pems) {
                std::fs::write(dir.join(format!("party{}.pem", p.as_u8())), &pem.cert_pem).unwrap();
                std::fs::write(dir.join(format!("party{}.key", p.as_u8())), &pem.key_pem).unwrap();
            }
            let pins = pems.each_ref().map(|p| certificate_party(&p.cert_pem).unwrap().1);
            Parties { dir, pems, pins }
        }

        fn config(&self, clients: Vec<EnrolledClient>) -> PartiesConfig {
            PartiesConfig {
                session: "service-test".into(),
                timeout: Duration::from_secs(10),
                setup_timeout: None,
                max_frame_bytes: crate::DEFAULT_MAX_FRAME_BYTES,
                max_buffered_bytes: None,
                ca: None,
                parties: PartyId::ALL.map(|id| PartyConfig {
                    id,
                    address: format!("127.0.0.1:{}", 7000 + u16::from(id.as_u8())),
                    cert: self.dir.join(format!("party{}.pem", id.as_u8())),
                    key: self.dir.join(format!("party{}.key", id.as_u8())),
                    fingerprint: Some(self.pins[id.index()]),
                    client_address: Some(format!("127.0.0.1:{}", 7100 + u16::from(id.as_u8()))),
                }),
                clients,
                net: None,
            }
        }
    }

    impl Drop for Parties {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn enrol(c: &ClientPem) -> EnrolledClient {
        EnrolledClient { name: c.name.clone(), fingerprint: c.fingerprint }
    }

    /// One connection from a client (configured by `cc`, dialling `server`) to a server
    /// (configured by `sc`): the client sends "ping", the server answers "pong". Returns
    /// what the server saw (the enrolled name, or its error) and the client's outcome
    /// (the ALPN protocol agreed, or its error).
    fn exchange(
        sc: Arc<ServerConfig>,
        clients: Vec<EnrolledClient>,
        cc: Arc<ClientConfig>,
        server: PartyId,
    ) -> (Result<Option<String>, String>, Result<Vec<u8>, String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let srv = thread::spawn(move || {
            let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut s = StreamOwned::new(ServerConnection::new(sc).map_err(|e| e.to_string())?, sock);
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"ping");
            assert_eq!(s.conn.alpn_protocol(), Some(CLIENT_ALPN));
            let name = enrolled_client_name(&clients, &s.conn);
            s.write_all(b"pong").map_err(|e| e.to_string())?;
            s.flush().map_err(|e| e.to_string())?;
            Ok(name)
        });
        let client = (|| {
            let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let name = ServerName::try_from(server.dns_name()).unwrap();
            let mut s = StreamOwned::new(ClientConnection::new(cc, name).map_err(|e| e.to_string())?, sock);
            s.write_all(b"ping").map_err(|e| e.to_string())?;
            s.flush().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"pong");
            Ok(s.conn.alpn_protocol().unwrap_or_default().to_vec())
        })();
        (srv.join().unwrap(), client)
    }

    #[test]
    fn a_client_identity_names_no_party_and_hides_its_key() {
        let c = generate_client_identity("alice").unwrap();
        let der = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        assert!(cert_parties(&der).is_empty());
        assert!(certificate_party(&c.cert_pem).is_err());
        assert_eq!(Fingerprint::of(&der), c.fingerprint);
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let me = ServerName::try_from("client-alice").unwrap();
        assert!(ee.verify_is_valid_for_subject_name(&me).is_ok());
        let debug = format!("{c:?}");
        assert!(debug.contains("alice") && !debug.contains("PRIVATE KEY"), "{debug}");
        assert_ne!(generate_client_identity("alice").unwrap().fingerprint, c.fingerprint);
        for bad in ["", "a b", "party0\n", "é", &"x".repeat(65)] {
            let e = generate_client_identity(bad).unwrap_err();
            assert!(matches!(&e, TransportError::Identity { detail } if detail.contains("is invalid")), "{e:?}");
        }
        generate_client_identity(&"x".repeat(64)).unwrap();
    }

    #[test]
    fn an_enrolled_client_reaches_the_pinned_server_and_is_named() {
        let parties = Parties::new();
        let alice = generate_client_identity("alice").unwrap();
        let bob = generate_client_identity("bob").unwrap();
        let cfg = parties.config(vec![enrol(&alice), enrol(&bob)]);
        for server in PartyId::ALL {
            let sc = service_acceptor(&cfg, server).unwrap();
            let cc = service_connector(&bob.cert_pem, &bob.key_pem, parties.pins).unwrap();
            let (srv, cli) = exchange(sc, cfg.clients.clone(), cc, server);
            assert_eq!(srv.unwrap().as_deref(), Some("bob"));
            assert_eq!(cli.unwrap(), CLIENT_ALPN);
        }
    }

    #[test]
    fn an_unenrolled_client_is_refused() {
        let parties = Parties::new();
        let alice = generate_client_identity("alice").unwrap();
        let cfg = parties.config(vec![enrol(&alice)]);
        let mallory = generate_client_identity("mallory").unwrap();
        let sc = service_acceptor(&cfg, PartyId::ALL[0]).unwrap();
        let cc = service_connector(&mallory.cert_pem, &mallory.key_pem, parties.pins).unwrap();
        let (srv, cli) = exchange(sc, cfg.clients.clone(), cc, PartyId::ALL[0]);
        let e = srv.unwrap_err();
        assert!(e.contains("is not enrolled as a client"), "{e}");
        assert!(cli.is_err());
    }

    #[test]
    fn a_client_refuses_a_server_it_does_not_pin() {
        let parties = Parties::new();
        let alice = generate_client_identity("alice").unwrap();
        let cfg = parties.config(vec![enrol(&alice)]);
        let p1 = PartyId::ALL[1];
        // A stranger's certificate pinned for party 1.
        let stranger = generate_party_identity(p1, "127.0.0.1").unwrap();
        let mut pins = parties.pins;
        pins[1] = certificate_party(&stranger.cert_pem).unwrap().1;
        let sc = service_acceptor(&cfg, p1).unwrap();
        let cc = service_connector(&alice.cert_pem, &alice.key_pem, pins).unwrap();
        let (srv, cli) = exchange(sc, cfg.clients.clone(), cc, p1);
        let e = cli.unwrap_err();
        assert!(e.contains("is not the one the parties file pins for party 1"), "{e}");
        assert!(srv.is_err());
        // Party 1's real server dialled as party 2: pinned, but for party 1.
        let sc = service_acceptor(&cfg, p1).unwrap();
        let cc = service_connector(&alice.cert_pem, &alice.key_pem, parties.pins).unwrap();
        let (_, cli) = exchange(sc, cfg.clients.clone(), cc, PartyId::ALL[2]);
        assert!(cli.unwrap_err().contains("is not the one the parties file pins for party 2"));
    }

    #[test]
    fn a_party_certificate_is_no_client_unless_enrolled() {
        let parties = Parties::new();
        let alice = generate_client_identity("alice").unwrap();
        let cfg = parties.config(vec![enrol(&alice)]);
        let [p0, p1, _] = PartyId::ALL;
        let party1 = &parties.pems[1];
        let sc = service_acceptor(&cfg, p0).unwrap();
        let cc = service_connector(&party1.cert_pem, &party1.key_pem, parties.pins).unwrap();
        let (srv, cli) = exchange(sc, cfg.clients.clone(), cc, p0);
        assert!(srv.unwrap_err().contains("is not enrolled as a client"));
        assert!(cli.is_err());
        // Enrolled by its fingerprint (a party certificate nobody pins), it is a client.
        let other = generate_party_identity(p1, "").unwrap();
        let fingerprint = certificate_party(&other.cert_pem).unwrap().1;
        let cfg = parties.config(vec![enrol(&alice), EnrolledClient { name: "ops".into(), fingerprint }]);
        let sc = service_acceptor(&cfg, p0).unwrap();
        let cc = service_connector(&other.cert_pem, &other.key_pem, parties.pins).unwrap();
        let (srv, cli) = exchange(sc, cfg.clients.clone(), cc, p0);
        assert_eq!(srv.unwrap().as_deref(), Some("ops"));
        cli.unwrap();
        // Offering a party's ALPN protocol (a party dialling a client port) is refused.
        let mut cc = (*service_connector(&other.cert_pem, &other.key_pem, parties.pins).unwrap()).clone();
        cc.alpn_protocols = vec![b"triad-p1".to_vec()];
        let sc = service_acceptor(&cfg, p0).unwrap();
        let (srv, cli) = exchange(sc, cfg.clients.clone(), Arc::new(cc), p0);
        let e = srv.unwrap_err();
        assert!(e.contains("any known protocol"), "{e}");
        assert!(cli.is_err());
    }

    #[test]
    fn a_server_needs_enrolled_clients_and_its_own_pinned_certificate() {
        let parties = Parties::new();
        let e = service_acceptor(&parties.config(Vec::new()), PartyId::ALL[0]).unwrap_err();
        assert!(matches!(&e, TransportError::Identity { detail } if detail.contains("no client is enrolled")), "{e:?}");
        let alice = generate_client_identity("alice").unwrap();
        let mut cfg = parties.config(vec![enrol(&alice)]);
        // Party 0's files are party 1's: not the certificate pinned for party 0.
        cfg.parties[0].cert = cfg.parties[1].cert.clone();
        cfg.parties[0].key = cfg.parties[1].key.clone();
        let e = service_acceptor(&cfg, PartyId::ALL[0]).unwrap_err();
        assert!(matches!(&e, TransportError::Identity { detail } if detail.contains("pins")), "{e:?}");
        let e = service_connector("no pem", &alice.key_pem, parties.pins).unwrap_err();
        assert!(matches!(e, TransportError::Identity { .. }), "{e:?}");
    }
}
