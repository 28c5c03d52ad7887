//! TLS identities: certificates, keys, and who a certificate says its holder is.

use super::pinned::{PinnedClients, PinnedServers};
use crate::channels::lock;
use crate::config::PartiesConfig;
use crate::error::TransportError;
use crate::fingerprint::Fingerprint;
use crate::PartyId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::fmt;
use std::sync::{Arc, Mutex};

pub(super) fn identity_err(detail: impl fmt::Display) -> TransportError {
    TransportError::Identity { detail: detail.to_string() }
}

/// What a party trusts its peers' certificates by.
#[derive(Clone, Debug)]
pub(super) enum Trust {
    /// Signed by this CA (and naming the party).
    Ca(CertificateDer<'static>),
    /// With these fingerprints, parties 0, 1, 2 (and naming the party).
    Pinned([Fingerprint; 3]),
}

/// A party's TLS identity: its own certificate chain and key, and what it trusts its
/// peers by (a shared CA, or each party's pinned certificate fingerprint).
pub struct TlsIdentity {
    pub(super) trust: Trust,
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity { trust: self.trust.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
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
        let (chain, key) = Self::own(cert_pem, key_pem)?;
        Ok(TlsIdentity { trust: Trust::Ca(ca), chain, key })
    }

    /// Build an identity that trusts no CA but the certificates `pins` names (parties 0,
    /// 1, 2), from this party's certificate and key as PEM text. `me`'s own certificate
    /// must be the one pinned for it.
    pub fn pinned(me: PartyId, cert_pem: &str, key_pem: &str, pins: [Fingerprint; 3]) -> Result<Self, TransportError> {
        let (chain, key) = Self::own(cert_pem, key_pem)?;
        let id = TlsIdentity { trust: Trust::Pinned(pins), chain, key };
        let mine = id.fingerprint();
        if mine != pins[me.index()] {
            return Err(identity_err(format!(
                "this party's certificate has fingerprint {mine}, but the parties file pins {} for {me}",
                pins[me.index()]
            )));
        }
        Ok(id)
    }

    /// The fingerprint of this party's own certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.chain.first().map(|c| Fingerprint::of(c)).unwrap_or(Fingerprint([0; 32]))
    }

    /// This party's certificate chain and key from PEM text.
    #[allow(clippy::type_complexity)]
    pub(super) fn own(
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TransportError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| identity_err(format!("bad certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(identity_err("no certificate in the certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| identity_err(format!("bad private key PEM: {e}")))?;
        Ok((chain, key))
    }

    /// Load party `me`'s identity from the files `cfg` names.
    pub fn load(cfg: &PartiesConfig, me: PartyId) -> Result<Self, TransportError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| identity_err(format!("cannot read {}: {e}", p.display())))
        };
        let party = cfg.party(me);
        let (cert, key) = (read(&party.cert)?, read(&party.key)?);
        match (&cfg.ca, cfg.parties.each_ref().map(|p| p.fingerprint)) {
            (Some(ca), _) => TlsIdentity::from_pem(&read(ca)?, &cert, &key),
            (None, [Some(a), Some(b), Some(c)]) => TlsIdentity::pinned(me, &cert, &key, [a, b, c]),
            (None, _) => Err(identity_err("the parties file gives neither a CA nor three fingerprints")),
        }
    }

    /// How this party checks the parties that connect to it (those above `me`).
    pub(super) fn client_verifier(
        &self,
        provider: &Arc<CryptoProvider>,
        me: PartyId,
    ) -> Result<Arc<dyn ClientCertVerifier>, TransportError> {
        match &self.trust {
            Trust::Ca(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.clone()).map_err(|e| identity_err(format!("bad CA certificate: {e}")))?;
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| identity_err(format!("bad CA certificate: {e}")))
            }
            Trust::Pinned(pins) => Ok(Arc::new(PinnedClients {
                pins: *pins,
                allowed: PartyId::ALL.into_iter().filter(|&p| p > me).collect(),
                algs: provider.signature_verification_algorithms,
            })),
        }
    }

    /// A client configuration (TLS 1.3, no resumption) that checks the server as this
    /// identity trusts, presenting `client`'s certificate (or none) and offering ALPN as
    /// `alpn_as`.
    pub(super) fn client_config(
        &self,
        provider: &Arc<CryptoProvider>,
        client: Option<&TlsIdentity>,
        alpn_as: Option<PartyId>,
    ) -> Result<Arc<ClientConfig>, TransportError> {
        let builder = ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(identity_err)?;
        let builder = match &self.trust {
            Trust::Ca(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.clone()).map_err(|e| identity_err(format!("bad CA certificate: {e}")))?;
                builder.with_root_certificates(roots)
            }
            Trust::Pinned(pins) => builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedServers {
                pins: *pins,
                algs: provider.signature_verification_algorithms,
            })),
        };
        let mut cc = match client {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| identity_err(format!("bad certificate or key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        cc.resumption = Resumption::disabled();
        cc.alpn_protocols = alpn_as.into_iter().map(alpn).collect();
        Ok(Arc::new(cc))
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

pub(super) fn rcgen_err(e: rcgen::Error) -> TransportError {
    identity_err(format!("certificate generation failed: {e}"))
}

/// The certificate of party `p`: subject alternative names `party<p>` (the identity the
/// handshake checks) and, if not empty, `host`; for TLS server and client authentication.
fn party_params(p: PartyId, host: &str) -> Result<rcgen::CertificateParams, TransportError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};
    let name = p.dns_name();
    let mut sans = vec![name.clone()];
    if !host.is_empty() && host != name {
        sans.push(host.to_string());
    }
    let mut params = CertificateParams::new(sans).map_err(rcgen_err)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// Generate party `party`'s own key (ECDSA P-256) and a self-signed certificate naming
/// `party<i>` and `host` (a host name or IP address, no port; may be empty). For trust by
/// fingerprint ([`TlsIdentity::pinned`]): no CA is involved, so no one but the holder of
/// this key can pose as this party. Used by `triad keygen --party`.
pub fn generate_party_identity(party: PartyId, host: &str) -> Result<PartyPem, TransportError> {
    let key = rcgen::KeyPair::generate().map_err(rcgen_err)?;
    let cert = party_params(party, host)?.self_signed(&key).map_err(rcgen_err)?;
    Ok(PartyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The party a certificate (PEM; the first one in the text) names, and its fingerprint.
/// Errors unless it names exactly one of `party0`, `party1`, `party2`.
pub fn certificate_party(cert_pem: &str) -> Result<(PartyId, Fingerprint), TransportError> {
    let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .ok_or_else(|| identity_err("no certificate in the PEM text"))?
        .map_err(|e| identity_err(format!("bad certificate PEM: {e}")))?;
    match cert_parties(&der)[..] {
        [p] => Ok((p, Fingerprint::of(&der))),
        [] => Err(identity_err("the certificate names no party (party0, party1 or party2)")),
        _ => Err(identity_err("the certificate names more than one party")),
    }
}

/// Generate a fresh CA and a certificate for each party (ECDSA P-256).
///
/// Party `i`'s certificate names `party{i}` (the identity the handshake checks) and, if
/// not empty, `hosts[i]` (a host name or IP address, no port) as subject alternative
/// names, and is valid for both TLS server and client authentication. The CA key is
/// discarded. Used by tests and by `triad keygen`.
pub fn generate_test_pki(hosts: [&str; 3]) -> Result<Pki, TransportError> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().map_err(rcgen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
    // A name unique to this CA, so a certificate from another triad CA reads as "unknown
    // issuer" rather than as a bad signature.
    let tag: String = ca_key.public_key_raw().iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
    ca_params.distinguished_name.push(DnType::CommonName, format!("triad CA {tag}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(rcgen_err)?;
    let mut parties = Vec::with_capacity(3);
    for (&p, host) in PartyId::ALL.iter().zip(hosts) {
        let key = KeyPair::generate().map_err(rcgen_err)?;
        let cert = party_params(p, host)?.signed_by(&key, &ca).map_err(rcgen_err)?;
        parties.push(PartyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() });
    }
    let [a, b, c]: [PartyPem; 3] =
        parties.try_into().map_err(|_| identity_err("internal: expected three certificates"))?;
    Ok(Pki { ca_cert_pem: ca.pem(), parties: [a, b, c] })
}

/// The parties (`party0`..`party2`) a certificate names, without checking its chain.
pub(super) fn cert_parties(der: &CertificateDer<'_>) -> Vec<PartyId> {
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

pub(super) fn alpn(p: PartyId) -> Vec<u8> {
    format!("triad-p{}", p.as_u8()).into_bytes()
}

pub(super) fn alpn_party(proto: &[u8]) -> Option<PartyId> {
    match proto {
        [b't', b'r', b'i', b'a', b'd', b'-', b'p', d] => PartyId::new(d.wrapping_sub(b'0')),
        _ => None,
    }
}

/// A client-certificate verifier that records which party a client claims to be (from
/// its certificate's names, before the chain is checked), so that a rejected client can
/// be named in the error.
#[derive(Debug)]
pub(super) struct ClaimVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) claim: Arc<Mutex<Option<PartyId>>>,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    pub(super) fn alpn_names() {
        for p in PartyId::ALL {
            assert_eq!(alpn_party(&alpn(p)), Some(p));
        }
        assert_eq!(alpn_party(b"triad-p7"), None);
        assert_eq!(alpn_party(b"h2"), None);
    }
}
