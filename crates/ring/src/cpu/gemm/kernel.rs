//! The micro-kernels: one `mr x nr` tile of `C` from packed panels over Winograd pairs,
//! and the run-time choice between them.

#[cfg(target_arch = "x86_64")]
use super::x86;

/// A ring GEMM micro-kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AVX-512F/DQ: `vpmullq` on `zmm` registers, `8 x 16` tiles.
    Avx512,
    /// AVX2: 64-bit products from `vpmuludq` pieces, `4 x 8` tiles.
    Avx2,
    /// Portable scalar code, `4 x 4` tiles.
    Scalar,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        if Kernel::Avx512.is_available() {
            Kernel::Avx512
        } else if Kernel::Avx2.is_available() {
            Kernel::Avx2
        } else {
            Kernel::Scalar
        }
    }

    /// Every kernel this CPU supports, fastest first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar].into_iter().filter(|k| k.is_available()).collect()
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2 => false,
            Kernel::Scalar => true,
        }
    }

    /// A short name, e.g. `avx512 (vpmullq, 8x16, winograd)`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512 (vpmullq zmm, 8x16 tile, Winograd pairs)",
            Kernel::Avx2 => "avx2 (3x vpmuludq ymm, 4x8 tile, Winograd pairs)",
            Kernel::Scalar => "scalar (4x4 tile, Winograd pairs)",
        }
    }

    pub(super) fn mr(self) -> usize {
        match self {
            Kernel::Avx512 => 8,
            Kernel::Avx2 => 4,
            Kernel::Scalar => 4,
        }
    }

    pub(super) fn nr(self) -> usize {
        match self {
            Kernel::Avx512 => 16,
            Kernel::Avx2 => 8,
            Kernel::Scalar => 4,
        }
    }

    /// Runs the micro-kernel: `out (mr x nr) = Σ_{l < kp} (a_{2l} + b_{2l+1}) ∘ (a_{2l+1} + b_{2l})`
    /// over packed panels `a` (`2kp x mr`) and `b` (`2kp x nr`).
    pub(super) fn run(self, kp: usize, a: &[u64], b: &[u64], out: &mut [u64]) {
        let (mr, nr) = (self.mr(), self.nr());
        assert!(a.len() >= 2 * kp * mr && b.len() >= 2 * kp * nr && out.len() >= mr * nr);
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                debug_assert!(self.is_available());
                // SAFETY: `gemm_with` only dispatches here after `is_available` confirmed
                // AVX-512F/DQ, and the lengths were checked just above.
                unsafe { x86::kernel_avx512(kp, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                debug_assert!(self.is_available());
                // SAFETY: as above, for AVX2.
                unsafe { x86::kernel_avx2(kp, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) }
            }
            _ => kernel_scalar(kp, a, b, out),
        }
    }
}

/// Portable micro-kernel, `4 x 4`.
fn kernel_scalar(kp: usize, a: &[u64], b: &[u64], out: &mut [u64]) {
    const MR: usize = 4;
    const NR: usize = 4;
    let mut acc = [[0u64; NR]; MR];
    for (ap, bp) in a.chunks_exact(2 * MR).zip(b.chunks_exact(2 * NR)).take(kp) {
        let (a0, a1) = ap.split_at(MR);
        let (b0, b1) = bp.split_at(NR);
        for i in 0..MR {
            for j in 0..NR {
                let p = a0[i].wrapping_add(b1[j]).wrapping_mul(a1[i].wrapping_add(b0[j]));
                acc[i][j] = acc[i][j].wrapping_add(p);
            }
        }
    }
    for (o, row) in out.chunks_exact_mut(NR).zip(&acc) {
        o.copy_from_slice(row);
    }
}
