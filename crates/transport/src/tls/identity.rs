//! TLS identities: certificates, keys, and who a certificate says its holder is.

use crate::channels::lock;
use crate::config::PartiesConfig;
use crate::error::TransportError;
use crate::PartyId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::fmt;
use std::sync::{Arc, Mutex};

pub(super) fn identity_err(detail: impl fmt::Display) -> TransportError {
    TransportError::Identity { detail: detail.to_string() }
}

/// A party's TLS identity: the CA certificate, its own certificate chain and key.
pub struct TlsIdentity {
    pub(super) ca: CertificateDer<'static>,
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
