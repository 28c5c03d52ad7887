//! Pinned host staging buffers: every host transfer of the CUDA device (`from_host`,
//! `to_host`, the transport boundary) goes through page-locked host memory allocated with
//! `cuMemHostAlloc`, so that the copy engine can move it by DMA, asynchronously.
//!
//! **The pool.** Each device allocates [`STAGING_BUFFERS`] buffers of
//! [`STAGING_CHUNK_ELEMS`] ring elements (4 MiB each, 8 MiB pinned per device) when it is
//! created, and reuses them for every transfer; it never allocates per call and never
//! grows. A transfer longer than one buffer goes in chunks, alternating between the
//! buffers: while the copy engine moves one chunk, the host fills (upload) or drains
//! (download) the other. The buffers are allocated without `CU_MEMHOSTALLOC_WRITECOMBINED`
//! (cudarc's default) because downloads are read back by the host, and host reads of
//! write-combined memory are uncached.
//!
//! **Synchronisation.** Each buffer has an event, recorded on the device's stream after
//! every copy to or from it; the host waits on that event before it writes, reads, reuses
//! or frees the buffer. So an upload returns once its data is in pinned memory (the caller
//! may drop its slice at once), while the last chunk's copy may still be in flight; a
//! download returns once every chunk has landed and been copied out. (cudarc's
//! `PinnedHostSlice` records its own event only when a second stream exists, which this
//! device never creates, so the events here are ours.)
//!
//! **Fallback.** If pinned memory cannot be allocated, the device says so once on stderr
//! and transfers from and to pageable memory (cudarc's plain slices, which the driver copies
//! synchronously): slower, never wrong. [`CudaDevice::pinned_staging`] tells which.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, Once};

use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, DriverError, PinnedHostSlice};
use triad_ring::device::{DeviceError, DeviceResult};

use crate::CudaDevice;

/// Ring elements in one staging buffer (4 MiB): a transfer's chunk.
pub const STAGING_CHUNK_ELEMS: usize = 1 << 19;
/// Staging buffers per device: two, so the host works on one while the copy engine works
/// on the other.
pub const STAGING_BUFFERS: usize = 2;
// A download queues chunk i + 1 before draining chunk i: two buffers at least.
const _: () = assert!(STAGING_BUFFERS >= 2);

/// One page-locked staging buffer and the event that says when the stream is done with it.
pub(crate) struct Buffer {
    host: PinnedHostSlice<u64>,
    /// Recorded after each copy to or from `host`; waited on before the host touches it.
    done: CudaEvent,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // Before `host` is freed (after this, as a field): no copy may still use it. An
        // error here was the stream's, already reported to whoever queued that work.
        let _ = self.done.synchronize();
    }
}

/// How a device moves data between the host and the GPU.
pub(crate) enum Staging {
    /// Through the pool of pinned buffers (locked for the whole of one transfer).
    Pinned(Mutex<Vec<Buffer>>),
    /// Straight from and to pageable memory: pinned allocation failed.
    Pageable,
}

static PAGEABLE_NOTICE: Once = Once::new();

impl Staging {
    /// The pool of pinned buffers on `ctx`, or the pageable fallback (said once per
    /// process) when `cuMemHostAlloc` fails.
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Staging {
        match Self::pool(ctx) {
            Ok(buffers) => Staging::Pinned(Mutex::new(buffers)),
            Err(e) => {
                PAGEABLE_NOTICE.call_once(|| {
                    eprintln!(
                        "triad-cuda: pinned host memory unavailable (cuMemHostAlloc: {:?}); host transfers use \
                         pageable memory (slower)",
                        e.0
                    );
                });
                Staging::Pageable
            }
        }
    }

    fn pool(ctx: &Arc<CudaContext>) -> Result<Vec<Buffer>, DriverError> {
        (0..STAGING_BUFFERS)
            .map(|_| {
                // SAFETY: the memory is uninitialised; the host writes every element of a
                // chunk (upload) or a copy does (download) before any of it is read.
                let host = unsafe { ctx.alloc_pinned_with_flags::<u64>(STAGING_CHUNK_ELEMS, 0) }?;
                let done = ctx.new_event(None)?;
                Ok(Buffer { host, done })
            })
            .collect()
    }
}

/// The chunks of a transfer of `len` elements.
fn chunks(len: usize) -> impl Iterator<Item = Range<usize>> {
    (0..len).step_by(STAGING_CHUNK_ELEMS).map(move |s| s..(s + STAGING_CHUNK_ELEMS).min(len))
}

impl CudaDevice {
    /// Whether host transfers go through pinned staging buffers (`false`: the pageable
    /// fallback, after pinned allocation failed).
    pub fn pinned_staging(&self) -> bool {
        matches!(self.inner.staging, Staging::Pinned(_))
    }

    /// The locked pool of pinned buffers, or `None` for the pageable fallback.
    fn staging_pool(&self) -> DeviceResult<Option<MutexGuard<'_, Vec<Buffer>>>> {
        match &self.inner.staging {
            Staging::Pinned(pool) => pool.lock().map(Some).map_err(|_| DeviceError::Driver {
                device: self.dev_name(),
                detail: "the staging pool's lock was poisoned by a panic in another thread".to_string(),
            }),
            Staging::Pageable => Ok(None),
        }
    }

    /// Copies `data` into `dst` (at least as long). Returns once `data` has been read; the
    /// last chunk's copy may still be in flight (later work on the stream follows it).
    pub(crate) fn upload(&self, data: &[u64], dst: &mut CudaSlice<u64>) -> DeviceResult<()> {
        let stream = self.stream();
        let Some(mut pool) = self.staging_pool()? else {
            return stream.memcpy_htod(data, dst).map_err(|e| self.drv(e));
        };
        for (i, r) in chunks(data.len()).enumerate() {
            let buf = &mut pool[i % STAGING_BUFFERS];
            // The copy that last used this buffer (chunk i - 2, or an earlier transfer) is done.
            buf.done.synchronize().map_err(|e| self.drv(e))?;
            let host = &mut buf.host.as_mut_slice().map_err(|e| self.drv(e))?[..r.len()];
            host.copy_from_slice(&data[r.clone()]);
            stream.memcpy_htod(host, &mut dst.slice_mut(r)).map_err(|e| self.drv(e))?;
            self.queued_on(buf)?;
        }
        Ok(())
    }

    /// The first `len` elements of `src`. Chunk i + 1 is queued before chunk i is copied
    /// out of its buffer.
    pub(crate) fn download(&self, src: &CudaSlice<u64>, len: usize) -> DeviceResult<Vec<u64>> {
        let stream = self.stream();
        let Some(mut pool) = self.staging_pool()? else {
            return stream.clone_dtoh(&src.slice(..len)).map_err(|e| self.drv(e));
        };
        let mut out = Vec::with_capacity(len);
        let mut queued: Option<(usize, usize)> = None; // (buffer, chunk length) not yet copied out
        for (i, r) in chunks(len).enumerate() {
            let b = i % STAGING_BUFFERS;
            let buf = &mut pool[b];
            buf.done.synchronize().map_err(|e| self.drv(e))?;
            let n = r.len();
            let host = &mut buf.host.as_mut_slice().map_err(|e| self.drv(e))?[..n];
            stream.memcpy_dtoh(&src.slice(r), host).map_err(|e| self.drv(e))?;
            self.queued_on(buf)?;
            if let Some((qb, qn)) = queued.replace((b, n)) {
                self.drain(&mut pool[qb], qn, &mut out)?;
            }
        }
        if let Some((qb, qn)) = queued {
            self.drain(&mut pool[qb], qn, &mut out)?;
        }
        Ok(out)
    }

    /// Records `buf`'s event after the copy just queued on it; if that fails, waits for the
    /// whole stream instead, so that the copy is never left in flight untracked.
    fn queued_on(&self, buf: &Buffer) -> DeviceResult<()> {
        let stream = self.stream();
        buf.done.record(stream).or_else(|_| stream.synchronize()).map_err(|e| self.drv(e))
    }

    /// Waits for the copy into `buf`, then appends its first `n` elements to `out`.
    fn drain(&self, buf: &mut Buffer, n: usize, out: &mut Vec<u64>) -> DeviceResult<()> {
        buf.done.synchronize().map_err(|e| self.drv(e))?;
        out.extend_from_slice(&buf.host.as_slice().map_err(|e| self.drv(e))?[..n]);
        Ok(())
    }
}
