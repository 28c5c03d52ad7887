//! The parties file parser: accepted files and every typed error.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;
use triad_transport::{ConfigError, PartiesConfig, PartyId, TlsIdentity, TransportError};

const GOOD: &str = r#"
session = "demo-2026"     # session id, checked in the handshake
timeout_ms = 30000
ca = "pki/ca.pem"
[[party]]
id = 0
address = "127.0.0.1:7000"
cert = "pki/party0.pem"
key = "pki/party0.key"
[[party]]
id = 2
address = "[::1]:7002"
cert = "/abs/party2.pem"
key = "pki/party2.key"
[[party]]
id = 1
address = "host-b.example:7001"
cert = "pki/party1.pem"
key = "pki/party1.key"
"#;

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

fn err(text: &str) -> ConfigError {
    PartiesConfig::parse(text).unwrap_err()
}

#[test]
fn parses_the_example() {
    let c = PartiesConfig::parse(GOOD).unwrap();
    assert_eq!(c.session, "demo-2026");
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert_eq!(c.max_frame_bytes, 4 << 30);
    assert_eq!(c.ca, Some(PathBuf::from("pki/ca.pem")));
    let p1 = c.party(PartyId::new(1).unwrap());
    assert_eq!(p1.address, "host-b.example:7001");
    assert_eq!(p1.cert, PathBuf::from("pki/party1.pem"));
    assert_eq!(c.parties[2].address, "[::1]:7002");
    // Written back, it reads the same.
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
    let l = c.link_config();
    assert_eq!((l.timeout, l.session.as_str()), (c.timeout, "demo-2026"));
}

#[test]
fn optional_fields_default() {
    let c = PartiesConfig::parse(&with("timeout_ms = 30000\n", "max_frame_bytes = 1024\n")).unwrap();
    assert_eq!(c.timeout, Duration::from_millis(triad_transport::DEFAULT_TIMEOUT_MS));
    assert_eq!(c.max_frame_bytes, 1024);
}

#[test]
fn missing_party() {
    let text = GOOD.split("[[party]]").take(3).collect::<Vec<_>>().join("[[party]]");
    assert_eq!(err(&text), ConfigError::MissingParty(1));
}

#[test]
fn duplicate_party() {
    assert_eq!(err(&with("id = 2", "id = 0")), ConfigError::DuplicateParty(0));
}

#[test]
fn party_id_out_of_range() {
    assert_eq!(err(&with("id = 2", "id = 3")), ConfigError::BadPartyId(3));
    assert_eq!(err(&with("id = 2", "id = -1")), ConfigError::BadPartyId(-1));
}

#[test]
fn bad_addresses() {
    for bad in [
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:99999",
        "127.0.0.1:0",
        ":7000",
        "::1:7000",
        "[::1:7000",
        "[nonsense]:7000",
        "a b:7000",
    ] {
        let e = err(&with("127.0.0.1:7000", bad));
        match &e {
            ConfigError::BadAddress { party, address, .. } => {
                assert_eq!((*party, address.as_str()), (0, bad));
            }
            other => panic!("{bad}: {other:?}"),
        }
        // One line, names the party and the address.
        let msg = e.to_string();
        assert!(!msg.contains('\n') && msg.contains("party 0") && msg.contains(bad), "{msg}");
    }
}

#[test]
fn session_rules() {
    assert_eq!(err(&with("\"demo-2026\"", "\"\"")), ConfigError::EmptySession);
    let long = format!("\"{}\"", "x".repeat(300));
    assert!(matches!(err(&with("\"demo-2026\"", &long)), ConfigError::SessionTooLong { len: 300, max: 256 }));
    assert_eq!(err(&with("\"demo-2026\"", "\"a\\tb\"")), ConfigError::SessionControlChar);
}

#[test]
fn zero_values_and_empty_paths() {
    assert_eq!(err(&with("timeout_ms = 30000", "timeout_ms = 0")), ConfigError::ZeroTimeout);
    assert_eq!(err(&with("timeout_ms = 30000", "max_frame_bytes = 0")), ConfigError::ZeroMaxFrame);
    assert_eq!(err(&with("\"pki/ca.pem\"", "\"\"")), ConfigError::EmptyPath { party: None, field: "ca" });
    assert_eq!(err(&with("\"pki/party1.key\"", "\"\"")), ConfigError::EmptyPath { party: Some(1), field: "key" });
}

#[test]
fn syntax_and_schema_errors_have_locations() {
    let e = err("session = \"x\"\nca = \n");
    match &e {
        ConfigError::Syntax { line, .. } => assert_eq!(*line, Some(2)),
        other => panic!("{other:?}"),
    }
    let e = err(&with("timeout_ms = 30000", "timeout_ms = \"soon\""));
    assert!(matches!(e, ConfigError::Syntax { line: Some(3), .. }), "{e:?}");
    let e = err(&with("ca = ", "certificate_authority = "));
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().contains("certificate_authority"), "{e}");
    let e = err(&with("cert = \"pki/party0.pem\"\n", ""));
    assert!(e.to_string().contains("cert"), "{e}");
    for e in [err("session = "), err("[[party]]\nid = 0\n"), err("\u{0}")] {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn load_resolves_relative_paths_and_reads_pem_files() {
    let dir = std::env::temp_dir().join(format!("triad-transport-config-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let pki = triad_transport::generate_test_pki(["127.0.0.1", "127.0.0.1", "127.0.0.1"]).unwrap();
    std::fs::write(dir.join("pki/ca.pem"), &pki.ca_cert_pem).unwrap();
    std::fs::write(dir.join("pki/party0.pem"), &pki.parties[0].cert_pem).unwrap();
    std::fs::write(dir.join("pki/party0.key"), &pki.parties[0].key_pem).unwrap();
    std::fs::write(dir.join("parties.toml"), GOOD).unwrap();
    let c = PartiesConfig::load(dir.join("parties.toml")).unwrap();
    assert_eq!(c.ca, Some(dir.join("pki/ca.pem")));
    assert_eq!(c.parties[0].key, dir.join("pki/party0.key"));
    assert_eq!(c.parties[2].cert, PathBuf::from("/abs/party2.pem"));
    TlsIdentity::load(&c, PartyId::ALL[0]).unwrap();
    let e = TlsIdentity::load(&c, PartyId::ALL[1]).unwrap_err();
    assert!(matches!(&e, TransportError::Identity { detail } if detail.contains("party1.pem")), "{e:?}");
    let e = PartiesConfig::load(dir.join("missing.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_pem_is_an_identity_error() {
    let pki = triad_transport::generate_test_pki(["", "", ""]).unwrap();
    let p = &pki.parties[0];
    for (ca, cert, key) in [
        ("", p.cert_pem.as_str(), p.key_pem.as_str()),
        (pki.ca_cert_pem.as_str(), "", p.key_pem.as_str()),
        (pki.ca_cert_pem.as_str(), p.cert_pem.as_str(), "garbage"),
    ] {
        let e = TlsIdentity::from_pem(ca, cert, key).unwrap_err();
        assert!(matches!(e, TransportError::Identity { .. }), "{e:?}");
    }
}

/// GOOD with the CA replaced by a fingerprint for every party.
fn pinned(fps: [&str; 3]) -> String {
    let mut text = GOOD.replacen("ca = \"pki/ca.pem\"\n", "", 1);
    for (i, fp) in fps.iter().enumerate() {
        let key = format!("key = \"pki/party{i}.key\"\n");
        text = text.replacen(&key, &format!("{key}fingerprint = \"{fp}\"\n"), 1);
    }
    text
}

const FP: &str =
    "sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";

#[test]
fn trust_is_a_ca_or_three_fingerprints() {
    let c = PartiesConfig::parse(&pinned([FP, FP, FP])).unwrap();
    assert_eq!(c.ca, None);
    assert_eq!(c.parties[1].fingerprint.unwrap().to_string(), FP.to_uppercase().replacen("SHA256", "sha256", 1));
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
    // No trust at all, part of the pins, both kinds, a pin that does not parse.
    assert_eq!(err(&with("ca = \"pki/ca.pem\"\n", "")), ConfigError::NoTrust { missing: None });
    let two = pinned([FP, FP, FP]).replacen(
        &format!("key = \"pki/party2.key\"\nfingerprint = \"{FP}\"\n"),
        "key = \"pki/party2.key\"\n",
        1,
    );
    assert_eq!(err(&two), ConfigError::NoTrust { missing: Some(2) });
    assert_eq!(err(&format!("ca = \"ca.pem\"\n{}", pinned([FP, FP, FP]))), ConfigError::MixedTrust);
    let e = err(&pinned([FP, "sha256:12", FP]));
    assert!(matches!(&e, ConfigError::BadFingerprint { party: 1, .. }), "{e:?}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn pinned_identity_checks_its_own_pin() {
    let [a, b, c] = PartyId::ALL.map(|p| triad_transport::generate_party_identity(p, "127.0.0.1").unwrap());
    let fp = |pem: &str| triad_transport::certificate_party(pem).unwrap().1;
    let pins = [fp(&a.cert_pem), fp(&b.cert_pem), fp(&c.cert_pem)];
    assert_eq!(triad_transport::certificate_party(&b.cert_pem).unwrap().0, PartyId::ALL[1]);
    let id = TlsIdentity::pinned(PartyId::ALL[1], &b.cert_pem, &b.key_pem, pins).unwrap();
    assert_eq!(id.fingerprint(), pins[1]);
    // Party 1 holding party 2's certificate is refused before any connection.
    let e = TlsIdentity::pinned(PartyId::ALL[1], &c.cert_pem, &c.key_pem, pins).unwrap_err();
    assert!(matches!(&e, TransportError::Identity { detail } if detail.contains("pins")), "{e:?}");
    assert!(triad_transport::certificate_party("no pem here").is_err());
}

#[test]
fn setup_timeout_defaults_to_the_idle_timeout() {
    let c = PartiesConfig::parse(GOOD).unwrap();
    assert_eq!((c.setup_timeout, c.setup_timeout()), (None, c.timeout));
    let c =
        PartiesConfig::parse(&with("timeout_ms = 30000\n", "timeout_ms = 30000\nsetup_timeout_ms = 120000\n")).unwrap();
    assert_eq!((c.timeout, c.setup_timeout()), (Duration::from_secs(30), Duration::from_secs(120)));
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
    assert_eq!(err(&with("timeout_ms = 30000\n", "setup_timeout_ms = 0\n")), ConfigError::ZeroSetupTimeout);
}

#[test]
fn inbound_budget_defaults_to_two_frames_and_holds_one() {
    let c = PartiesConfig::parse(&with("timeout_ms = 30000\n", "max_frame_bytes = 1000\n")).unwrap();
    assert_eq!(c.link_config().max_buffered_bytes, 2000);
    let text = with("timeout_ms = 30000\n", "max_frame_bytes = 1000\nmax_buffered_bytes = 999\n");
    assert_eq!(err(&text), ConfigError::BufferBelowFrame { buffered: 999, frame: 1000 });
    let c = PartiesConfig::parse(&text.replace("999", "1000")).unwrap();
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
}

/// A client fingerprint unlike FP.
fn client_fp(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

#[test]
fn clients_and_client_addresses_parse_and_round_trip() {
    // Files without them parse as before.
    let c = PartiesConfig::parse(GOOD).unwrap();
    assert!(c.clients.is_empty() && c.parties.iter().all(|p| p.client_address.is_none()));
    assert!(!c.to_toml().contains("client"), "{}", c.to_toml());
    let text = format!(
        "{}\n[[client]]\nname = \"alice\"\nfingerprint = \"{}\"\n[[client]]\nname = \"B.o_b-2\"\nfingerprint = \"{}\"\n",
        with("address = \"[::1]:7002\"\n", "address = \"[::1]:7002\"\nclient_address = \"[::1]:7102\"\n"),
        client_fp(1),
        client_fp(2).to_uppercase().replacen("SHA256", "sha256", 1),
    );
    let c = PartiesConfig::parse(&text).unwrap();
    assert_eq!(c.parties[2].client_address.as_deref(), Some("[::1]:7102"));
    assert_eq!(c.parties[0].client_address, None);
    let names: Vec<&str> = c.clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alice", "B.o_b-2"]);
    assert_eq!(c.clients[0].fingerprint, client_fp(1).parse().unwrap());
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
    // Pinned parties and clients together round trip too.
    let text = format!(
        "{}[[client]]\nname = \"alice\"\nfingerprint = \"{}\"\n",
        pinned([FP, &client_fp(7), &client_fp(8)]),
        client_fp(1)
    );
    let c = PartiesConfig::parse(&text).unwrap();
    assert_eq!(c.clients.len(), 1);
    assert_eq!(PartiesConfig::parse(&c.to_toml()).unwrap(), c);
    // Unknown keys in a [[client]] entry are refused.
    let e = err(&format!("{GOOD}[[client]]\nname = \"a\"\nfingerprint = \"{}\"\ncert = \"a.pem\"\n", client_fp(1)));
    assert!(matches!(&e, ConfigError::Syntax { .. }) && e.to_string().contains("cert"), "{e}");
    let e = err(&format!("{GOOD}[[client]]\nname = \"a\"\n"));
    assert!(matches!(&e, ConfigError::Syntax { .. }) && e.to_string().contains("fingerprint"), "{e}");
}

#[test]
fn bad_client_addresses_name_the_party() {
    for bad in ["127.0.0.1", "127.0.0.1:0", "::1:7100", "a b:7100"] {
        let e = err(&with(
            "address = \"127.0.0.1:7000\"\n",
            &format!("address = \"127.0.0.1:7000\"\nclient_address = \"{bad}\"\n"),
        ));
        match &e {
            ConfigError::BadClientAddress { party, address, .. } => assert_eq!((*party, address.as_str()), (0, bad)),
            other => panic!("{bad}: {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            !msg.contains('\n') && msg.contains("party 0") && msg.contains("client_address") && msg.contains(bad),
            "{msg}"
        );
    }
}

/// GOOD with these `[[client]]` entries (name, fingerprint).
fn with_clients(clients: &[(&str, &str)]) -> String {
    clients.iter().fold(GOOD.to_string(), |text, (name, fp)| {
        format!("{text}[[client]]\nname = {name:?}\nfingerprint = \"{fp}\"\n")
    })
}

#[test]
fn client_entries_are_checked() {
    let (a, b) = (client_fp(1), client_fp(2));
    let one_line = |e: &ConfigError| assert!(!e.to_string().contains('\n'), "{e}");
    // Names: 1 to 64 of A-Z a-z 0-9 . _ -
    for bad in ["", "a b", "al/ice", "é", "tab\there", &"x".repeat(65)] {
        let e = err(&with_clients(&[(bad, &a)]));
        assert_eq!(e, ConfigError::BadClientName { name: bad.to_string() });
        assert!(e.to_string().contains("is invalid: a name is 1 to 64 characters"), "{e}");
        one_line(&e);
    }
    PartiesConfig::parse(&with_clients(&[(&"x".repeat(64), &a)])).unwrap();
    // A fingerprint that does not parse.
    let e = err(&with_clients(&[("alice", "sha256:12")]));
    assert!(matches!(&e, ConfigError::BadClientFingerprint { name, .. } if name == "alice"), "{e:?}");
    assert!(e.to_string().starts_with("client \"alice\": bad fingerprint: "), "{e}");
    one_line(&e);
    // The same name twice.
    let e = err(&with_clients(&[("alice", &a), ("alice", &b)]));
    assert_eq!(e, ConfigError::DuplicateClient("alice".into()));
    assert_eq!(e.to_string(), "client \"alice\" is enrolled more than once");
    // The same fingerprint twice (written differently).
    let e = err(&with_clients(&[("alice", &a), ("bob", &a.to_uppercase().replacen("SHA256", "sha256", 1))]));
    assert_eq!(
        e,
        ConfigError::DuplicateClientFingerprint {
            first: "alice".into(),
            second: "bob".into(),
            fingerprint: a.parse().unwrap()
        }
    );
    assert!(e.to_string().contains("clients \"alice\" and \"bob\" have the same fingerprint sha256:01:01"), "{e}");
    one_line(&e);
    // A party's pinned fingerprint.
    let text =
        format!("{}[[client]]\nname = \"alice\"\nfingerprint = \"{}\"\n", pinned([&a, FP, &b]), FP.to_lowercase());
    let e = err(&text);
    assert_eq!(e, ConfigError::ClientIsParty { name: "alice".into(), party: 1 });
    assert!(e.to_string().contains("has the fingerprint pinned for party 1"), "{e}");
    one_line(&e);
}
