//! One established TLS link: its handle, shared state and writer thread.

use super::{handshake::*, reader::*, setup::*};
use crate::channels::{lock, Core, Event, Link};
use crate::error::TransportError;
use crate::wire::{encode_frame_header, le_bytes, FrameKind, Payload, FRAME_HEADER_LEN};
use crate::PartyId;
use rustls::Connection;
use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// Plaintext written to rustls per lock acquisition.
pub(super) const WRITE_CHUNK: usize = 512 << 10;
/// Messages up to this size are written as one buffer together with their header.
pub(super) const SMALL_MESSAGE: usize = 64 << 10;
/// How long an abort waits for the abort frame to leave before cutting the connection.
pub(super) const ABORT_GRACE: Duration = Duration::from_millis(250);

/// How often an idle writer sends a heartbeat: a quarter of the idle timeout, so a peer
/// hears from a live party several times per timeout, within 5 ms and 5 s.
pub fn heartbeat_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(5))
}

pub(super) enum Cmd {
    /// A message, its depth, and under a [`NetModel`](crate::NetModel) when to write it.
    Data(u64, Payload, Option<Instant>),
    Bye,
    Abort,
}

/// State shared by a link's handle and its two threads.
#[derive(Debug)]
pub(super) struct LinkShared {
    pub(super) me: PartyId,
    pub(super) peer: PartyId,
    pub(super) sock: TcpStream,
    pub(super) conn: Mutex<Connection>,
    pub(super) aborting: AtomicBool,
    /// Set by a graceful close: from then on the peer closing its side is expected, and an
    /// error on this link (a reset from a peer that already left) must not abort the session.
    pub(super) closing: AtomicBool,
    /// Set when the reader thread has ended.
    pub(super) read_ended: AtomicBool,
    pub(super) reason: Mutex<String>,
    /// When the reader last got bytes from the peer (any frame, heartbeats included).
    pub(super) last_heard: Mutex<Instant>,
    pub(super) timeout: Duration,
    pub(super) max_frame_bytes: u64,
    /// Bytes of data frames delivered to the inbound queue and not yet read.
    pub(super) buffered: AtomicU64,
    pub(super) max_buffered_bytes: u64,
}

impl LinkShared {
    pub(super) fn aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    /// Whether an error on this link should fail the session: not once it is aborting or
    /// closing gracefully.
    pub(super) fn live(&self) -> bool {
        !self.aborting() && !self.closing.load(Ordering::SeqCst)
    }

    pub(super) fn io_err(&self, e: &io::Error) -> TransportError {
        TransportError::from_io(self.peer, e, self.timeout)
    }
}

/// The handle of one TLS link.
#[derive(Debug)]
pub(super) struct TlsLink {
    pub(super) shared: Arc<LinkShared>,
    pub(super) queue: Mutex<Option<Sender<Cmd>>>,
    /// Signalled when the writer has sent everything (bye included) or given up.
    pub(super) done: Mutex<Option<Receiver<()>>>,
    /// Signalled when the reader has ended (the peer's bye and close_notify, or an error).
    pub(super) read_done: Mutex<Option<Receiver<()>>>,
    /// The thread that cuts the connection after an abort.
    pub(super) cut: Mutex<Option<thread::JoinHandle<()>>>,
}

/// What is needed to start a link's threads.
pub(super) struct LinkStarter {
    pub(super) shared: Arc<LinkShared>,
    pub(super) queue: Receiver<Cmd>,
    pub(super) done: Sender<()>,
    pub(super) read_done: Sender<()>,
    pub(super) inbound: Sender<Event>,
}

impl TlsLink {
    pub(super) fn new(
        me: PartyId,
        est: Established,
        cfg: &crate::LinkConfig,
        inbound: Sender<Event>,
    ) -> Result<(Arc<TlsLink>, LinkStarter), TransportError> {
        let Established { peer, sock, mut conn } = est;
        let timeout = cfg.timeout;
        let io_err = |e: io::Error| TransportError::from_io(peer, &e, timeout);
        sock.set_read_timeout(None).map_err(io_err)?;
        sock.set_write_timeout(Some(timeout)).map_err(io_err)?;
        sock.set_nodelay(true).map_err(io_err)?;
        conn.set_buffer_limit(None);
        let shared = Arc::new(LinkShared {
            me,
            peer,
            sock,
            conn: Mutex::new(conn),
            aborting: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            read_ended: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
            last_heard: Mutex::new(Instant::now()),
            timeout,
            max_frame_bytes: cfg.max_frame_bytes,
            buffered: AtomicU64::new(0),
            max_buffered_bytes: cfg.max_buffered_bytes,
        });
        let (qtx, qrx) = channel();
        let (dtx, drx) = channel();
        let (rtx, rrx) = channel();
        let link = Arc::new(TlsLink {
            shared: Arc::clone(&shared),
            queue: Mutex::new(Some(qtx)),
            done: Mutex::new(Some(drx)),
            read_done: Mutex::new(Some(rrx)),
            cut: Mutex::new(None),
        });
        Ok((link, LinkStarter { shared, queue: qrx, done: dtx, read_done: rtx, inbound }))
    }
}

impl LinkStarter {
    pub(super) fn start(self, core: &Arc<Core>) -> Result<(), TransportError> {
        let LinkStarter { shared, queue, done, read_done, inbound } = self;
        let (me, peer) = (shared.me.as_u8(), shared.peer.as_u8());
        let (s, c) = (Arc::clone(&shared), Arc::downgrade(core));
        spawn(format!("triad-{me}-tx-{peer}"), move || {
            writer_main(&s, queue, &c);
            let _ = done.send(());
        })?;
        let c = Arc::downgrade(core);
        spawn(format!("triad-{me}-rx-{peer}"), move || {
            if let Err(e) = read_loop(&shared, &inbound) {
                if shared.live() {
                    if let Some(core) = c.upgrade() {
                        core.fail(e);
                    }
                }
            }
            shared.read_ended.store(true, Ordering::SeqCst);
            let _ = read_done.send(());
        })
    }
}

impl Link for TlsLink {
    fn last_heard(&self) -> Option<Instant> {
        Some(*lock(&self.shared.last_heard))
    }

    fn consumed(&self, bytes: usize) {
        self.shared.buffered.fetch_sub(bytes as u64, Ordering::SeqCst);
    }

    fn send(&self, depth: u64, payload: Payload, deliver_at: Option<Instant>) -> Result<(), TransportError> {
        let peer = self.shared.peer;
        match lock(&self.queue).as_ref() {
            Some(tx) => tx.send(Cmd::Data(depth, payload, deliver_at)).map_err(|_| TransportError::PeerClosed { peer }),
            None => Err(TransportError::PeerClosed { peer }),
        }
    }

    fn close(&self) {
        if let Some(tx) = lock(&self.queue).take() {
            self.shared.closing.store(true, Ordering::SeqCst);
            let _ = tx.send(Cmd::Bye);
        }
    }

    /// Wait for our bye to leave and then for the peer's: a process that exited while its
    /// peer still had a bye in flight to it would answer with a reset, and a peer still
    /// sending to another party must not read that reset as a failure of the session.
    fn wait_closed(&self, deadline: Instant) {
        if let Some(cut) = lock(&self.cut).take() {
            // Aborted: the cut thread ends within two grace periods.
            let _ = cut.join();
            return;
        }
        for done in [&self.done, &self.read_done] {
            if let Some(rx) = lock(done).take() {
                let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }

    fn abort(&self, reason: &str) -> Option<Arc<Core>> {
        *lock(&self.shared.reason) = reason.to_string();
        self.shared.aborting.store(true, Ordering::SeqCst);
        if let Some(tx) = lock(&self.queue).take() {
            let _ = tx.send(Cmd::Abort);
        }
        let done = lock(&self.done).take();
        let read_done = lock(&self.read_done).take();
        let shared = Arc::clone(&self.shared);
        // Let the abort frame leave, then keep reading (the reader discards what comes)
        // until the peer hangs up too: a socket closed with unread data answers with a
        // reset, which can destroy the abort frame before the peer reads it.
        let cut = move || {
            for rx in [done, read_done].into_iter().flatten() {
                let _ = rx.recv_timeout(ABORT_GRACE);
            }
            let _ = shared.sock.shutdown(Shutdown::Both);
        };
        let me = self.shared.me.as_u8();
        match thread::Builder::new().name(format!("triad-{me}-abort")).spawn(cut) {
            Ok(h) => *lock(&self.cut) = Some(h),
            // Could not start a thread: cut the connection now.
            Err(_) => {
                let _ = self.shared.sock.shutdown(Shutdown::Both);
            }
        }
        None
    }
}

/// Encrypts plaintext and writes TLS records to the socket, never holding the
/// connection lock while blocked on the socket (the reader needs it to decrypt).
pub(super) struct TlsWriter<'a> {
    pub(super) shared: &'a LinkShared,
    pub(super) out: Vec<u8>,
}

impl TlsWriter<'_> {
    pub(super) fn write_plain(&mut self, data: &[u8]) -> Result<(), TransportError> {
        {
            let mut conn = lock(&self.shared.conn);
            conn.writer().write_all(data).map_err(|e| self.shared.io_err(&e))?;
            while conn.wants_write() {
                conn.write_tls(&mut self.out).map_err(|e| self.shared.io_err(&e))?;
            }
        }
        self.flush_out()
    }

    pub(super) fn flush_out(&mut self) -> Result<(), TransportError> {
        let r = (&self.shared.sock).write_all(&self.out);
        self.out.clear();
        r.map_err(|e| self.shared.io_err(&e))
    }

    /// Write a frame whose payload is `prefix` then `bytes` (the prefix is the depth word
    /// of a data frame, empty for control frames).
    pub(super) fn frame(&mut self, kind: FrameKind, prefix: &[u8], bytes: &[u8]) -> Result<(), TransportError> {
        let header = encode_frame_header(kind, (prefix.len() + bytes.len()) as u64);
        if bytes.len() <= SMALL_MESSAGE {
            let mut buf = Vec::with_capacity(FRAME_HEADER_LEN + prefix.len() + bytes.len());
            buf.extend_from_slice(&header);
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(bytes);
            return self.write_plain(&buf);
        }
        let mut head = Vec::with_capacity(FRAME_HEADER_LEN + prefix.len());
        head.extend_from_slice(&header);
        head.extend_from_slice(prefix);
        self.write_plain(&head)?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if self.shared.aborting() {
                return Err(TransportError::Aborted { reason: "link aborted".into() });
            }
            self.write_plain(chunk)?;
        }
        Ok(())
    }

    pub(super) fn send_abort(&mut self) {
        let reason = lock(&self.shared.reason).clone();
        let _ = self.frame(FrameKind::Abort, &[], abort_payload(&reason));
        let _ = self.shared.sock.shutdown(Shutdown::Write);
    }

    pub(super) fn send_bye(&mut self) -> Result<(), TransportError> {
        self.frame(FrameKind::Bye, &[], &[])?;
        {
            let mut conn = lock(&self.shared.conn);
            conn.send_close_notify();
            while conn.wants_write() {
                conn.write_tls(&mut self.out).map_err(|e| self.shared.io_err(&e))?;
            }
        }
        self.flush_out()?;
        let _ = self.shared.sock.shutdown(Shutdown::Write);
        Ok(())
    }
}

pub(super) fn payload_bytes(p: &Payload) -> Cow<'_, [u8]> {
    match p {
        Payload::Bytes(b) => Cow::Borrowed(b),
        Payload::Words { words, len_bytes } => match le_bytes(words) {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..*len_bytes]),
            Cow::Owned(mut v) => {
                v.truncate(*len_bytes);
                Cow::Owned(v)
            }
        },
    }
}

pub(super) fn writer_main(shared: &LinkShared, queue: Receiver<Cmd>, core: &Weak<Core>) {
    let mut w = TlsWriter { shared, out: Vec::with_capacity(WRITE_CHUNK + (WRITE_CHUNK >> 4)) };
    let beat = heartbeat_interval(shared.timeout);
    loop {
        let cmd = match queue.recv_timeout(beat) {
            Ok(cmd) => Some(cmd),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if shared.aborting() {
            w.send_abort();
            return;
        }
        let r = match cmd {
            // Nothing to send for a while: tell the peer this party is alive.
            None => w.frame(FrameKind::Heartbeat, &[], &[]),
            Some(Cmd::Data(depth, p, deliver_at)) => {
                // A modelled network: the frame is written when it would arrive (loopback
                // then carries it at once); frames behind it queue as on a real link.
                if let Some(t) = deliver_at {
                    thread::sleep(t.saturating_duration_since(Instant::now()));
                }
                w.frame(FrameKind::Data, &depth.to_le_bytes(), &payload_bytes(&p))
            }
            Some(Cmd::Bye) => {
                let r = w.send_bye();
                if let Err(e) = r {
                    if shared.live() {
                        if let Some(c) = core.upgrade() {
                            c.fail(e);
                        }
                    }
                }
                return;
            }
            Some(Cmd::Abort) => {
                w.send_abort();
                return;
            }
        };
        if let Err(e) = r {
            if shared.live() {
                // A write fails when the peer has gone; if it left an abort frame saying
                // why, let the reader deliver it first so that the error names the cause.
                let until = Instant::now() + ABORT_GRACE;
                while !shared.read_ended.load(Ordering::SeqCst) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(2));
                }
                if let Some(c) = core.upgrade() {
                    c.fail(e);
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_four_times_per_timeout_within_bounds() {
        assert_eq!(heartbeat_interval(Duration::from_millis(1000)), Duration::from_millis(250));
        assert_eq!(heartbeat_interval(Duration::from_millis(4)), Duration::from_millis(5));
        assert_eq!(heartbeat_interval(Duration::from_secs(3600)), Duration::from_secs(5));
    }

    #[test]
    fn a_payload_is_its_bytes_on_the_wire() {
        let p = Payload::Words { words: vec![0x0807_0605_0403_0201, 0x1009], len_bytes: 10 };
        assert_eq!(&*payload_bytes(&p), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10]);
        assert_eq!(&*payload_bytes(&Payload::Bytes(vec![7, 8])), &[7, 8]);
    }
}
