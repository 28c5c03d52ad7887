//! Trust without a CA: each party's certificate is pinned by its SHA-256 fingerprint.
//!
//! A peer is party `p` if and only if the certificate it presents has the fingerprint
//! the parties file pins for `p` **and** names `p` (its subject alternative name
//! `party<p>`, which `triad keygen --party` writes), and it proves it holds the key (the
//! TLS signature, checked with the provider's algorithms). Chains, issuers and validity
//! dates play no part: the pin is the identity, agreed by the operators out of band.

use super::identity::cert_parties;
use crate::fingerprint::Fingerprint;
use crate::PartyId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};
use std::sync::Arc;

#[derive(Debug)]
struct PinError(String);

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinError {}

pub(super) fn pin_error(detail: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinError(detail)))))
}

/// The handshake signature checks the verifiers here and in `service` share: the
/// provider's algorithms (`self.algs`), against the key in the certificate that passed
/// the pin (or enrolment) check.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algs)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}
pub(super) use signature_checks;

/// Check that `cert` is pinned for one of `allowed` and names it; returns the party.
pub(super) fn check_pin(
    pins: &[Fingerprint; 3],
    allowed: &[PartyId],
    cert: &CertificateDer<'_>,
) -> Result<PartyId, rustls::Error> {
    let fp = Fingerprint::of(cert);
    let Some(p) = allowed.iter().copied().find(|p| pins[p.index()] == fp) else {
        let whom: Vec<String> = allowed.iter().map(|p| p.to_string()).collect();
        return Err(pin_error(format!(
            "certificate {fp} is not the one the parties file pins for {}",
            whom.join(" or ")
        )));
    };
    if cert_parties(cert) != [p] {
        return Err(pin_error(format!("certificate {fp} is pinned for {p} but does not name {}", p.dns_name())));
    }
    Ok(p)
}

/// The acceptor's check of a connecting party.
#[derive(Debug)]
pub(super) struct PinnedClients {
    pub(super) pins: [Fingerprint; 3],
    /// The parties that may connect (those above this one).
    pub(super) allowed: Vec<PartyId>,
    pub(super) algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_pin(&self.pins, &self.allowed, end_entity).map(|_| ClientCertVerified::assertion())
    }
    signature_checks!();
}

/// The dialler's check of the party it dialled (named by the TLS server name `party<i>`).
#[derive(Debug)]
pub(super) struct PinnedServers {
    pub(super) pins: [Fingerprint; 3],
    pub(super) algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = server_name.to_str();
        let Some(peer) = PartyId::ALL.into_iter().find(|p| p.dns_name() == name) else {
            return Err(pin_error(format!("{name} is not a party name")));
        };
        check_pin(&self.pins, &[peer], end_entity).map(|_| ServerCertVerified::assertion())
    }
    signature_checks!();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tls::identity::generate_party_identity;
    use rustls::pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn a_pinned_certificate_naming_its_party_passes_and_others_do_not() {
        let [c0, c1, c2] = PartyId::ALL.map(|p| der(&generate_party_identity(p, "127.0.0.1").unwrap().cert_pem));
        let pins = [Fingerprint::of(&c0), Fingerprint::of(&c1), Fingerprint::of(&c2)];
        let [_, p1, p2] = PartyId::ALL;
        assert_eq!(check_pin(&pins, &[p1, p2], &c1).unwrap(), p1);
        assert_eq!(check_pin(&pins, &[p1, p2], &c2).unwrap(), p2);
        // Pinned, but not for a party allowed here.
        let e = check_pin(&pins, &[p1, p2], &c0).unwrap_err().to_string();
        assert!(e.contains("is not the one the parties file pins for party 1 or party 2"), "{e}");
        // A stranger's certificate, naming party 1.
        let stranger = der(&generate_party_identity(p1, "127.0.0.1").unwrap().cert_pem);
        assert!(check_pin(&pins, &[p1], &stranger).unwrap_err().to_string().contains("is not the one"));
        // Party 0's certificate pinned in party 1's place: pinned, but it names party 0.
        let swapped = [pins[0], pins[0], pins[2]];
        let e = check_pin(&swapped, &[p1], &c0).unwrap_err().to_string();
        assert!(e.contains("is pinned for party 1 but does not name party1"), "{e}");
    }
}
