//! The packed path: both operands packed into panels of the kernel's tile, the inner
//! dimension cut into cache blocks, blocks of `C` in parallel.

use rayon::prelude::*;

use super::super::operand::{for_span, Operand, Out, Piece};
use super::Kernel;

/// Inner-dimension pairs per cache block (`KC = 2 * KC_PAIRS` steps). The kernel does
/// so much ALU work per loaded byte (48 cycles per 384 bytes of panels) that panels
/// streaming from L2 keep it busy; a long block saves read-modify-write passes over `C`.
const KC_PAIRS: usize = 512;
/// Packing buffers at most this long (elements) are kept per thread for reuse, which
/// saves the page faults of fresh allocations.
const KEEP_BUF: usize = 1 << 22;
/// Operands that pack into fewer elements than this are packed on one thread: waking
/// the others costs more.
const PAR_PACK: usize = 1 << 15;
/// Largest row block of one parallel task.
const MC_MAX: usize = 256;
/// Largest column block of one parallel task.
const NC_MAX: usize = 512;

/// The packed path: packs both operands into panels and runs the micro-kernel over blocks
/// of the output in parallel.
pub(super) fn gemm_packed(kernel: Kernel, m: usize, k: usize, n: usize, a: &dyn Operand, b: &dyn Operand, out: Out) {
    if m == 0 || n == 0 {
        return;
    }
    assert_eq!(out.m, m, "gemm: the output has {} rows, needs {m}", out.m);
    if k == 0 {
        out.pieces.into_iter().for_each(|(_, _, s)| s.fill(0));
        return;
    }
    let (mr, nr) = (kernel.mr(), kernel.nr());
    let kpad = k + (k & 1);
    let (mut pa, mut pb) = (take_buf(0), take_buf(1));
    let ra = pack(a, m, k, kpad, mr, &mut pa);
    let cb = pack(b, n, k, kpad, nr, &mut pb);

    // Split the output into blocks: at most MC_MAX x NC_MAX, and enough of them to keep
    // every thread busy.
    let threads = rayon::current_num_threads().max(1);
    let (mut mc, mut nc) = (round_up(m.min(MC_MAX), mr), round_up(n.min(NC_MAX), nr));
    while m.div_ceil(mc) * n.div_ceil(nc) < 4 * threads {
        if nc >= mc && nc > 2 * nr {
            nc = round_up(nc / 2, nr);
        } else if mc > 2 * mr {
            mc = round_up(mc / 2, mr);
        } else if nc > nr {
            nc = round_up(nc / 2, nr);
        } else {
            break;
        }
    }
    let (mb, nb) = (m.div_ceil(mc), n.div_ceil(nc));

    // Hand each block its pieces of C, cut at the block boundaries (still sorted by row
    // and column).
    let mut blocks: Vec<Vec<Piece>> = (0..mb * nb).map(|_| Vec::new()).collect();
    for (i, mut j, mut s) in out.pieces {
        while !s.is_empty() {
            let jb = j / nc;
            let len = ((jb + 1) * nc - j).min(s.len());
            let (head, tail) = s.split_at_mut(len);
            blocks[(i / mc) * nb + jb].push((i, j, head));
            (j, s) = (j + len, tail);
        }
    }

    let kp = kpad / 2;
    let nkb = kp.div_ceil(KC_PAIRS);
    let kcp = kp.div_ceil(nkb);
    let ctx = Ctx { kernel, kpad, pa: &pa, pb: &pb, ra: &ra, cb: &cb, kcp, kp };
    blocks.into_par_iter().enumerate().for_each(|(bi, mut pieces)| {
        let (i0, j0) = ((bi / nb) * mc, (bi % nb) * nc);
        ctx.block(i0, j0, mc.min(m - i0), nc.min(n - j0), &mut pieces);
    });
    put_buf(0, pa);
    put_buf(1, pb);
}

thread_local! {
    static BUFS: std::cell::RefCell<[Vec<u64>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// This thread's kept packing buffer `i` (possibly empty).
fn take_buf(i: usize) -> Vec<u64> {
    BUFS.with(|b| std::mem::take(&mut b.borrow_mut()[i]))
}

/// Returns a packing buffer for reuse by the next product on this thread.
fn put_buf(i: usize, buf: Vec<u64>) {
    if buf.capacity() <= KEEP_BUF {
        BUFS.with(|b| b.borrow_mut()[i] = buf);
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to).max(1) * to
}

struct Ctx<'a> {
    kernel: Kernel,
    kpad: usize,
    pa: &'a [u64],
    pb: &'a [u64],
    ra: &'a [u64],
    cb: &'a [u64],
    kcp: usize,
    kp: usize,
}

impl Ctx<'_> {
    /// Computes the `bm x bn` block of C whose top-left corner is `(i0, j0)` into
    /// `pieces`, the parts of C in the block sorted by row and column.
    fn block(&self, i0: usize, j0: usize, bm: usize, bn: usize, pieces: &mut [Piece]) {
        let (mr, nr) = (self.kernel.mr(), self.kernel.nr());
        // Row i0 + r's pieces are pieces[starts[r]..starts[r + 1]].
        let mut starts = vec![0; bm + 1];
        for &(i, _, _) in pieces.iter() {
            starts[i - i0 + 1] += 1;
        }
        for r in 0..bm {
            starts[r + 1] += starts[r];
        }
        let mut tile = [0u64; 8 * 16];
        let mut l0 = 0;
        while l0 < self.kp {
            let lk = self.kcp.min(self.kp - l0);
            let first = l0 == 0;
            for jr in (0..bn).step_by(nr) {
                let jp = (j0 + jr) / nr;
                let bpanel = &self.pb[jp * self.kpad * nr + 2 * l0 * nr..][..2 * lk * nr];
                let nv = nr.min(bn - jr);
                for ir in (0..bm).step_by(mr) {
                    let ip = (i0 + ir) / mr;
                    let apanel = &self.pa[ip * self.kpad * mr + 2 * l0 * mr..][..2 * lk * mr];
                    self.kernel.run(lk, apanel, bpanel, &mut tile);
                    let mv = mr.min(bm - ir);
                    for ii in 0..mv {
                        let t = &tile[ii * nr..ii * nr + nv];
                        let r = self.ra[i0 + ir + ii];
                        let cc = &self.cb[j0 + jr..j0 + jr + nv];
                        let row = &mut pieces[starts[ir + ii]..starts[ir + ii + 1]];
                        for_span(row, j0 + jr, nv, |o, dst| {
                            if first {
                                for ((d, &t), &cj) in dst.iter_mut().zip(&t[o..]).zip(&cc[o..]) {
                                    *d = t.wrapping_sub(r).wrapping_sub(cj);
                                }
                            } else {
                                for (d, &t) in dst.iter_mut().zip(&t[o..]) {
                                    *d = d.wrapping_add(t);
                                }
                            }
                        });
                    }
                }
            }
            l0 += lk;
        }
    }
}

/// Packs an operand of `lines x k` into panels of `w` lines: panel `p` holds `kpad x w`
/// values, entry `(x, kk)` at `kk * w + (x - p*w)`, zero-padded. Also returns the
/// Winograd line terms `Σ_l op(x, 2l) op(x, 2l+1)` (length `lines` rounded up to `w`).
fn pack(op: &dyn Operand, lines: usize, k: usize, kpad: usize, w: usize, buf: &mut Vec<u64>) -> Vec<u64> {
    let panels = lines.div_ceil(w);
    buf.resize(panels * kpad * w, 0);
    let mut corr = vec![0u64; panels * w];
    let pack_panel = |(p, (dst, corr)): (usize, (&mut [u64], &mut [u64]))| {
        let cnt = w.min(lines - p * w);
        // The buffer may be reused: the padding lines and inner step must be zero.
        if cnt < w {
            dst.chunks_mut(w).for_each(|row| row[cnt..].fill(0));
        }
        dst[k * w..].fill(0);
        op.pack(p * w, cnt, k, w, dst);
        winograd_terms(dst, w, corr);
    };
    if buf.len() < PAR_PACK {
        buf.chunks_mut(kpad * w).zip(corr.chunks_mut(w)).enumerate().for_each(pack_panel);
    } else {
        buf.par_chunks_mut(kpad * w).zip(corr.par_chunks_mut(w)).enumerate().for_each(pack_panel);
    }
    corr
}

/// `corr[x] = Σ_l panel[2l][x] * panel[2l+1][x]` for a packed panel of width `w`.
fn winograd_terms(panel: &[u64], w: usize, corr: &mut [u64]) {
    for pair in panel.chunks_exact(2 * w) {
        let (even, odd) = pair.split_at(w);
        for ((c, &e), &o) in corr.iter_mut().zip(even).zip(odd) {
            *c = c.wrapping_add(e.wrapping_mul(o));
        }
    }
}
