//! Conversions between `triad-spec`'s plain records and `triad-ring`'s.

use triad_ring::{BinaryOp, Conv2dParams, MatmulSpec, Pool2dParams, UnaryOp};
use triad_spec::ring::{BinOp, Conv2d, Matmul, Pool2d, UnOp};

/// The ring's binary op for a spec op.
pub fn binary_op(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        BinOp::Xor => BinaryOp::Xor,
        BinOp::And => BinaryOp::And,
        BinOp::Or => BinaryOp::Or,
    }
}

/// The ring's unary op for a spec op.
pub fn unary_op(op: UnOp) -> UnaryOp {
    match op {
        UnOp::Neg => UnaryOp::Neg,
        UnOp::Not => UnaryOp::Not,
        UnOp::Shl(s) => UnaryOp::Shl(s),
        UnOp::ShrLogical(s) => UnaryOp::ShrLogical(s),
        UnOp::ShrArith(s) => UnaryOp::ShrArith(s),
    }
}

/// The ring's matmul record.
pub fn matmul(s: &Matmul) -> MatmulSpec {
    MatmulSpec { batch: s.batch, m: s.m, k: s.k, n: s.n, a_trans: s.a_trans, b_trans: s.b_trans }
}

/// The ring's convolution record.
pub fn conv(p: &Conv2d) -> Conv2dParams {
    Conv2dParams {
        batch: p.batch,
        in_c: p.in_c,
        in_h: p.in_h,
        in_w: p.in_w,
        out_c: p.out_c,
        kh: p.kh,
        kw: p.kw,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
        groups: p.groups,
    }
}

/// The ring's pooling record.
pub fn pool(p: &Pool2d) -> Pool2dParams {
    Pool2dParams {
        batch: p.batch,
        channels: p.channels,
        in_h: p.in_h,
        in_w: p.in_w,
        kh: p.kh,
        kw: p.kw,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
    }
}

/// The spec's convolution record for the ring's.
pub fn conv_back(p: &Conv2dParams) -> Conv2d {
    Conv2d {
        batch: p.batch,
        in_c: p.in_c,
        in_h: p.in_h,
        in_w: p.in_w,
        out_c: p.out_c,
        kh: p.kh,
        kw: p.kw,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
        groups: p.groups,
    }
}

/// The spec's pooling record for the ring's.
pub fn pool_back(p: &Pool2dParams) -> Pool2d {
    Pool2d {
        batch: p.batch,
        channels: p.channels,
        in_h: p.in_h,
        in_w: p.in_w,
        kh: p.kh,
        kw: p.kw,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
    }
}
