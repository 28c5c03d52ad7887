//! A party process for the multi-process tests: connects over mutual TLS with the given
//! config, agrees keys, then multiplies shared values in a loop for `--rounds N` rounds
//! (0 = until something fails), printing `ready` once set up and `done <checksum>` at the
//! end. On any error it prints one line to stderr and exits with status 2. With
//! `--pause-ms M` it computes alone for M ms (sleeps) after `ready`, before the loop.
//!
//! `triad-test-party --id N --config parties.toml [--rounds N] [--pause-ms M]`

use std::path::PathBuf;
use std::process::ExitCode;

use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape};
use triad_sharing::{Error, Party, Product};
use triad_transport::{connect_tls, PartiesConfig, PartyId, TlsIdentity};

fn run(id: u8, config: PathBuf, rounds: u64, pause: std::time::Duration) -> Result<u64, Error> {
    let cfg = PartiesConfig::load(&config).map_err(|e| Error::Usage(e.to_string()))?;
    let me = PartyId::new(id).ok_or_else(|| Error::Usage(format!("party id {id} is not 0, 1 or 2")))?;
    let ident = TlsIdentity::load(&cfg, me)?;
    let net = connect_tls(&cfg, me, ident)?;
    let p = Party::setup(CpuDevice, net, FixedConfig::default())?;
    println!("ready");
    std::thread::sleep(pause);
    let shape = Shape::new([1024]);
    let mut x = p.random(&shape)?;
    let mut i = 0u64;
    while rounds == 0 || i < rounds {
        x = p.product_trunc_share(Product::Elementwise, &x, &x)?;
        x = x.add(&p.random(&shape)?)?;
        i += 1;
    }
    let opened = p.reveal_all(&x)?.to_vec()?;
    Ok(opened.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let (Some(id), Some(config)) = (get("--id").and_then(|s| s.parse().ok()), get("--config")) else {
        eprintln!("usage: triad-test-party --id N --config parties.toml [--rounds N]");
        return ExitCode::from(2);
    };
    let rounds = get("--rounds").and_then(|s| s.parse().ok()).unwrap_or(0);
    let pause = std::time::Duration::from_millis(get("--pause-ms").and_then(|s| s.parse().ok()).unwrap_or(0));
    match run(id, PathBuf::from(config), rounds, pause) {
        Ok(sum) => {
            println!("done {sum}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("party {id}: {e}");
            ExitCode::from(2)
        }
    }
}
