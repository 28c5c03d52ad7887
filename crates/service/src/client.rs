//! A client of the service: a model owner uploading its model as shares, or a data owner
//! sending its inputs as shares and reconstructing its outputs itself.
//!
//! A client holds one TLS connection to each of the three servers (its own certificate,
//! which the servers' operators enrolled; each server's certificate pinned by the client
//! file), and runs one request at a time over them: the same request goes to all three,
//! each with that server's shares, and all three answer. Open several clients for
//! requests in parallel: the servers batch them.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;
use triad_fixed::FixedConfig;
use triad_layers::{graph_wire, serving_tensors, Graph};
use triad_transport::{service_connector, Fingerprint, PartyId};

use crate::error::{Result, ServiceError};
use crate::split::{for_server, reconstruct, split};
use crate::wire::{bytes_to_words, read_frame, words_to_bytes, write_frame, ModelInfo, Reply, Request};

/// The most bytes a client accepts in one reply body (an output's shares).
const MAX_REPLY_BODY: u64 = 1 << 30;

/// One server as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEntry {
    /// `host:port` where it accepts clients (its `client_address` in the parties file).
    pub address: String,
    /// The SHA-256 of its certificate.
    pub fingerprint: Fingerprint,
}

/// A client file: who the client is and where the three servers are.
///
/// ```toml
/// cert = "alice.pem"          # the client's certificate (triad keygen --client alice)
/// key = "alice.key"           # and its private key
/// timeout_ms = 600000         # optional: how long to wait for a server's answer
///
/// [[server]]
/// id = 0
/// address = "10.0.0.1:7100"
/// fingerprint = "sha256:…"    # the server's certificate, as its operator published it
/// # … and servers 1 and 2
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The client's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Servers 0, 1 and 2.
    pub servers: [ServerEntry; 3],
    /// How long to wait for a server's answer.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    cert: String,
    key: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    server: Vec<RawServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    id: u8,
    address: String,
    fingerprint: String,
}

impl ClientConfig {
    /// Parses a client file; relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<ClientConfig> {
        let raw: RawClient = toml::from_str(text)
            .map_err(|e| ServiceError::Usage(format!("client file: {}", one_line(&e.to_string()))))?;
        let mut servers: [Option<ServerEntry>; 3] = [None, None, None];
        for s in raw.server {
            let id = PartyId::new(s.id)
                .ok_or_else(|| ServiceError::Usage(format!("client file: server id {} (0, 1 or 2)", s.id)))?;
            let fingerprint: Fingerprint = s.fingerprint.parse().map_err(|e| {
                ServiceError::Usage(format!("client file: server {}: fingerprint {:?}: {e}", s.id, s.fingerprint))
            })?;
            if servers[id.index()].replace(ServerEntry { address: s.address, fingerprint }).is_some() {
                return Err(ServiceError::Usage(format!("client file: server {} is listed twice", s.id)));
            }
        }
        let [Some(s0), Some(s1), Some(s2)] = servers else {
            return Err(ServiceError::Usage("client file: needs [[server]] entries with ids 0, 1 and 2".into()));
        };
        let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(600_000).max(1));
        Ok(ClientConfig { cert: base.join(raw.cert), key: base.join(raw.key), servers: [s0, s1, s2], timeout })
    }

    /// Reads a client file.
    pub fn load(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServiceError::Usage(format!("cannot read the client file {}: {e}", path.display())))?;
        ClientConfig::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// The file's text (paths as given).
    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "cert = {:?}\nkey = {:?}\ntimeout_ms = {}\n",
            self.cert.display().to_string(),
            self.key.display().to_string(),
            self.timeout.as_millis()
        );
        for (i, e) in self.servers.iter().enumerate() {
            s.push_str(&format!(
                "\n[[server]]\nid = {i}\naddress = {:?}\nfingerprint = \"{}\"\n",
                e.address, e.fingerprint
            ));
        }
        s
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A connected client (see the module docs).
pub struct Client {
    conns: Vec<Stream>,
    /// The public facts of the models this client used, so that a request costs one
    /// exchange, not two (dropped when a request on the model fails).
    known: std::collections::HashMap<String, ModelInfo>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("servers", &self.conns.len()).finish()
    }
}

impl Client {
    /// Connects to the three servers of `cfg`.
    pub fn connect(cfg: &ClientConfig) -> Result<Client> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| ServiceError::Usage(format!("cannot read {}: {e}", p.display())))
        };
        let tls = service_connector(&read(&cfg.cert)?, &read(&cfg.key)?, cfg.servers.clone().map(|s| s.fingerprint))?;
        let mut conns = Vec::with_capacity(3);
        for (i, s) in cfg.servers.iter().enumerate() {
            conns.push(connect_one(&tls, i, &s.address, cfg.timeout)?);
        }
        Ok(Client { conns, known: Default::default() })
    }

    /// Sends `req` to every server with its own body, then reads the three answers.
    fn round(&mut self, req: &Request, bodies: [Vec<u8>; 3]) -> Result<Vec<(Reply, Vec<u8>)>> {
        for (i, (c, body)) in self.conns.iter_mut().zip(bodies).enumerate() {
            write_frame(c, req, &body).map_err(|e| ServiceError::io(format!("sending to party {i}"), e))?;
        }
        let mut out = Vec::with_capacity(3);
        for (i, c) in self.conns.iter_mut().enumerate() {
            let frame = read_frame::<Reply>(c, MAX_REPLY_BODY).map_err(|e| match e {
                ServiceError::Io { source, .. } if source.to_string().contains("alert") => {
                    ServiceError::Refused(format!(
                    "party {i} refused this client's certificate ({source}): is it enrolled? Its operator adds the \
                     [[client]] lines `triad keygen --client` printed"
                ))
                }
                other => other,
            })?;
            match frame {
                Some(r) => out.push(r),
                None => return Err(ServiceError::Protocol(format!("party {i} closed the connection"))),
            }
        }
        // A refusal of an inference request reads the same from every server (they agree on
        // its reason); otherwise the first server's.
        if let Some(m) = out.iter().find_map(|(r, _)| match r {
            Reply::Error { message } => Some(message),
            _ => None,
        }) {
            return Err(ServiceError::Refused(m.clone()));
        }
        Ok(out)
    }

    /// Uploads a model as shares under the id `model`: the public graph to every server,
    /// and each server's two components of every weight (and of each batch norm's folded
    /// inference map). No server sees a weight. Returns the model's public facts.
    pub fn upload(&mut self, model: &str, graph: &Graph, weights: &[Vec<f64>], frac_bits: u32) -> Result<ModelInfo> {
        let fixed = FixedConfig::new(frac_bits).map_err(|e| ServiceError::Usage(format!("frac bits: {e}")))?;
        let tensors = serving_tensors(graph, weights).map_err(|e| ServiceError::Usage(e.to_string()))?;
        let flat: Vec<f64> = tensors.concat();
        let parts = split(&fixed, &flat).map_err(|e| match e {
            ServiceError::Usage(m) => ServiceError::Usage(m.replace("an input value", "a weight")),
            other => other,
        })?;
        let graph_bytes = graph_wire::encode(graph).ok_or_else(|| {
            ServiceError::Usage(format!("graph {}: a size does not fit the graph encoding", graph.name))
        })?;
        let mut version = [0u8; 8];
        getrandom::fill(&mut version).map_err(|e| ServiceError::Usage(format!("no randomness from the OS: {e}")))?;
        let req = Request::Upload {
            model: model.to_string(),
            version: u64::from_le_bytes(version),
            frac_bits,
            graph_bytes: graph_bytes.len() as u64,
        };
        let bodies = [0, 1, 2].map(|i| {
            let mut b = graph_bytes.clone();
            b.extend_from_slice(&words_to_bytes(&for_server(&parts, i)));
            b
        });
        let out = self.round(&req, bodies)?;
        match &out[0].0 {
            Reply::Uploaded(info) => Ok(info.clone()),
            other => Err(unexpected(other)),
        }
    }

    /// Lets the enrolled client `client` run inference on `model` (owner only).
    pub fn allow(&mut self, model: &str, client: &str) -> Result<()> {
        self.done(Request::Allow { model: model.into(), client: client.into() })
    }

    /// Withdraws `client`'s permission on `model` (owner only).
    pub fn refuse(&mut self, model: &str, client: &str) -> Result<()> {
        self.done(Request::Refuse { model: model.into(), client: client.into() })
    }

    fn done(&mut self, req: Request) -> Result<()> {
        let out = self.round(&req, [vec![], vec![], vec![]])?;
        match &out[0].0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The public facts of `model`, as the three servers hold it (they must agree).
    pub fn describe(&mut self, model: &str) -> Result<ModelInfo> {
        let out = self.round(&Request::Describe { model: model.into() }, [vec![], vec![], vec![]])?;
        let infos: Vec<&ModelInfo> = out
            .iter()
            .filter_map(|(r, _)| match r {
                Reply::Model(m) => Some(m),
                _ => None,
            })
            .collect();
        match infos.as_slice() {
            [a, b, c] if a == b && b == c => Ok((*a).clone()),
            [_, _, _] => Err(ServiceError::Refused(format!(
                "the servers hold different versions of model {model:?} (an upload did not reach all three); upload it again"
            ))),
            _ => Err(unexpected(&out[0].0)),
        }
    }

    /// Private inference on `x` (shape `dims`: samples first): `x` is secret-shared to the
    /// servers, which return shares of the outputs; the outputs are reconstructed here.
    /// Returns the outputs' shape (samples first) and values.
    pub fn infer(&mut self, model: &str, dims: &[usize], x: &[f64]) -> Result<(Vec<usize>, Vec<f64>)> {
        let n: usize = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        if dims.len() < 2 || n != x.len() || dims[0] == 0 {
            return Err(ServiceError::Usage(format!(
                "an input of shape {dims:?} with {} values: expected samples first, then the model's input shape",
                x.len()
            )));
        }
        let info = match self.known.get(model) {
            Some(info) => info.clone(),
            None => self.describe(model)?,
        };
        let r = self.infer_with(&info, dims, x);
        match &r {
            Ok(_) => {
                self.known.insert(model.to_string(), info);
            }
            Err(_) => {
                self.known.remove(model);
            }
        }
        r
    }

    fn infer_with(&mut self, info: &ModelInfo, dims: &[usize], x: &[f64]) -> Result<(Vec<usize>, Vec<f64>)> {
        let model = info.model.as_str();
        let fixed = FixedConfig::new(info.frac_bits).map_err(|e| ServiceError::Usage(format!("frac bits: {e}")))?;
        if dims[1..] != info.input[..] {
            return Err(ServiceError::Usage(format!(
                "model {model:?} takes inputs of shape [N, {}], not {dims:?}",
                info.input.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let parts = split(&fixed, x)?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| ServiceError::Usage(format!("no randomness from the OS: {e}")))?;
        let req = Request::Infer { id: u64::from_le_bytes(id), model: model.into(), dims: dims.to_vec() };
        let out = self.round(&req, [0, 1, 2].map(|i| words_to_bytes(&for_server(&parts, i))))?;
        let mut shape = None;
        let mut words = Vec::with_capacity(3);
        for (i, (r, body)) in out.iter().enumerate() {
            match r {
                Reply::Output { dims, frac_bits, .. } if *frac_bits == info.frac_bits => {
                    if shape.get_or_insert_with(|| dims.clone()) != dims {
                        return Err(ServiceError::Protocol("the servers returned outputs of different shapes".into()));
                    }
                }
                other => return Err(unexpected(other)),
            }
            words.push(
                bytes_to_words(body)
                    .ok_or_else(|| ServiceError::Protocol(format!("party {i} returned a ragged output")))?,
            );
        }
        let shape = shape.unwrap_or_default();
        let len = shape.iter().product();
        let y = reconstruct([&words[0], &words[1], &words[2]], len)?;
        Ok((shape, fixed.decode_slice(&y)))
    }
}

fn unexpected(r: &Reply) -> ServiceError {
    ServiceError::Protocol(format!("a server answered with an unexpected message: {:?}", short(r)))
}

fn short(r: &Reply) -> String {
    let s = format!("{r:?}");
    s.chars().take(120).collect()
}

pub(crate) fn connect_one(
    tls: &Arc<rustls::ClientConfig>,
    i: usize,
    address: &str,
    timeout: Duration,
) -> Result<Stream> {
    let what = || format!("party {i} at {address}");
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| ServiceError::io(format!("{}: cannot resolve the address", what()), e))?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        ServiceError::io(
            format!("{}: cannot connect (is triad serve running?)", what()),
            last.unwrap_or_else(|| std::io::Error::other("no address")),
        )
    })?;
    tcp.set_nodelay(true).map_err(|e| ServiceError::io(what(), e))?;
    tcp.set_read_timeout(Some(timeout)).map_err(|e| ServiceError::io(what(), e))?;
    tcp.set_write_timeout(Some(timeout)).map_err(|e| ServiceError::io(what(), e))?;
    let name = ServerName::try_from(format!("party{i}"))
        .map_err(|e| ServiceError::Usage(format!("server name party{i}: {e}")))?;
    let conn = rustls::ClientConnection::new(tls.clone(), name)
        .map_err(|e| ServiceError::Usage(format!("{}: TLS: {e}", what())))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now, so a refused certificate shows here, named.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| {
            ServiceError::io(format!("{}: the TLS handshake failed (is this client enrolled?)", what()), e)
        })?;
    }
    Ok(s)
}
