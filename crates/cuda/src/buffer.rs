//! The buffer type: ring elements resident in GPU memory.

use cudarc::driver::{CudaSlice, CudaView};

/// A buffer of ring elements in GPU memory.
///
/// The allocation holds at least one element (CUDA does not allocate zero bytes); `len`
/// is the logical length.
pub struct CudaBuffer {
    pub(crate) data: CudaSlice<u64>,
    pub(crate) len: usize,
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer({} elements on cuda:{})", self.len, self.data.ordinal())
    }
}

impl CudaBuffer {
    /// The number of ring elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The underlying cudarc slice (at least one element long).
    pub fn slice(&self) -> &CudaSlice<u64> {
        &self.data
    }
    pub(crate) fn view(&self, offset: usize) -> CudaView<'_, u64> {
        self.data.slice(offset..)
    }
}
