//! # triad-ring: tensors over Z_{2^64} and the device seam
//!
//! Every value in triad, public or a share, is a tensor of `u64` ring elements with
//! wrapping arithmetic. This crate owns three things:
//!
//! - [`Device`]: the one trait between protocol code and hardware. Protocols are written
//!   once against it and never know whether they run on the CPU or a GPU.
//! - [`Tensor`]: a shape plus a device buffer, with shape-checked operations that return a
//!   typed [`RingError`] instead of panicking.
//! - [`CpuDevice`]: the CPU implementation (rayon; a register-blocked ring GEMM for matrix
//!   products and convolutions, whose patch matrix is packed straight from the image).
//!
//! - [`Profiled`]: any device with a [`triad_profile`] span around each call (where a
//!   party's time goes, for `triad bench --profile`).
//!
//! The PRG ([`prg`]) is defined here too, because every device must reproduce the same
//! stream bit for bit.
//!
//! ```
//! use triad_ring::{CpuDevice, Tensor};
//! let dev = CpuDevice::new();
//! let a = Tensor::from_vec(&dev, [2, 2], vec![1, 2, 3, u64::MAX]).unwrap();
//! let b = a.add(&a).unwrap();
//! assert_eq!(b.to_vec().unwrap(), vec![2, 4, 6, u64::MAX - 1]);
//! ```

pub mod cpu;
pub mod device;
pub mod dry;
pub mod prg;
pub mod profiled;
pub mod shape;
pub mod tensor;

pub use cpu::CpuDevice;
pub use device::{
    Addend, BinaryOp, BitRange, Device, DeviceError, DeviceResult, Placed, PrgTerm, RowAnd, Rows, UnaryOp,
};
pub use dry::{DryBuffer, DryRunDevice};
pub use prg::PrgKey;
pub use profiled::Profiled;
pub use shape::{Conv2dParams, MatmulSpec, Pool2dParams, Shape, StridedLayout};
pub use tensor::Tensor;

/// Errors of tensor operations: caught before a device sees bad sizes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RingError {
    /// Two operands' shapes do not fit the operation.
    #[error("{op}: shapes {left} and {right} do not fit")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Expected or left shape.
        left: Shape,
        /// Given or right shape.
        right: Shape,
    },
    /// A buffer's length does not match a shape.
    #[error("{len} elements do not fill shape {shape}")]
    Length {
        /// The shape.
        shape: Shape,
        /// The element count given.
        len: usize,
    },
    /// An operation needs a tensor of a given rank.
    #[error("{op} needs rank {expected}, got shape {shape}")]
    Rank {
        /// The operation.
        op: &'static str,
        /// The rank it needs.
        expected: usize,
        /// The shape given.
        shape: Shape,
    },
    /// An axis outside the tensor.
    #[error("axis {axis} is outside shape {shape}")]
    Axis {
        /// The axis.
        axis: usize,
        /// The shape.
        shape: Shape,
    },
    /// Inconsistent operation parameters.
    #[error("{op}: {detail}")]
    Params {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
}
