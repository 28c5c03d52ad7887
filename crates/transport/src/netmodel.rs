//! [`NetModel`]: a modelled network between the parties, for measuring a protocol at a
//! chosen round-trip time and bandwidth on one machine.
//!
//! Each direction of each link is a pipe of `bandwidth` bytes per second followed by a
//! delay of half the round-trip time. A message of `n` bytes sent at `t` starts leaving
//! when the pipe is free (`max(t, busy)`), has left `n / bandwidth` later (the pipe is busy
//! until then), and is delivered half a round trip after that. Sending never blocks the
//! sender, as a real socket's buffer does not; messages in flight overlap as they do on a
//! real link. In process the receiver waits for the delivery time; over TLS the link's
//! writer thread holds each frame until it (the frame then crosses loopback at once). The
//! model adds no loss, jitter or reordering.

use std::time::{Duration, Instant};

/// Round-trip time and bandwidth of every link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetModel {
    /// Round-trip time: each message is delivered half of it after it has left.
    pub rtt: Duration,
    /// Bytes per second each direction of a link carries.
    pub bytes_per_sec: u64,
}

impl NetModel {
    /// A link of `rtt_ms` milliseconds round trip and `gbps` Gbit/s, or an error naming the
    /// value that is not a usable one.
    pub fn new(rtt_ms: f64, gbps: f64) -> Result<NetModel, String> {
        if !(rtt_ms.is_finite() && (0.0..=60_000.0).contains(&rtt_ms)) {
            return Err(format!("round-trip time {rtt_ms} ms: must be between 0 and 60000"));
        }
        if !(gbps.is_finite() && (1e-6..=1e4).contains(&gbps)) {
            return Err(format!("bandwidth {gbps} Gbit/s: must be between 1e-6 and 1e4"));
        }
        Ok(NetModel { rtt: Duration::from_secs_f64(rtt_ms / 1e3), bytes_per_sec: (gbps * 1e9 / 8.0).round() as u64 })
    }

    /// How long `bytes` take to leave at this bandwidth.
    pub fn serialisation(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec.max(1) as f64)
    }

    /// The model's prediction for a run of `rounds` sequential rounds that sends `bytes`
    /// on its busiest link direction, `compute` aside: `rounds · rtt/2 + bytes / bandwidth`
    /// (rounds as causal depth, each a one-way message; see the crate's cost accounting).
    pub fn predict(&self, rounds: u64, bytes: u64) -> Duration {
        self.rtt / 2 * rounds as u32 + self.serialisation(bytes)
    }
}

/// One direction of a link under a [`NetModel`]: when the pipe is next free.
#[derive(Debug)]
pub(crate) struct Pipe {
    busy: Instant,
}

impl Pipe {
    pub(crate) fn new() -> Pipe {
        Pipe { busy: Instant::now() }
    }

    /// A message of `bytes` bytes sent now: when it is delivered.
    pub(crate) fn deliver_at(&mut self, m: &NetModel, bytes: u64) -> Instant {
        let left = self.busy.max(Instant::now()) + m.serialisation(bytes);
        self.busy = left;
        left + m.rtt / 2
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_model_are_refused() {
        assert!(NetModel::new(-1.0, 1.0).is_err());
        assert!(NetModel::new(f64::NAN, 1.0).is_err());
        assert!(NetModel::new(1.0, 0.0).is_err());
        assert!(NetModel::new(1.0, f64::INFINITY).is_err());
        let m = NetModel::new(40.0, 1.0).unwrap();
        assert_eq!(m.rtt, Duration::from_millis(40));
        assert_eq!(m.bytes_per_sec, 125_000_000);
    }

    #[test]
    fn a_busy_pipe_queues_messages_behind_each_other() {
        let m = NetModel::new(10.0, 0.008).unwrap(); // 1 MB/s: 1,000 bytes take 1 ms
        let mut p = Pipe::new();
        let t0 = Instant::now();
        let a = p.deliver_at(&m, 10_000);
        let b = p.deliver_at(&m, 10_000);
        // a leaves after 10 ms and arrives 5 ms later; b leaves 10 ms after a.
        let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
        assert!((ms(a) - 15.0).abs() < 1.0, "{}", ms(a));
        assert!((ms(b) - 25.0).abs() < 1.0, "{}", ms(b));
        assert_eq!(m.predict(4, 2_000), Duration::from_millis(22));
    }
}
