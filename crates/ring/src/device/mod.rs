//! The `Device` trait: the one seam between protocol code and hardware.
//!
//! Everything a protocol does to its local shares is one of these methods. A device owns
//! its buffers (`Device::Buffer`): host memory for [`CpuDevice`](crate::CpuDevice), GPU
//! memory for the CUDA device. Methods take validated sizes (the [`Tensor`](crate::Tensor)
//! layer checks shapes) and return `Result` because a real accelerator can fail (out of
//! memory, a lost context); the CPU device never does.
//!
//! The trait is deliberately small and data-parallel: a GPU implements each method as one
//! or a few kernels over resident buffers, with no host round trip.

use crate::prg::PrgKey;
use crate::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};

/// A failure inside a device (never a shape error: those are caught before).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The device ran out of memory.
    #[error("{device}: out of memory allocating {bytes} bytes")]
    OutOfMemory {
        /// Device name.
        device: String,
        /// Requested size.
        bytes: usize,
    },
    /// The device is not present or its driver could not be loaded.
    #[error("{device} unavailable: {reason}")]
    Unavailable {
        /// Device name.
        device: String,
        /// Why.
        reason: String,
    },
    /// A driver or kernel call failed.
    #[error("{device}: {detail}")]
    Driver {
        /// Device name.
        device: String,
        /// The driver's message.
        detail: String,
    },
}

/// Elementwise binary operations, all wrapping mod 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b mod 2^64`
    Add,
    /// `a - b mod 2^64`
    Sub,
    /// `a * b mod 2^64`
    Mul,
    /// `a ^ b`
    Xor,
    /// `a & b`
    And,
    /// `a | b`
    Or,
}

impl BinaryOp {
    /// Applies the operation to one pair of ring elements.
    #[inline(always)]
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            BinaryOp::Add => a.wrapping_add(b),
            BinaryOp::Sub => a.wrapping_sub(b),
            BinaryOp::Mul => a.wrapping_mul(b),
            BinaryOp::Xor => a ^ b,
            BinaryOp::And => a & b,
            BinaryOp::Or => a | b,
        }
    }
}

/// Elementwise unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-a mod 2^64`
    Neg,
    /// `!a` (bitwise complement)
    Not,
    /// `a << s`, `s < 64`
    Shl(u32),
    /// Logical `a >> s`, `s < 64`
    ShrLogical(u32),
    /// Arithmetic `a >> s` (two's complement), `s < 64`
    ShrArith(u32),
}

impl UnaryOp {
    /// Applies the operation to one ring element. Shift amounts are taken mod 64.
    #[inline(always)]
    pub fn apply(self, a: u64) -> u64 {
        match self {
            UnaryOp::Neg => a.wrapping_neg(),
            UnaryOp::Not => !a,
            UnaryOp::Shl(s) => a.wrapping_shl(s),
            UnaryOp::ShrLogical(s) => a.wrapping_shr(s),
            UnaryOp::ShrArith(s) => ((a as i64).wrapping_shr(s)) as u64,
        }
    }
}

/// Shorthand for device results.
pub type DeviceResult<T> = Result<T, DeviceError>;

/// The hardware seam. See the module docs.
///
/// Conventions: buffers are flat arrays of `u64`; tensors are row-major; images are NCHW;
/// conv weights are `[out_c, in_c / groups, kh, kw]`. Every method's result is a pure
/// function of its inputs, identical bit for bit on every device.
pub trait Device: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A buffer of ring elements resident on this device.
    type Buffer: Send + Sync + std::fmt::Debug;

    /// A short human name, e.g. `cpu` or `cuda:0 (NVIDIA H100)`.
    fn name(&self) -> String;

    // ---- memory ----------------------------------------------------------------
    /// Number of elements in `buf`.
    fn len(&self, buf: &Self::Buffer) -> usize;
    /// A buffer of `len` copies of `value`.
    fn fill(&self, len: usize, value: u64) -> DeviceResult<Self::Buffer>;
    /// Copies host data to the device. (`from_*` with `&self`: the device is the factory.)
    #[allow(clippy::wrong_self_convention)]
    fn from_host(&self, data: &[u64]) -> DeviceResult<Self::Buffer>;
    /// Moves host data to the device (no copy on the CPU device).
    #[allow(clippy::wrong_self_convention)]
    fn from_host_vec(&self, data: Vec<u64>) -> DeviceResult<Self::Buffer> {
        self.from_host(&data)
    }
    /// Copies a buffer back to the host.
    fn to_host(&self, buf: &Self::Buffer) -> DeviceResult<Vec<u64>>;
    /// Moves a buffer back to the host: [`to_host`](Device::to_host) of a buffer that is
    /// no longer needed (no copy on the CPU device, whose buffers are host vectors; a
    /// message about to be sent need not be copied first). (`into_*` with `&self`: the
    /// device is the one that owns the buffer.)
    #[allow(clippy::wrong_self_convention)]
    fn into_host(&self, buf: Self::Buffer) -> DeviceResult<Vec<u64>> {
        self.to_host(&buf)
    }
    /// A copy of `buf` on the same device.
    fn copy(&self, buf: &Self::Buffer) -> DeviceResult<Self::Buffer>;

    // ---- elementwise -----------------------------------------------------------
    /// `op(a)` elementwise.
    fn unary(&self, op: UnaryOp, a: &Self::Buffer) -> DeviceResult<Self::Buffer>;
    /// `op(a, b)` elementwise; `a` and `b` have equal lengths.
    fn binary(&self, op: BinaryOp, a: &Self::Buffer, b: &Self::Buffer) -> DeviceResult<Self::Buffer>;
    /// `a = op(a, b)` elementwise, in place.
    fn binary_assign(&self, op: BinaryOp, a: &mut Self::Buffer, b: &Self::Buffer) -> DeviceResult<()>;
    /// `op(a, s)` with a public scalar `s`.
    fn binary_scalar(&self, op: BinaryOp, a: &Self::Buffer, s: u64) -> DeviceResult<Self::Buffer>;

    // ---- fused elementwise ---------------------------------------------------------
    // Each is a short sequence of the methods above in one pass over memory: a comparison
    // circuit's local work is many cheap bitwise steps over large buffers, and one pass per
    // step made it memory-bound. The default implementations (in [`fused`]) are those
    // sequences, so a device gets the method without writing a kernel; a device overrides
    // one only with a result identical bit for bit.

    /// A fresh buffer of `len` words, zero but for the pieces: for each piece,
    /// `out[at + t] = src[from + t]` for `t < count`. Pieces must lie inside `out` and their
    /// sources; a piece that does not is an error. Fused: a slice and a placement per piece,
    /// plus the zeros, become one write of `out`; the sign circuit assembles the thirds of
    /// its summands' rows so, and the bit injection its output components.
    fn place(&self, len: usize, pieces: &[Placed<'_, Self::Buffer>]) -> DeviceResult<Self::Buffer> {
        fused::place(self, len, pieces)
    }

    /// The local part of a masked AND of replicated XOR shares, shifted operand:
    /// with `y'_k = y_k << y_shl` (`y_shl < 64`),
    /// `(x[0] & (y'[0] ^ y'[1]) ^ x[1] & y'[0] ^ r[0] ^ r[1]) & mask`, that is party `i`'s
    /// 3-out-of-3 part `x_i y_i ^ x_i y_{i+1} ^ x_{i+1} y_i ^ β_i` of `x & (y << y_shl)` with
    /// `β_i = r[0] ^ r[1]` its part of a zero sharing (the two PRG draws), keeping the
    /// `mask` lanes. All six buffers have equal lengths. Fused: nine passes (shifts, ANDs,
    /// XORs, mask: up to nine) become one.
    fn and_part(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        y_shl: u32,
        r: [&Self::Buffer; 2],
        mask: u64,
    ) -> DeviceResult<Self::Buffer> {
        fused::and_part(self, x, y, y_shl, r, mask)
    }

    /// [`and_part`](Device::and_part) packed, with its zero sharing drawn for the packed
    /// words only: the [`pack_bits`](Device::pack_bits) stream of `and_part(x, y, y_shl,
    /// [0, 0], mask)`, XOR-ed word by word with words `0 .. W` of the PRG streams
    /// `(keys[0], stream)` and `(keys[1], stream)`, as [`prg_fill`](Device::prg_fill) gives
    /// them (`W` the stream's words; the unused high bits of its last word carry the draws
    /// too). Fused: nothing the size of the operands is written, and a narrow mask draws
    /// few words.
    fn and_part_packed(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        y_shl: u32,
        keys: [&PrgKey; 2],
        stream: u64,
        mask: u64,
    ) -> DeviceResult<Self::Buffer> {
        fused::and_part_packed(self, x, y, y_shl, keys, stream, mask)
    }

    /// [`and_part_packed`](Device::and_part_packed) of row selections, every lane kept and
    /// no shift, with a third selection XOR-ed in: the operands are `op.rows` rows of
    /// `op.width` words each, row `r` of a selection `o` being row `o.first + r * o.step` of
    /// `o.buf`, and word `t` of the result (`rows * width` words) is
    /// `x0 & (y0 ^ y1) ^ x1 & y0 ^ plus ^ F(keys[0], stream)[t] ^ F(keys[1], stream)[t]` on
    /// the selected words (`plus` 0 when `None`). A bit-sliced circuit's round ANDs every
    /// other row of the last one's results and XORs in a component of a replicated sharing
    /// (`G_hi` in `G = G_hi ^ P_hi & G_lo`): fused, no operand is gathered first.
    fn and_rows(&self, op: &RowAnd<'_, Self::Buffer>, keys: [&PrgKey; 2], stream: u64) -> DeviceResult<Self::Buffer> {
        fused::and_rows(self, op, keys, stream)
    }

    /// `a[j] += ±F(key, stream)[j]` for every term in order: words `0 .. len(a)` of each
    /// PRG stream, as [`prg_fill`](Device::prg_fill) gives them, added (subtracted when
    /// `negate`) in place. Fused: the draws need not be written to memory and read back (a
    /// CPU device makes them a piece at a time in cache). A zero sharing added to a
    /// product's part is the terms `(k_i, s, +)` and `(k_{i+1}, s, -)`.
    fn add_prg(&self, a: &mut Self::Buffer, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
        fused::add_prg(self, a, terms)
    }

    /// Bit injection's sender (role `R0`): its offer `e[t] - F(key, stream)[t]` for the bits
    /// `e` of `bits` (`count` words), the mask drawn from the key its receiver lacks.
    /// Fused: the bits, the draw and the difference in one pass.
    fn inject_offer(&self, bits: BitRange<'_, Self::Buffer>, key: &PrgKey, stream: u64) -> DeviceResult<Self::Buffer> {
        fused::inject_offer(self, bits, key, stream)
    }

    /// Bit injection's helper: the correction its receiver needs for the bits `f` of
    /// `bits`, `(1 - 2f[t])·F(key, stream)[t] - r[t]` with `r` the first `count` words of
    /// `r` (the helper's output component) (`count` words).
    fn inject_pick(
        &self,
        bits: BitRange<'_, Self::Buffer>,
        key: &PrgKey,
        stream: u64,
        r: &Self::Buffer,
    ) -> DeviceResult<Self::Buffer> {
        fused::inject_pick(self, bits, key, stream, r)
    }

    /// Bit injection's receiver: with `f` the bits of `bits`, the offer `u` at `u.1` of
    /// `u.0`, the correction `c` at `c.1` of `c.0` and its other output component `r` (first
    /// `count` words), word `t` is `(1 - 2f[t])·u[t] + f[t] + c[t] - r[t]` (`count` words).
    fn inject_receive(
        &self,
        bits: BitRange<'_, Self::Buffer>,
        u: (&Self::Buffer, usize),
        c: (&Self::Buffer, usize),
        r: &Self::Buffer,
    ) -> DeviceResult<Self::Buffer> {
        fused::inject_receive(self, bits, u, c, r)
    }

    /// A party's 3-out-of-3 part of an elementwise product of two replicated sharings:
    /// `x[0]·y[0] + x[0]·y[1] + x[1]·y[0] ± F(term)` for each term (a fresh zero sharing's
    /// two streams). Fused: one pass, the draws made in cache.
    fn mul_part(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        terms: &[PrgTerm<'_>],
    ) -> DeviceResult<Self::Buffer> {
        fused::mul_part(self, x, y, terms)
    }

    /// Wrap-free truncation's dealer (sharing's `truncate_wrap_free`, role 2): with
    /// `r = F(r[0]) + F(r[1]) - part - 2^62` (the public offset that puts the openers' value
    /// in `[0, 2^63)`, folded into the mask), `m = r >> 63` and `low = (r << 1) >> (bits + 1)`, the
    /// two dealt values, masked: `t = m·2^(63-bits) - low ± F(t)` and
    /// `e = 2^(63-bits) - m·2^(64-bits) ± (F(e) & H)` (each term's sign as it says), where
    /// `H = !0 << (63 - bits)` keeps the top `bits + 1` bits: `e` is a multiple of
    /// `2^(63-bits)`, so it travels in `bits + 1` bits. `bits` is in `1..=62`. One pass, two
    /// outputs.
    fn truncate_deal(
        &self,
        part: &Self::Buffer,
        bits: u32,
        r: [PrgTerm<'_>; 2],
        t: PrgTerm<'_>,
        e: PrgTerm<'_>,
    ) -> DeviceResult<(Self::Buffer, Self::Buffer)> {
        fused::truncate_deal(self, part, bits, r, t, e)
    }

    /// Wrap-free truncation's last local step at an opener: with `v = c[0] + c[1]` (the
    /// opened `c`), word `j` is `high·ê[j] + Σ plus[j]` (each addend with its sign), plus
    /// `((v << 1) >> (bits + 1)) - 2^(62-bits)` when `low`, with `high = v >> 63` and `ê`
    /// the addend `e` with its low `63 - bits` bits cleared (`ê = ±(F & H)` for a draw,
    /// `±(b & H)` for a buffer, `H` as in [`truncate_deal`](Device::truncate_deal)). `bits`
    /// is in `1..=62`. One pass, the draws made in cache.
    fn truncate_open(
        &self,
        c: [&Self::Buffer; 2],
        bits: u32,
        low: bool,
        e: Addend<'_, Self::Buffer>,
        plus: &[Addend<'_, Self::Buffer>],
    ) -> DeviceResult<Self::Buffer> {
        fused::truncate_open(self, c, bits, low, e, plus)
    }

    // ---- bits --------------------------------------------------------------------
    /// Packs the bits selected by `mask` of every element into a dense bit stream.
    ///
    /// With `k = mask.count_ones()`, element `e`'s selected bits (lowest first) become
    /// stream bits `e*k .. e*k + k`; stream bit `t` is bit `t % 64` of word `t / 64`.
    /// The result has `ceil(len * k / 64)` words; unused high bits are zero.
    fn pack_bits(&self, a: &Self::Buffer, mask: u64) -> DeviceResult<Self::Buffer>;
    /// Inverse of [`pack_bits`](Device::pack_bits): `len` elements whose `mask` bits come
    /// from the stream and whose other bits are zero.
    fn unpack_bits(&self, packed: &Self::Buffer, len: usize, mask: u64) -> DeviceResult<Self::Buffer>;
    /// The low `planes` bits of the `count` words of `a` from `from`, bit-sliced: `planes`
    /// rows of `ceil(count / 64)` words, where lane `e` of word `g` of row `j` is bit `j` of
    /// `a[from + 64 g + e]` (lanes past `count` zero). `planes` is in `1..=64`. A row is
    /// one bit of 64 elements to a word: the sign circuit ANDs and sends its rows as they
    /// are, with no packing. Fused: one pass over the words (64x64 bit transposes), where
    /// the default packs each row on its own.
    fn bit_planes(&self, a: &Self::Buffer, from: usize, count: usize, planes: u32) -> DeviceResult<Self::Buffer> {
        fused::bit_planes(self, a, from, count, planes)
    }

    // ---- layout and reductions ---------------------------------------------------
    /// Sums `[outer, axis, inner]` over the middle axis into `[outer, inner]`.
    fn sum_axis(&self, a: &Self::Buffer, outer: usize, axis: usize, inner: usize) -> DeviceResult<Self::Buffer>;
    /// Materialises a strided view of `a` as a dense row-major buffer.
    fn gather_strided(&self, a: &Self::Buffer, view: &StridedLayout) -> DeviceResult<Self::Buffer>;
    /// Writes dense `src` into the strided view `view` of `dst` (overwriting).
    /// The view must not alias itself (no zero strides).
    fn scatter_strided(&self, dst: &mut Self::Buffer, src: &Self::Buffer, view: &StridedLayout) -> DeviceResult<()>;

    // ---- linear algebra ----------------------------------------------------------
    /// Batched ring matrix product; see [`MatmulSpec`].
    fn matmul(&self, a: &Self::Buffer, b: &Self::Buffer, spec: &MatmulSpec) -> DeviceResult<Self::Buffer>;
    /// Convolution forward: input `[N, C, H, W]`, weight `[OC, C/g, KH, KW]` → `[N, OC, OH, OW]`.
    fn conv2d(&self, input: &Self::Buffer, weight: &Self::Buffer, p: &Conv2dParams) -> DeviceResult<Self::Buffer>;
    /// Gradient of the convolution with respect to its input: `grad_out` `[N, OC, OH, OW]`
    /// and weight → `[N, C, H, W]` (the transposed convolution).
    fn conv2d_grad_input(
        &self,
        grad_out: &Self::Buffer,
        weight: &Self::Buffer,
        p: &Conv2dParams,
    ) -> DeviceResult<Self::Buffer>;
    /// Gradient of the convolution with respect to its weight: input and `grad_out` →
    /// `[OC, C/g, KH, KW]`.
    fn conv2d_grad_weight(
        &self,
        input: &Self::Buffer,
        grad_out: &Self::Buffer,
        p: &Conv2dParams,
    ) -> DeviceResult<Self::Buffer>;

    // ---- pooling -------------------------------------------------------------------
    /// Window sums (padding counts as zero): `[N, C, H, W]` → `[N, C, OH, OW]`.
    /// Average pooling is this followed by a fixed-point scale.
    fn pool_sum(&self, input: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer>;
    /// Adjoint of [`pool_sum`](Device::pool_sum): each output gradient is added to every
    /// input position of its window → `[N, C, H, W]`.
    fn pool_sum_backward(&self, grad_out: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer>;
    /// The windows themselves: `[N, C, H, W]` → `[N, C, OH, OW, KH*KW]`, padded positions
    /// holding `pad` (for max pooling over shares, a share of a very negative value).
    fn pool_windows(&self, input: &Self::Buffer, p: &Pool2dParams, pad: u64) -> DeviceResult<Self::Buffer>;
    /// Adjoint of [`pool_windows`](Device::pool_windows): `[N, C, OH, OW, KH*KW]` summed
    /// back onto `[N, C, H, W]` (padded positions dropped).
    fn pool_windows_backward(&self, windows: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer>;

    // ---- randomness ------------------------------------------------------------------
    /// `len` words of the PRG stream `(key, stream)` starting at word `offset`; see
    /// [`prg`](crate::prg) for the exact definition every device reproduces.
    fn prg_fill(&self, key: &PrgKey, stream: u64, offset: u64, len: usize) -> DeviceResult<Self::Buffer>;
}

/// One term of [`Device::add_prg`]: the PRG stream `(key, stream)` from word 0, added, or
/// subtracted when `negate`.
#[derive(Clone, Copy, Debug)]
pub struct PrgTerm<'a> {
    /// The key.
    pub key: &'a PrgKey,
    /// The stream id.
    pub stream: u64,
    /// Subtract the stream instead of adding it.
    pub negate: bool,
}

/// A term of [`Device::truncate_open`]: a PRG stream (added or subtracted as it says) or
/// a buffer (added or subtracted), word by word.
#[derive(Debug)]
pub enum Addend<'a, B> {
    /// `±F(key, stream)`.
    Prg(PrgTerm<'a>),
    /// A buffer of at least the output's length, added.
    Buf(&'a B),
    /// A buffer of at least the output's length, subtracted.
    Less(&'a B),
}

// Copy for every `B`, as for `BitRange`.
impl<B> Clone for Addend<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Addend<'_, B> {}

/// The error of a call whose arguments do not fit (a caller's bug, never a peer's).
fn unfit(device: &str, detail: String) -> DeviceError {
    DeviceError::Driver { device: device.to_string(), detail }
}

/// `Ok` when `bits` is in `1..=62`, the truncation's range.
pub fn check_trunc_bits(device: &str, bits: u32) -> DeviceResult<()> {
    if (1..=62).contains(&bits) {
        Ok(())
    } else {
        Err(unfit(device, format!("wrap-free truncation: bits {bits} outside 1..=62")))
    }
}

/// `Ok` when every operand of `what` has the first one's length.
pub fn check_same_len(device: &str, what: &str, lens: &[usize]) -> DeviceResult<()> {
    match lens.iter().find(|&&len| len != lens[0]) {
        None => Ok(()),
        Some(len) => Err(unfit(device, format!("{what}: operands of {} and {len} words", lens[0]))),
    }
}

/// `Ok` when the two operands of the elementwise method `what` (`binary`, `binary_assign`)
/// have equal lengths. Every device gives this error, so a default definition built on
/// those methods fails alike on each, and a fused override can check as its default does.
pub fn check_operand_lens(device: &str, what: &str, a: usize, b: usize) -> DeviceResult<()> {
    if a == b {
        Ok(())
    } else {
        Err(unfit(device, format!("{what}: lengths {a} and {b}")))
    }
}

/// The length checks of the default masked AND ([`fused::and_part`]), in its order and with
/// its errors: `y0 ^ y1`, then `& x0`, then `x1 & y0`, then (when given) the masks
/// `r0 ^ r1` XOR-ed in. Overrides of [`Device::and_part`] and [`Device::and_part_packed`]
/// check with it.
pub fn check_and_lens(device: &str, x: [usize; 2], y: [usize; 2], r: Option<[usize; 2]>) -> DeviceResult<()> {
    check_operand_lens(device, "binary", y[0], y[1])?;
    check_operand_lens(device, "binary_assign", y[0], x[0])?;
    check_operand_lens(device, "binary", x[1], y[0])?;
    if let Some(r) = r {
        check_operand_lens(device, "binary", r[0], r[1])?;
        check_operand_lens(device, "binary_assign", y[0], r[0])?;
    }
    Ok(())
}

/// The shared bits a bit injection works on, for one third of the elements: bit `bit` of
/// words `from .. from + count` of `src`, XOR-ed with the same words of `also` when given
/// (the two components a party holds).
#[derive(Debug)]
pub struct BitRange<'a, B> {
    /// The words.
    pub src: &'a B,
    /// Words XOR-ed with `src` first, if any.
    pub also: Option<&'a B>,
    /// Which bit of each word, below 64.
    pub bit: u32,
    /// The first word.
    pub from: usize,
    /// How many words.
    pub count: usize,
}

// Copy for every `B`: the fields are references and numbers (a derive would ask `B: Copy`).
impl<B> Clone for BitRange<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for BitRange<'_, B> {}

impl<B> BitRange<'_, B> {
    /// `Ok` when the bit is below 64 and the words lie inside `src` (`src_len` words) and
    /// `also` (`also_len`).
    pub fn check(&self, device: &str, src_len: usize, also_len: Option<usize>) -> DeviceResult<()> {
        if self.bit >= 64 {
            return Err(unfit(device, format!("bit injection: bit {} is not below 64", self.bit)));
        }
        for len in std::iter::once(src_len).chain(also_len) {
            check_range(device, "bit injection", self.from, self.count, len)?;
        }
        Ok(())
    }
}

/// `Ok` when [`Device::bit_planes`]'s arguments fit: `planes` in `1..=64` and the words
/// inside `a` (`len` words).
pub fn check_planes(device: &str, from: usize, count: usize, planes: u32, len: usize) -> DeviceResult<()> {
    if !(1..=64).contains(&planes) {
        return Err(unfit(device, format!("bit_planes: {planes} planes outside 1..=64")));
    }
    check_range(device, "bit_planes", from, count, len)
}

/// Checks that `count` words from `at` lie inside a buffer of `len` words.
pub fn check_range(device: &str, what: &str, at: usize, count: usize, len: usize) -> DeviceResult<()> {
    if at.checked_add(count).is_some_and(|end| end <= len) {
        Ok(())
    } else {
        Err(unfit(device, format!("{what}: {count} words from {at} do not fit a buffer of {len}")))
    }
}

/// An operand of [`Device::and_rows`]: rows `first`, `first + step`, .. of `buf`, whose
/// rows are the call's `width` words each.
#[derive(Debug)]
pub struct Rows<'a, B> {
    /// The buffer of rows.
    pub buf: &'a B,
    /// The first row taken.
    pub first: usize,
    /// Rows from one taken to the next (at least 1).
    pub step: usize,
}

// Copy for every `B`, as for `BitRange`.
impl<B> Clone for Rows<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Rows<'_, B> {}

/// The operands of [`Device::and_rows`]: `x & y ^ plus` on `rows` rows of `width` words.
#[derive(Debug)]
pub struct RowAnd<'a, B> {
    /// The left operand's two components.
    pub x: [Rows<'a, B>; 2],
    /// The right operand's two components.
    pub y: [Rows<'a, B>; 2],
    /// Rows XOR-ed into the result, if any.
    pub plus: Option<Rows<'a, B>>,
    /// How many rows.
    pub rows: usize,
    /// Words per row.
    pub width: usize,
}

// Copy for every `B`, as for `BitRange`.
impl<B> Clone for RowAnd<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for RowAnd<'_, B> {}

impl<B> RowAnd<'_, B> {
    /// The selections in order: `x`, `y`, then `plus`.
    pub fn selections(&self) -> impl Iterator<Item = &Rows<'_, B>> {
        self.x.iter().chain(&self.y).chain(&self.plus)
    }

    /// `Ok` when every selection fits its buffer (`len` gives a buffer's words).
    pub fn check(&self, device: &str, len: impl Fn(&B) -> usize) -> DeviceResult<()> {
        self.selections().try_for_each(|o| o.check(device, self.rows, self.width, len(o.buf)))
    }
}

impl<B> Rows<'_, B> {
    /// The selection as a strided view of `rows` rows of `width` words.
    pub fn view(&self, rows: usize, width: usize) -> StridedLayout {
        StridedLayout { dims: vec![rows, width], strides: vec![self.step * width, 1], offset: self.first * width }
    }

    /// `Ok` when the step is at least 1 and the `rows` rows of `width` words lie inside the
    /// buffer (`len` words).
    pub fn check(&self, device: &str, rows: usize, width: usize, len: usize) -> DeviceResult<()> {
        let last = rows.checked_sub(1).map(|r| {
            r.checked_mul(self.step)
                .and_then(|d| d.checked_add(self.first))
                .and_then(|row| row.checked_add(1))
                .and_then(|end| end.checked_mul(width))
        });
        match (self.step, last) {
            (0, _) => Err(unfit(device, "and_rows: a step of 0 rows".into())),
            (_, None) => Ok(()),
            (_, Some(Some(end))) if end <= len => Ok(()),
            _ => Err(unfit(
                device,
                format!(
                    "and_rows: {rows} rows of {width} words from row {} every {} do not fit a buffer of {len}",
                    self.first, self.step
                ),
            )),
        }
    }
}

/// One piece of [`Device::place`]: `count` words of `src` from `from`, placed at
/// `at`.
#[derive(Debug)]
pub struct Placed<'a, B> {
    /// Where in the output.
    pub at: usize,
    /// The source buffer.
    pub src: &'a B,
    /// Where in the source.
    pub from: usize,
    /// How many words.
    pub count: usize,
}

impl<B> Placed<'_, B> {
    /// `Ok` when the piece lies inside an output of `len` words and a source of `src_len`.
    pub fn check(&self, device: &str, len: usize, src_len: usize) -> DeviceResult<()> {
        let fits = |start: usize, total: usize| start.checked_add(self.count).is_some_and(|end| end <= total);
        if fits(self.at, len) && fits(self.from, src_len) {
            Ok(())
        } else {
            let (count, from, at) = (self.count, self.from, self.at);
            Err(unfit(device, format!("place: {count} words from {from} of {src_len} to {at} of {len} do not fit")))
        }
    }
}

pub mod fused;
