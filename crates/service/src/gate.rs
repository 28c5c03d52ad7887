//! A server's door to its clients: the TLS listener, one thread per client connection,
//! and the registry of installed models and of inference requests waiting for a batch.
//!
//! The gate never computes: it checks and stores what clients send (a model's shares, an
//! inference request's shares) and hands requests to the server's compute loop
//! ([`crate::server`]), which answers each through the request's own reply channel. A
//! connection thread serves one request at a time, so a client that disconnects loses
//! only its own answer.

use std::collections::{BTreeSet, HashMap};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use triad_layers::{graph_wire, serving_shapes, Graph};
use triad_transport::{enrolled_client_name, EnrolledClient, PartyId};

use crate::error::{Result, ServiceError};
use crate::wire::{bytes_to_words, read_frame, write_frame, ModelInfo, Reply, Request, DEFAULT_MAX_BODY_BYTES};

/// The most client connections a server serves at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// An installed model: its public facts and graph, and this server's two components of
/// every tensor of [`serving_shapes`] (all first components, then all second ones).
#[derive(Debug)]
pub struct StoredModel {
    /// Its public facts.
    pub info: ModelInfo,
    /// Its graph.
    pub graph: Graph,
    /// This server's shares of its tensors.
    pub words: Vec<u64>,
}

/// What a reply channel carries: the reply and its body.
pub type Answer = (Reply, Vec<u8>);

/// An inference request waiting for its batch.
#[derive(Debug)]
pub struct Pending {
    /// The enrolled client that sent it.
    pub client: String,
    /// The client's request id.
    pub id: u64,
    /// The model it names.
    pub model: String,
    /// Its input's shape, samples first.
    pub dims: Vec<usize>,
    /// This server's two components of the input, or why this server refuses it.
    pub shares: std::result::Result<Vec<u64>, String>,
    /// When it arrived.
    pub arrived: Instant,
    /// Where its answer goes.
    pub reply: Sender<Answer>,
}

impl Pending {
    /// Its samples.
    pub fn samples(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Answers it (a client that left is not an error).
    pub fn answer(&self, reply: Reply, body: Vec<u8>) {
        let _ = self.reply.send((reply, body));
    }
}

#[derive(Debug, Default)]
struct State {
    models: HashMap<String, Arc<StoredModel>>,
    /// Per model, the clients other than its owner that may use it.
    allowed: HashMap<String, BTreeSet<String>>,
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Shared {
    me: PartyId,
    frac_bits: u32,
    max_body: u64,
    clients: Vec<EnrolledClient>,
    state: Mutex<State>,
    changed: Condvar,
    stopping: Arc<AtomicBool>,
    connections: AtomicUsize,
    /// Test only ([`Gate::start_recording`], feature `recording`): every share body
    /// received from clients.
    #[cfg(feature = "recording")]
    recording: Mutex<Option<Vec<Vec<u8>>>>,
}

/// The gate of one server (see the module docs). Cloning gives another handle to it.
#[derive(Clone, Debug)]
pub struct Gate {
    shared: Arc<Shared>,
}

impl Gate {
    /// Starts accepting clients on `listener`: TLS with `tls` (which admits only enrolled
    /// clients: [`triad_transport::service_acceptor`]), each client named by its entry in
    /// `clients`. Shares are fixed point with `frac_bits`; a request body may hold at most
    /// `max_body` bytes.
    pub fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        clients: Vec<EnrolledClient>,
        me: PartyId,
        frac_bits: u32,
        max_body: u64,
    ) -> Result<Gate> {
        listener.set_nonblocking(true).map_err(|e| ServiceError::io("the client listener", e))?;
        let gate = Gate::new(clients, me, frac_bits, max_body);
        let g = gate.clone();
        std::thread::Builder::new()
            .name(format!("triad-gate-{}", me.index()))
            .spawn(move || g.accept_loop(listener, tls))
            .map_err(|e| ServiceError::io("starting the client listener", e))?;
        Ok(gate)
    }

    /// Test support (the `service_request` fuzz target): a gate with no listener, whose
    /// clients are `clients`.
    #[doc(hidden)]
    pub fn offline(clients: Vec<EnrolledClient>, me: PartyId, frac_bits: u32) -> Gate {
        Gate::new(clients, me, frac_bits, DEFAULT_MAX_BODY_BYTES)
    }

    fn new(clients: Vec<EnrolledClient>, me: PartyId, frac_bits: u32, max_body: u64) -> Gate {
        Gate {
            shared: Arc::new(Shared {
                me,
                frac_bits,
                max_body,
                clients,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                stopping: Arc::new(AtomicBool::new(false)),
                connections: AtomicUsize::new(0),
                #[cfg(feature = "recording")]
                recording: Mutex::new(None),
            }),
        }
    }

    /// Test support (the `service_request` fuzz target): what this server does with a
    /// client's request, up to queueing it: an upload is installed, an allow, refuse or
    /// describe answered, an inference request checked (not queued). `Err` with the
    /// one-line reason the client would get.
    #[doc(hidden)]
    pub fn try_request(&self, client: &str, req: Request, body: Vec<u8>) -> std::result::Result<(), String> {
        let reply = match req {
            Request::Infer { model, dims, .. } => return self.check_infer(client, &model, &dims, body).map(|_| ()),
            other => self.handle(client, other, body).0,
        };
        match reply {
            Reply::Error { message } => Err(message),
            _ => Ok(()),
        }
    }

    /// The flag that stops the server (set by SIGTERM, or by [`Gate::stop`]).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.shared.stopping.clone()
    }

    /// Asks the server to stop: no new request is taken; the compute loop finishes the
    /// batch in hand and stops with its peers.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// This server.
    pub fn me(&self) -> PartyId {
        self.shared.me
    }

    /// Test support (the view-secrecy test; feature `recording`, which no release binary
    /// enables): keep every share body clients send from now on (a model's shares without
    /// its public graph; an input's shares).
    #[cfg(feature = "recording")]
    pub fn start_recording(&self) {
        *self.shared.recording.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// Test support: what was kept since [`Gate::start_recording`].
    #[cfg(feature = "recording")]
    pub fn stop_recording(&self) -> Vec<Vec<u8>> {
        self.shared.recording.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
    }

    #[cfg(feature = "recording")]
    fn record(&self, shares: &[u8]) {
        if let Some(r) = self.shared.recording.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            r.push(shares.to_vec());
        }
    }

    #[cfg(not(feature = "recording"))]
    fn record(&self, _shares: &[u8]) {}

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a connection thread panicked; the state is still usable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The installed model `name`.
    pub fn model(&self, name: &str) -> Option<Arc<StoredModel>> {
        self.lock().models.get(name).cloned()
    }

    /// The leader's next batch: waits (at most `tick`) for a request, then lets requests
    /// for the oldest one's model gather for up to `max_wait` after it arrived, until they
    /// hold `max_batch` samples, or until every open client connection has a request
    /// waiting, and takes them (always at least one). Empty after `tick` with nothing
    /// pending, or when stopping.
    pub fn next_batch(&self, max_batch: usize, max_wait: Duration, tick: Duration) -> Vec<Pending> {
        let start = Instant::now();
        let mut st = self.lock();
        loop {
            if self.stopping() {
                return Vec::new();
            }
            let wait = match st.pending.first() {
                None => match tick.checked_sub(start.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Vec::new(),
                },
                Some(oldest) => {
                    let model = oldest.model.clone();
                    let waited = oldest.arrived.elapsed();
                    let samples: usize = st.pending.iter().filter(|p| p.model == model).map(Pending::samples).sum();
                    // A connection carries one request at a time: once every open
                    // connection has a request waiting, no other can join, so waiting
                    // longer only adds latency (a lone client never waits).
                    let all_in = st.pending.len() >= self.shared.connections.load(Ordering::SeqCst);
                    if samples >= max_batch || waited >= max_wait || all_in {
                        return take_batch(&mut st.pending, &model, max_batch);
                    }
                    max_wait - waited
                }
            };
            st = self.shared.changed.wait_timeout(st, wait).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// A follower's claim of the requests the leader proposed: each is taken from the
    /// pending list, waiting until `deadline` for those that have not arrived yet
    /// (`None` for those that did not arrive in time).
    pub fn claim(&self, keys: &[(String, u64)], deadline: Instant) -> Vec<Option<Pending>> {
        let mut out: Vec<Option<Pending>> = keys.iter().map(|_| None).collect();
        let mut st = self.lock();
        loop {
            for (k, slot) in keys.iter().zip(out.iter_mut()) {
                if slot.is_none() {
                    if let Some(i) = st.pending.iter().position(|p| p.client == k.0 && p.id == k.1) {
                        *slot = Some(st.pending.remove(i));
                    }
                }
            }
            let now = Instant::now();
            if out.iter().all(Option::is_some) || now >= deadline {
                return out;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Takes every pending request older than `age` (or all, with `Duration::ZERO`).
    pub fn take_stale(&self, age: Duration) -> Vec<Pending> {
        let mut st = self.lock();
        let (old, keep) = std::mem::take(&mut st.pending).into_iter().partition(|p| p.arrived.elapsed() >= age);
        st.pending = keep;
        old
    }

    fn accept_loop(&self, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
        loop {
            if self.stopping() {
                return;
            }
            match listener.accept() {
                Ok((tcp, addr)) => {
                    if self.shared.connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        eprintln!("{}: client {addr}: refused, {MAX_CONNECTIONS} connections are open", self.me());
                        continue;
                    }
                    self.shared.connections.fetch_add(1, Ordering::SeqCst);
                    let g = self.clone();
                    let tls = tls.clone();
                    let spawned = std::thread::Builder::new().name("triad-client".into()).spawn(move || {
                        if let Err(e) = g.connection(tcp, tls) {
                            eprintln!("{}: client {addr}: {e}", g.me());
                        }
                        g.shared.connections.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    eprintln!("{}: accepting a client: {e}", self.me());
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn connection(&self, tcp: TcpStream, tls: Arc<rustls::ServerConfig>) -> Result<()> {
        let io = |e| ServiceError::io("the connection", e);
        tcp.set_nonblocking(false).map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
        tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
        let conn =
            rustls::ServerConnection::new(tls).map_err(|e| ServiceError::Protocol(format!("TLS set-up: {e}")))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| ServiceError::io("TLS handshake refused (not an enrolled client?)", e))?;
        }
        let Some(name) = enrolled_client_name(&self.shared.clients, &s.conn) else {
            return Err(ServiceError::Protocol("a certificate that no [[client]] entry enrols".into()));
        };
        s.sock.set_read_timeout(Some(IDLE_TIMEOUT)).map_err(io)?;
        s.sock.set_write_timeout(Some(Duration::from_secs(60))).map_err(io)?;
        loop {
            let Some((req, body)) = read_frame::<Request>(&mut s, self.shared.max_body).map_err(|e| match e {
                ServiceError::Protocol(m) => ServiceError::Protocol(format!("{name}: {m}")),
                other => other,
            })?
            else {
                return Ok(());
            };
            let (reply, out) = self.handle(&name, req, body);
            write_frame(&mut s, &reply, &out).map_err(|e| ServiceError::io(format!("{name}: answering"), e))?;
        }
    }

    fn handle(&self, client: &str, req: Request, body: Vec<u8>) -> Answer {
        let me = self.me();
        let err = |m: String| (Reply::Error { message: format!("{me}: {m}") }, Vec::new());
        match req {
            Request::Upload { model, version, frac_bits, graph_bytes } => {
                if let Some(shares) = usize::try_from(graph_bytes).ok().and_then(|g| body.get(g..)) {
                    self.record(shares);
                }
                match self.install(client, &model, version, frac_bits, graph_bytes, body) {
                    Ok(info) => (Reply::Uploaded(info), Vec::new()),
                    Err(m) => err(m),
                }
            }
            Request::Allow { model, client: other } | Request::Refuse { model, client: other }
                if !self.shared.clients.iter().any(|c| c.name == other) =>
            {
                err(format!("model {model:?}: {other:?} is not an enrolled client"))
            }
            Request::Allow { model, client: other } => self.acl(client, &model, |a| {
                a.insert(other);
            }),
            Request::Refuse { model, client: other } => self.acl(client, &model, |a| {
                a.remove(&other);
            }),
            Request::Describe { model } => match self.model(&model) {
                Some(m) if self.allows(&model, client) => (Reply::Model(m.info.clone()), Vec::new()),
                _ => err(not_found(&model, client)),
            },
            Request::Infer { id, model, dims } => {
                if self.stopping() {
                    return err("the server is shutting down".into());
                }
                self.record(&body);
                let shares = self.check_infer(client, &model, &dims, body);
                let (tx, rx): (Sender<Answer>, Receiver<Answer>) = channel();
                {
                    let mut st = self.lock();
                    if st.pending.iter().any(|p| p.client == client && p.id == id) {
                        return err(format!("request {id} is already pending"));
                    }
                    st.pending.push(Pending {
                        client: client.to_string(),
                        id,
                        model,
                        dims,
                        shares,
                        arrived: Instant::now(),
                        reply: tx,
                    });
                }
                self.shared.changed.notify_all();
                rx.recv().unwrap_or_else(|_| err("the server stopped before answering".into()))
            }
        }
    }

    fn check_infer(
        &self,
        client: &str,
        model: &str,
        dims: &[usize],
        body: Vec<u8>,
    ) -> std::result::Result<Vec<u64>, String> {
        let m = self.model(model).filter(|_| self.allows(model, client)).ok_or_else(|| not_found(model, client))?;
        if dims.len() < 2 || dims[0] == 0 || dims[1..] != m.info.input[..] {
            return Err(format!("model {model:?} takes inputs of shape [N, {:?}], not {dims:?}", m.info.input));
        }
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("an input too large")?;
        let words = bytes_to_words(&body).filter(|w| w.len() == 2 * n).ok_or_else(|| {
            format!("an input of shape {dims:?} needs {} bytes of shares, not {}", 16 * n, body.len())
        })?;
        Ok(words)
    }

    fn acl(&self, client: &str, model: &str, change: impl FnOnce(&mut BTreeSet<String>)) -> Answer {
        let me = self.me();
        let mut st = self.lock();
        let message = match st.models.get(model) {
            None => not_found(model, client),
            Some(m) if m.info.owner != client => {
                format!("model {model:?} belongs to another client; only its owner may allow or refuse")
            }
            Some(_) => {
                change(st.allowed.entry(model.to_string()).or_default());
                return (Reply::Done, Vec::new());
            }
        };
        (Reply::Error { message: format!("{me}: {message}") }, Vec::new())
    }

    /// Whether `client` may use `model`: its owner, or a client its owner allowed.
    pub fn allows(&self, model: &str, client: &str) -> bool {
        let st = self.lock();
        st.models.get(model).is_some_and(|m| m.info.owner == client)
            || st.allowed.get(model).is_some_and(|a| a.contains(client))
    }

    fn install(
        &self,
        client: &str,
        model: &str,
        version: u64,
        frac_bits: u32,
        graph_bytes: u64,
        body: Vec<u8>,
    ) -> std::result::Result<ModelInfo, String> {
        if model.is_empty()
            || model.len() > 64
            || !model.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!("model id {model:?}: use 1 to 64 letters, digits, '.', '_' or '-'"));
        }
        if frac_bits != self.shared.frac_bits {
            return Err(format!(
                "model {model:?}: shares with {frac_bits} fractional bits; this server runs {}",
                self.shared.frac_bits
            ));
        }
        if let Some(m) = self.model(model) {
            if m.info.owner != client {
                return Err(format!("model {model:?} belongs to another client"));
            }
        }
        let g = usize::try_from(graph_bytes).ok().filter(|&g| g <= body.len()).ok_or("the graph is cut short")?;
        let graph = graph_wire::decode(&body[..g]).map_err(|e| format!("model {model:?}: its graph: {e}"))?;
        let shapes = serving_shapes(&graph);
        let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let words = bytes_to_words(&body[g..]).filter(|w| w.len() == 2 * n).ok_or_else(|| {
            format!("model {model:?}: its graph has {n} weights, which need {} bytes of shares", 16 * n)
        })?;
        let input = graph.input().to_vec();
        let output = graph.out_dims().map_err(|e| format!("model {model:?}: {e}"))?;
        let info = ModelInfo {
            model: model.to_string(),
            version,
            owner: client.to_string(),
            graph: graph.name.clone(),
            graph_sha256: sha256_hex(&body[..g]),
            params: graph.num_params(),
            input,
            output,
            frac_bits,
        };
        let stored = StoredModel { info: info.clone(), graph, words };
        {
            let mut st = self.lock();
            if st.models.get(model).is_some_and(|m| m.info.owner != client) {
                return Err(format!("model {model:?} belongs to another client"));
            }
            st.models.insert(model.to_string(), Arc::new(stored));
        }
        eprintln!(
            "{}: model {model:?} ({}, {} parameters, graph sha256 {}) uploaded by {client}",
            self.me(),
            info.graph,
            info.params,
            info.graph_sha256
        );
        Ok(info)
    }
}

fn take_batch(pending: &mut Vec<Pending>, model: &str, max_batch: usize) -> Vec<Pending> {
    let mut taken = Vec::new();
    let mut samples = 0;
    let mut i = 0;
    while i < pending.len() {
        if pending[i].model == model && (taken.is_empty() || samples + pending[i].samples() <= max_batch) {
            samples += pending[i].samples();
            taken.push(pending.remove(i));
        } else {
            i += 1;
        }
    }
    taken
}

fn not_found(model: &str, client: &str) -> String {
    format!("no model {model:?} that {client} may use (upload it under that id, or ask the model's owner to allow {client})")
}

fn sha256_hex(bytes: &[u8]) -> String {
    triad_transport::Fingerprint::of(bytes).0.iter().map(|b| format!("{b:02x}")).collect()
}
