//! Certificate fingerprints: the SHA-256 of a certificate's DER bytes, which the parties
//! file pins for each party when there is no shared CA.

use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a certificate (its DER encoding).
///
/// Written `sha256:` followed by 32 bytes in hex, upper case, separated by colons: the
/// form `openssl x509 -noout -fingerprint -sha256 -in party0.pem` prints after its
/// `sha256 Fingerprint=`, so an operator can check it with a second tool. Parsing accepts
/// either case, and the colons are optional.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given as DER bytes.
    pub fn of(der: &[u8]) -> Fingerprint {
        // SHA-256 from the TLS provider in use (ring), so no other hash crate is built.
        let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
        let mut out = [0u8; 32];
        if let Some(s) = suite.tls13() {
            let h = s.common.hash_provider.hash(der);
            let h = h.as_ref();
            if h.len() == out.len() {
                out.copy_from_slice(h);
            }
        }
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Fingerprint, String> {
        let s = s.trim();
        let hex = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &s[7..],
            _ => return Err("a fingerprint starts with \"sha256:\"".into()),
        };
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(format!("a SHA-256 fingerprint has 64 hex digits, this one {}", digits.len()));
        }
        let nibble = |b: u8| (b as char).to_digit(16).ok_or_else(|| format!("{:?} is not a hex digit", b as char));
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            *o = (nibble(pair[0])? * 16 + nibble(pair[1])?) as u8;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let f = Fingerprint::of(b"abc");
        assert_eq!(
            f.to_string(),
            "sha256:BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let f = Fingerprint::of(b"triad");
        assert_eq!(f.to_string().parse::<Fingerprint>().unwrap(), f);
        let plain = f.to_string().replace(':', "").replacen("sha256", "SHA256:", 1).to_lowercase();
        assert_eq!(plain.parse::<Fingerprint>().unwrap(), f);
        for bad in ["", "sha1:00", "sha256:00", &format!("sha256:{}", "g".repeat(64)), "AB:CD"] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
