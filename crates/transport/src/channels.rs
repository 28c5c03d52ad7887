//! [`Channels`]: one party's two links, its failure state and its cost meter.

use crate::cost::{CostTable, Meter};
use crate::error::TransportError;
use crate::netmodel::{NetModel, Pipe};
use crate::wire::Payload;
use crate::{LinkConfig, PartyId, Peer};
use std::fmt;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// What arrives on a party's inbound queue for one link.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message and its depth (see "Cost accounting" in the crate docs).
    Data {
        /// The depth the sender stamped on it.
        depth: u64,
        /// The message itself.
        payload: Payload,
        /// Under a [`NetModel`](crate::NetModel) in process: when it is delivered.
        deliver_at: Option<Instant>,
    },
    /// The peer said bye: nothing more will come.
    Closed,
    /// The party failed (possibly on the other link): look at `Core::failed`.
    Wake,
}

/// The outgoing half of one link; the two implementations (in-process, TLS) differ here.
pub(crate) trait Link: Send + Sync + fmt::Debug {
    /// Queue a message of depth `depth`; never blocks on the peer. Under a
    /// [`NetModel`](crate::NetModel), `deliver_at` is when the peer may have it.
    fn send(&self, depth: u64, payload: Payload, deliver_at: Option<Instant>) -> Result<(), TransportError>;
    /// Start a graceful close: bye follows the queued messages.
    fn close(&self);
    /// Wait until the queued messages have left, or `deadline`. Over TLS it also waits for
    /// the peer's bye (its own graceful close), so dropping a party's channels waits, up
    /// to the link timeout, until its peers have finished too.
    fn wait_closed(&self, deadline: Instant);
    /// Tell the peer we gave up (best effort) and shut the link down; must not block long.
    ///
    /// An in-process link marks the peer failed directly and returns its core, whose
    /// propagation the caller runs once all of its own links are aborted: so every party
    /// hears of a failure from the party where it started, not through a neighbour.
    fn abort(&self, reason: &str) -> Option<Arc<Core>>;
    /// When anything (a message, a heartbeat) last arrived from the peer, for links whose
    /// peer can go silent; `None` (in-process) times a receive from its start.
    fn last_heard(&self) -> Option<Instant> {
        None
    }
    /// The protocol has read a message of `bytes` bytes from this link (it no longer
    /// counts against the link's inbound budget).
    fn consumed(&self, bytes: usize) {
        let _ = bytes;
    }
}

/// Lock a mutex, ignoring poisoning (our critical sections leave data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A party's shared failure state. Link threads hold it weakly.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) me: PartyId,
    failed: OnceLock<TransportError>,
    /// Senders into the party's own inbound queues (slot order), used to wake receivers.
    wake: [Sender<Event>; 2],
    links: OnceLock<[Arc<dyn Link>; 2]>,
    /// Set once a failure has been propagated to both links (their aborts started).
    propagated: (Mutex<bool>, Condvar),
}

impl Core {
    pub(crate) fn new(me: PartyId, wake: [Sender<Event>; 2]) -> Core {
        Core {
            me,
            failed: OnceLock::new(),
            wake,
            links: OnceLock::new(),
            propagated: (Mutex::new(false), Condvar::new()),
        }
    }

    pub(crate) fn set_links(&self, links: [Arc<dyn Link>; 2]) {
        let _ = self.links.set(links);
    }

    pub(crate) fn failure(&self) -> Option<TransportError> {
        self.failed.get().cloned()
    }

    /// Fail the party with `err` unless it has already failed; returns the first error.
    ///
    /// The first failure aborts both links (telling the neighbours why) and wakes any
    /// receive blocked on either link.
    pub(crate) fn fail(&self, err: TransportError) -> TransportError {
        if self.mark_failed(err) {
            self.propagate();
        }
        self.failure().unwrap_or_else(|| TransportError::Aborted { reason: "failed".into() })
    }

    /// Record `err` as the failure if there is none yet; true if it was recorded.
    pub(crate) fn mark_failed(&self, err: TransportError) -> bool {
        let mut first = false;
        self.failed.get_or_init(|| {
            first = true;
            err
        });
        first
    }

    /// Abort both links with the recorded failure and wake blocked receivers.
    pub(crate) fn propagate(&self) {
        let Some(e) = self.failed.get() else {
            return;
        };
        let reason = crate::wire::printable(&e.to_string(), 900);
        let mut later = Vec::new();
        if let Some(links) = self.links.get() {
            for l in links {
                later.extend(l.abort(&reason));
            }
        }
        for w in &self.wake {
            let _ = w.send(Event::Wake);
        }
        *lock(&self.propagated.0) = true;
        self.propagated.1.notify_all();
        for core in later {
            core.propagate();
        }
    }

    /// Wait (at most `limit`) until a recorded failure has reached both links: a receive
    /// can see the failure while the thread that met it is still starting the aborts.
    pub(crate) fn wait_propagated(&self, limit: Duration) {
        let (done, cv) = &self.propagated;
        let guard = lock(done);
        let _ = cv.wait_timeout_while(guard, limit, |done| !*done);
    }
}

/// One party's view of the three-party network: its id, its links to the next and
/// previous party, and its cost meter.
///
/// Methods take `&self` (state is behind mutexes); a `Channels` is meant to be used by
/// one thread at a time and can be moved between threads. Dropping it closes both links
/// gracefully (see the crate docs).
pub struct Channels {
    id: PartyId,
    core: Arc<Core>,
    links: [Arc<dyn Link>; 2],
    inbound: [Mutex<Receiver<Event>>; 2],
    meter: Arc<Mutex<Meter>>,
    timeout: Duration,
    max_frame_bytes: u64,
    /// The modelled network and the two outgoing pipes (slot order).
    net: Option<(NetModel, [Mutex<Pipe>; 2])>,
    /// Every message received while recording (feature `recording`, tests only).
    #[cfg(feature = "recording")]
    recording: Mutex<Option<Vec<Received>>>,
}

/// A message a party received, as [`Channels::start_recording`] keeps it: who sent it,
/// the cost scope it arrived in, and its bytes as they crossed the link (`u64` messages
/// little-endian). Only with the test-only feature `recording`, which no release binary
/// enables (the view-secrecy tests of `tests/` turn it on).
#[cfg(feature = "recording")]
#[derive(Clone, Debug)]
pub struct Received {
    /// The sender.
    pub from: PartyId,
    /// The receiver's cost scope when it arrived.
    pub scope: String,
    /// The message.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("id", &self.id)
            .field("next", &self.links[0])
            .field("prev", &self.links[1])
            .field("timeout", &self.timeout)
            .field("failed", &self.core.failure())
            .finish_non_exhaustive()
    }
}

impl Channels {
    pub(crate) fn new(
        core: Arc<Core>,
        links: [Arc<dyn Link>; 2],
        inbound: [Receiver<Event>; 2],
        cfg: &LinkConfig,
    ) -> Channels {
        core.set_links(links.clone());
        let [a, b] = inbound;
        Channels {
            id: core.me,
            core,
            links,
            inbound: [Mutex::new(a), Mutex::new(b)],
            meter: Arc::new(Mutex::new(Meter::default())),
            timeout: cfg.timeout,
            max_frame_bytes: cfg.max_frame_bytes,
            net: cfg.net.map(|m| (m, [Mutex::new(Pipe::new()), Mutex::new(Pipe::new())])),
            #[cfg(feature = "recording")]
            recording: Mutex::new(None),
        }
    }

    /// Keep every message received from now on (feature `recording`, tests only).
    #[cfg(feature = "recording")]
    pub fn start_recording(&self) {
        *lock(&self.recording) = Some(Vec::new());
    }

    /// Stop recording; returns what was received since [`start_recording`](Self::start_recording).
    #[cfg(feature = "recording")]
    pub fn stop_recording(&self) -> Vec<Received> {
        lock(&self.recording).take().unwrap_or_default()
    }

    #[cfg(feature = "recording")]
    fn record(&self, from: Peer, bytes: impl FnOnce() -> Vec<u8>) {
        if let Some(r) = lock(&self.recording).as_mut() {
            let scope = lock(&self.meter).path().to_string();
            r.push(Received { from: self.peer_id(from), scope, bytes: bytes() });
        }
    }

    /// This party's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// The party at the other end of `peer`.
    pub fn peer_id(&self, peer: Peer) -> PartyId {
        self.id.peer(peer)
    }

    /// The receive timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The first error this party met, if it has failed.
    pub fn failure(&self) -> Option<TransportError> {
        self.core.failure()
    }

    fn check(&self) -> Result<(), TransportError> {
        match self.core.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send_payload(&self, to: Peer, payload: Payload) -> Result<(), TransportError> {
        let _s = triad_profile::span(triad_profile::Work::Send);
        self.check()?;
        let peer = self.peer_id(to);
        let len = payload.byte_len() as u64;
        if len > self.max_frame_bytes {
            return Err(self.core.fail(TransportError::TooLarge { peer, len, max: self.max_frame_bytes }));
        }
        let depth = lock(&self.meter).on_send(len);
        let deliver_at = self.net.as_ref().map(|(m, pipes)| lock(&pipes[to.slot()]).deliver_at(m, len));
        self.links[to.slot()].send(depth, payload, deliver_at).map_err(|e| self.core.fail(e))
    }

    /// The next message from `from` and its depth.
    fn recv_payload(&self, from: Peer) -> Result<(u64, Payload), TransportError> {
        self.check()?;
        let peer = self.peer_id(from);
        let rx = lock(&self.inbound[from.slot()]);
        let start = Instant::now();
        let link = &self.links[from.slot()];
        loop {
            // Fail only once the peer has been silent for the whole timeout: a peer still
            // computing sends heartbeats, which move `last_heard` on.
            let heard = link.last_heard().map_or(start, |t| t.max(start));
            let left = (heard + self.timeout).saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.core.fail(TransportError::Timeout { peer, after: self.timeout }));
            }
            match rx.recv_timeout(left) {
                Ok(Event::Data { depth, payload, deliver_at }) => {
                    if let Some(t) = deliver_at {
                        std::thread::sleep(t.saturating_duration_since(Instant::now()));
                    }
                    link.consumed(payload.byte_len());
                    return Ok((depth, payload));
                }
                Ok(Event::Wake) => self.check()?,
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.core.fail(TransportError::PeerClosed { peer }))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Send `data` to `to` (little-endian on the wire). Returns at once: the message is
    /// queued, moved rather than copied.
    pub fn send_u64s(&self, to: Peer, data: Vec<u64>) -> Result<(), TransportError> {
        self.send_payload(to, Payload::from_u64s(data))
    }

    /// Receive a message of exactly `len` u64s from `from`, waiting at most the timeout.
    /// A message of another length is [`TransportError::Malformed`].
    pub fn recv_u64s(&self, from: Peer, len: usize) -> Result<Vec<u64>, TransportError> {
        let _s = triad_profile::span(triad_profile::Work::Wait);
        let (depth, p) = self.recv_payload(from)?;
        let n = p.byte_len() as u64;
        match p.into_u64s(len) {
            Ok(v) => {
                lock(&self.meter).on_recv(n, depth);
                #[cfg(feature = "recording")]
                self.record(from, || v.iter().flat_map(|w| w.to_le_bytes()).collect());
                Ok(v)
            }
            Err(detail) => Err(self.core.fail(TransportError::Malformed { peer: self.peer_id(from), detail })),
        }
    }

    /// Send bytes to `to`.
    pub fn send_bytes(&self, to: Peer, data: Vec<u8>) -> Result<(), TransportError> {
        self.send_payload(to, Payload::Bytes(data))
    }

    /// Receive a message of exactly `len` bytes from `from`, waiting at most the timeout.
    pub fn recv_bytes(&self, from: Peer, len: usize) -> Result<Vec<u8>, TransportError> {
        let _s = triad_profile::span(triad_profile::Work::Wait);
        let (depth, p) = self.recv_payload(from)?;
        let n = p.byte_len() as u64;
        match p.into_bytes(len) {
            Ok(v) => {
                lock(&self.meter).on_recv(n, depth);
                #[cfg(feature = "recording")]
                self.record(from, || v.clone());
                Ok(v)
            }
            Err(detail) => Err(self.core.fail(TransportError::Malformed { peer: self.peer_id(from), detail })),
        }
    }

    /// Enter a cost scope until the returned guard is dropped. Scopes nest: inside
    /// `scope("lenet")`, `scope("conv1")` attributes to `lenet/conv1`.
    pub fn scope(&self, name: &str) -> ScopeGuard {
        let depth = lock(&self.meter).push(name);
        ScopeGuard { meter: Arc::clone(&self.meter), depth }
    }

    /// A snapshot of the costs so far.
    pub fn costs(&self) -> CostTable {
        lock(&self.meter).table()
    }

    /// Zero the counters. The scope stack is kept, and so is the depth clock (see "Cost
    /// accounting" in the crate docs): rounds counted after a reset are the clock's
    /// increase since the reset.
    pub fn reset_costs(&self) {
        lock(&self.meter).reset();
    }

    /// Synchronise the three parties: two rounds in which every party sends an empty
    /// message to both neighbours and waits for both. Every party must call it at the same
    /// point. Afterwards all three depth clocks agree (each party neighbours both others, so
    /// two exchanges spread the largest clock everywhere), which makes the maximum of the
    /// parties' round counts of whatever follows its exact latency; and no party starts the
    /// next step before the others have reached the barrier (for timing). Its own messages
    /// are counted like any others: call [`reset_costs`](Self::reset_costs) after it to
    /// measure what follows.
    pub fn barrier(&self) -> Result<(), TransportError> {
        for _ in 0..2 {
            self.send_bytes(Peer::Next, Vec::new())?;
            self.send_bytes(Peer::Prev, Vec::new())?;
            self.recv_bytes(Peer::Next, 0)?;
            self.recv_bytes(Peer::Prev, 0)?;
        }
        Ok(())
    }

    /// Give up: shut both links down, telling the neighbours. Later calls fail with
    /// [`TransportError::Aborted`] (or the error that came first).
    pub fn abort(&self) {
        self.abort_with("aborted by the protocol");
    }

    /// [`Channels::abort`] with a reason for the neighbours.
    pub fn abort_with(&self, reason: &str) {
        self.core.fail(TransportError::Aborted { reason: reason.to_string() });
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.abort_with(&format!("{} panicked", self.id));
        } else if self.core.failure().is_none() {
            for l in &self.links {
                l.close();
            }
        } else {
            self.core.wait_propagated(Duration::from_secs(1));
        }
        // After a close: until both byes have crossed. After a failure: until the abort
        // frames have left (bounded by a short grace, not the timeout).
        let deadline = Instant::now() + self.timeout;
        for l in &self.links {
            l.wait_closed(deadline);
        }
    }
}

/// Keeps a cost scope open; dropping it leaves the scope (and any scope opened inside).
#[must_use = "the scope ends when the guard is dropped"]
pub struct ScopeGuard {
    meter: Arc<Mutex<Meter>>,
    depth: usize,
}

impl fmt::Debug for ScopeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeGuard").field("depth", &self.depth).finish()
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        lock(&self.meter).pop_to(self.depth);
    }
}
