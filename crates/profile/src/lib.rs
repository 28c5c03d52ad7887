//! # triad-profile: where a party's time goes
//!
//! A party's protocol code runs on one thread (its party thread); the arithmetic it asks
//! for runs on the device, and its messages go through the transport. This crate sums the
//! wall time of each kind of work ([`Work`]) on that thread, so that a benchmark can say
//! how much of a training step is matrix products, PRG masks, bit packing, elementwise
//! loops, sending, or waiting on a peer, and how much is none of these (the protocol
//! code's own bookkeeping, allocation outside device calls).
//!
//! Profiling is off unless a thread turns it on with [`start`]; a [`span`] on a thread that
//! has not is one thread-local read. The device wrapper `triad_ring::Profiled` opens a
//! span around every device call, and the transport around every send and receive.
//! Spans nest: an inner span's time is its own kind's and not its parent's (self time),
//! so the kinds add up to at most the wall time between [`start`] and [`finish`].
//!
//! ```
//! use triad_profile::{span, start, finish, Work};
//! start();
//! {
//!     let _s = span(Work::Gemm);
//!     std::thread::sleep(std::time::Duration::from_millis(2));
//! }
//! let p = finish();
//! assert!(p.secs(Work::Gemm) >= 0.002);
//! assert_eq!(p.calls(Work::Gemm), 1);
//! ```

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// A kind of work on a party's thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// Ring matrix products (`matmul`).
    Gemm,
    /// Convolutions, forward and both gradients (im2col and GEMM).
    Conv,
    /// Pooling windows and sums, forward and backward.
    Pool,
    /// The PRG: correlated randomness, masks, dealt shares.
    Prg,
    /// Packing and unpacking bits (the comparison circuit's messages).
    Bits,
    /// Elementwise arithmetic: additions, products, shifts, masks.
    Elementwise,
    /// Layout: strided gathers and scatters, sums over an axis, fills, device copies.
    Layout,
    /// Moving data between the host and the device (on the CPU device, a copy or a move).
    Transfer,
    /// Handing a message to the transport (framing and the copy into its queue).
    Send,
    /// Waiting for a peer's message (and reading it from the queue).
    Wait,
}

impl Work {
    /// Every kind, in the order profiles print them.
    pub const ALL: [Work; 10] = [
        Work::Gemm,
        Work::Conv,
        Work::Pool,
        Work::Prg,
        Work::Bits,
        Work::Elementwise,
        Work::Layout,
        Work::Transfer,
        Work::Send,
        Work::Wait,
    ];

    /// A short column name.
    pub fn as_str(self) -> &'static str {
        match self {
            Work::Gemm => "gemm",
            Work::Conv => "conv",
            Work::Pool => "pool",
            Work::Prg => "prg",
            Work::Bits => "bits",
            Work::Elementwise => "elementwise",
            Work::Layout => "layout",
            Work::Transfer => "transfer",
            Work::Send => "send",
            Work::Wait => "wait",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Time and calls per kind of work, and the wall time they were measured over.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    time: [Duration; 10],
    calls: [u64; 10],
    /// Wall time from [`start`] to the snapshot.
    pub wall: Duration,
}

impl Profile {
    /// Seconds spent in `w` (self time).
    pub fn secs(&self, w: Work) -> f64 {
        self.time[w.index()].as_secs_f64()
    }

    /// Spans of kind `w` opened.
    pub fn calls(&self, w: Work) -> u64 {
        self.calls[w.index()]
    }

    /// Seconds of the wall time in none of the kinds.
    pub fn other_secs(&self) -> f64 {
        (self.wall.as_secs_f64() - self.time.iter().map(Duration::as_secs_f64).sum::<f64>()).max(0.0)
    }

    /// `self - earlier`: what happened between two snapshots of one thread.
    pub fn since(&self, earlier: &Profile) -> Profile {
        let mut out = Profile { wall: self.wall.saturating_sub(earlier.wall), ..Profile::default() };
        for i in 0..out.time.len() {
            out.time[i] = self.time[i].saturating_sub(earlier.time[i]);
            out.calls[i] = self.calls[i].saturating_sub(earlier.calls[i]);
        }
        out
    }
}

struct State {
    began: Instant,
    totals: Profile,
    /// For each open span, the time of the spans nested in it so far.
    nested: Vec<Duration>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Turns profiling on for this thread, from zero.
pub fn start() {
    STATE.with(|s| {
        *s.borrow_mut() = Some(State { began: Instant::now(), totals: Profile::default(), nested: Vec::new() });
    });
}

/// This thread's profile so far (zero when profiling is off); profiling goes on.
pub fn snapshot() -> Profile {
    STATE.with(|s| match &*s.borrow() {
        Some(st) => Profile { wall: st.began.elapsed(), ..st.totals.clone() },
        None => Profile::default(),
    })
}

/// Turns profiling off for this thread and returns its profile.
pub fn finish() -> Profile {
    let p = snapshot();
    STATE.with(|s| *s.borrow_mut() = None);
    p
}

/// An open span: its time goes to its kind when it is dropped.
#[must_use = "a span measures until it is dropped"]
#[derive(Debug)]
pub struct Span {
    open: Option<(Work, Instant)>,
}

/// Opens a span of kind `w` on this thread (a no-op when profiling is off).
pub fn span(w: Work) -> Span {
    let on = STATE.with(|s| match &mut *s.borrow_mut() {
        Some(st) => {
            st.nested.push(Duration::ZERO);
            true
        }
        None => false,
    });
    Span { open: on.then(|| (w, Instant::now())) }
}

impl Drop for Span {
    fn drop(&mut self) {
        let Some((w, t0)) = self.open else { return };
        let took = t0.elapsed();
        STATE.with(|s| {
            if let Some(st) = &mut *s.borrow_mut() {
                let nested = st.nested.pop().unwrap_or_default();
                st.totals.time[w.index()] += took.saturating_sub(nested);
                st.totals.calls[w.index()] += 1;
                if let Some(parent) = st.nested.last_mut() {
                    *parent += took;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[test]
    fn off_by_default_and_after_finish() {
        {
            let _s = span(Work::Prg);
            busy(1);
        }
        assert_eq!(snapshot(), Profile::default());
        start();
        let _ = finish();
        let _s = span(Work::Prg);
        drop(_s);
        assert_eq!(snapshot().calls(Work::Prg), 0);
    }

    #[test]
    fn nested_spans_count_self_time() {
        start();
        let t0 = Instant::now();
        {
            let _outer = span(Work::Send);
            busy(3);
            {
                let _inner = span(Work::Transfer);
                busy(20);
            }
        }
        let outer_wall = t0.elapsed().as_secs_f64();
        let p = finish();
        assert!(p.secs(Work::Transfer) >= 0.020);
        // The outer span's own time excludes the inner one's (at least 20 ms).
        assert!(p.secs(Work::Send) >= 0.003);
        assert!(p.secs(Work::Send) <= outer_wall - p.secs(Work::Transfer));
        assert_eq!((p.calls(Work::Send), p.calls(Work::Transfer)), (1, 1));
        assert!(p.wall.as_secs_f64() >= p.secs(Work::Send) + p.secs(Work::Transfer));
    }

    #[test]
    fn since_is_the_difference_of_snapshots() {
        start();
        drop(span(Work::Gemm));
        let a = snapshot();
        drop(span(Work::Gemm));
        drop(span(Work::Wait));
        let d = finish().since(&a);
        assert_eq!((d.calls(Work::Gemm), d.calls(Work::Wait), d.calls(Work::Prg)), (1, 1, 0));
    }

    #[test]
    fn threads_are_separate() {
        start();
        std::thread::spawn(|| {
            drop(span(Work::Gemm));
            assert_eq!(snapshot().calls(Work::Gemm), 0);
        })
        .join()
        .ok();
        drop(span(Work::Gemm));
        assert_eq!(finish().calls(Work::Gemm), 1);
    }
}
