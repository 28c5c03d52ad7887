// The fused methods of the Device trait (triad_ring::device::fused holds their definitions
// as sequences of unfused methods), each one pass over memory: a thread takes eight
// consecutive words, exactly the eight ring words of one ChaCha block, so every PRG word
// a method adds is drawn in registers (chacha.cuh) and never written to memory.

#include "bits.cuh"
#include "chacha.cuh"

#define TRIAD_ADDENDS 4

// Words added to a result (`struct addends`, mirrored by `Addends` in
// crates/cuda/src/args.rs): the first `count`, each the PRG stream (key, stream) from
// word 0 (kind 0) or the buffer b0 (kind 1) or b1 (kind 2) from word 0, subtracted when
// `negate`.
struct addends {
    u64 count;
    u64 kind[TRIAD_ADDENDS];
    u64 negate[TRIAD_ADDENDS];
    u64 stream[TRIAD_ADDENDS];
    u64 key[TRIAD_ADDENDS][4];
};

// Thread t of a grid-stride loop over the ceil(n / 8) groups of eight words.
#define TRIAD_GROUPS(t, n)                                                                                             \
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < ((n) + 7ull) / 8ull; t += (u64)gridDim.x * blockDim.x)

// Words 8t .. 8t + 8 of a (those at or past n read as 0).
__device__ __forceinline__ void triad_load8(const u64* a, u64 t, u64 n, u64 w[8]) {
#pragma unroll
    for (int j = 0; j < 8; j++) {
        u64 e = 8ull * t + (u64)j;
        w[j] = e < n ? a[e] : 0ull;
    }
}

// Writes words 8t .. 8t + 8 of out that lie below n.
__device__ __forceinline__ void triad_store8(u64* out, u64 t, u64 n, const u64 w[8]) {
#pragma unroll
    for (int j = 0; j < 8; j++) {
        u64 e = 8ull * t + (u64)j;
        if (e < n) out[e] = w[j];
    }
}

// Words 8t .. 8t + 8 of addend i, the bits `keep` of each kept, then its sign applied. The
// PRG's block t holds exactly them.
__device__ __forceinline__ void triad_addend_kept(const struct addends& a, u64 i, const u64* b0, const u64* b1, u64 t,
                                                  u64 n, u64 keep, u64 w[8]) {
    if (a.kind[i] == 0ull) {
        triad_chacha_block(a.key[i][0], a.key[i][1], a.key[i][2], a.key[i][3], a.stream[i], t, w);
    } else {
        triad_load8(a.kind[i] == 1ull ? b0 : b1, t, n, w);
    }
#pragma unroll
    for (int j = 0; j < 8; j++) w[j] = a.negate[i] != 0ull ? 0ull - (w[j] & keep) : w[j] & keep;
}

// Words 8t .. 8t + 8 of addend i, its sign applied.
__device__ __forceinline__ void triad_addend(const struct addends& a, u64 i, const u64* b0, const u64* b1, u64 t,
                                             u64 n, u64 w[8]) {
    triad_addend_kept(a, i, b0, b1, t, n, ~0ull, w);
}

// acc += addends first .. count, words 8t .. 8t + 8.
__device__ __forceinline__ void triad_add_addends(const struct addends& a, u64 first, const u64* b0, const u64* b1,
                                                  u64 t, u64 n, u64 acc[8]) {
    for (u64 i = first; i < a.count; i++) {
        u64 w[8];
        triad_addend(a, i, b0, b1, t, n, w);
#pragma unroll
        for (int j = 0; j < 8; j++) acc[j] += w[j];
    }
}

// add_prg, and the addends past the first launch of mul_part and truncate_open:
// a[0..n) += the addends, in place.
extern "C" __global__ void add_addends_u64(u64* a, const u64* b0, const u64* b1, u64 n, struct addends s) {
    TRIAD_GROUPS(t, n) {
        u64 acc[8];
        triad_load8(a, t, n, acc);
        triad_add_addends(s, 0ull, b0, b1, t, n, acc);
        triad_store8(a, t, n, acc);
    }
}

// mul_part: out = x0·(y0 + y1) + x1·y0 + the addends (PRG streams only).
extern "C" __global__ void mul_part_u64(u64* out, const u64* x0, const u64* x1, const u64* y0, const u64* y1, u64 n,
                                        struct addends s) {
    TRIAD_GROUPS(t, n) {
        u64 a0[8], a1[8], c0[8], c1[8], acc[8];
        triad_load8(x0, t, n, a0);
        triad_load8(x1, t, n, a1);
        triad_load8(y0, t, n, c0);
        triad_load8(y1, t, n, c1);
#pragma unroll
        for (int j = 0; j < 8; j++) acc[j] = a0[j] * (c0[j] + c1[j]) + a1[j] * c0[j];
        triad_add_addends(s, 0ull, x0, x0, t, n, acc);
        triad_store8(out, t, n, acc);
    }
}

// truncate_deal, with s = [r0, r1, t, e] (PRG streams): v = -part - 2^62 + r0 + r1,
// m = v >> 63, low = (v << 1) >> (bits + 1); tout = m·2^(63-bits) - low + t and
// eout = 2^(63-bits) - m·2^(64-bits) + e, e's draw kept to its top bits + 1 bits (bits in
// 1..=62, checked by the caller).
extern "C" __global__ void truncate_deal_u64(u64* tout, u64* eout, const u64* part, u64 n, unsigned int bits,
                                             struct addends s) {
    TRIAD_GROUPS(t, n) {
        u64 v[8], r[8], tv[8], ev[8];
        triad_load8(part, t, n, v);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = 0ull - v[j] - (1ull << 62);
        for (u64 i = 0; i < 2ull; i++) {
            triad_addend(s, i, part, part, t, n, r);
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] += r[j];
        }
        triad_addend(s, 2ull, part, part, t, n, tv);
        triad_addend_kept(s, 3ull, part, part, t, n, ~0ull << (63u - bits), ev);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u64 m = v[j] >> 63;
            u64 low = (v[j] << 1) >> (bits + 1u);
            tv[j] += (m << (63u - bits)) - low;
            ev[j] += (1ull << (63u - bits)) - (m << (64u - bits));
        }
        triad_store8(tout, t, n, tv);
        triad_store8(eout, t, n, ev);
    }
}

// truncate_open, with addend 0 the e of the method and the rest its plus (buffers in b0,
// b1): v = c0 + c1, out = (v >> 63)·ê + [low] (((v << 1) >> (bits + 1)) - 2^(62-bits))
// + the other addends, ê = e kept to its top bits + 1 bits, then signed (bits in 1..=62,
// checked by the caller).
extern "C" __global__ void truncate_open_u64(u64* out, const u64* c0, const u64* c1, const u64* b0, const u64* b1,
                                             u64 n, unsigned int bits, int low, struct addends s) {
    TRIAD_GROUPS(t, n) {
        u64 v[8], c[8], e[8];
        triad_load8(c0, t, n, v);
        triad_load8(c1, t, n, c);
        triad_addend_kept(s, 0ull, b0, b1, t, n, ~0ull << (63u - bits), e);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u64 x = v[j] + c[j];
            u64 l = low ? ((x << 1) >> (bits + 1u)) - (1ull << (62u - bits)) : 0ull;
            v[j] = (x >> 63) * e[j] + l;
        }
        triad_add_addends(s, 1ull, b0, b1, t, n, v);
        triad_store8(out, t, n, v);
    }
}

// A zero sharing's two draws XOR-ed into words 8t .. 8t + 8: block t of the PRG streams of
// addends 0 and 1 of s (both kind 0).
__device__ __forceinline__ void triad_xor_zero_share(const struct addends& s, u64 t, u64 acc[8]) {
    for (u64 i = 0; i < 2ull; i++) {
        u64 r[8];
        triad_chacha_block(s.key[i][0], s.key[i][1], s.key[i][2], s.key[i][3], s.stream[i], t, r);
#pragma unroll
        for (int j = 0; j < 8; j++) acc[j] ^= r[j];
    }
}

// and_part_packed: thread t makes packed words 8t .. 8t + 8 (below `words`), stream bits
// [512t, 512t + 512): for each element whose k bits overlap them, its masked AND part
// ((y0' ^ y1') & x0 ^ x1 & y0') & mask with y' = y << y_shl, its mask bits extracted and
// placed as pack_bits_u64 places them; then the words of block t of the two PRG streams
// in s (kind 0; their signs unused) XOR-ed in. k >= 1 and n >= 1 (the caller launches
// nothing otherwise).
extern "C" __global__ void and_part_packed_u64(u64* out, const u64* x0, const u64* x1, const u64* y0, const u64* y1,
                                               u64 n, u64 words, u64 mask, unsigned int k, unsigned int lo,
                                               int contiguous, unsigned int y_shl, struct addends s) {
    TRIAD_GROUPS(t, words) {
        u64 acc[8] = {0ull, 0ull, 0ull, 0ull, 0ull, 0ull, 0ull, 0ull};
        u64 first = 512ull * t;
        u64 e_last = (first + 511ull) / k;
        if (e_last >= n) e_last = n - 1ull;
        for (u64 e = first / k; e <= e_last; e++) {
            u64 ya = y0[e] << y_shl, yb = y1[e] << y_shl;
            u64 z = (((ya ^ yb) & x0[e]) ^ (x1[e] & ya)) & mask;
            u64 x = triad_extract(z, mask, lo, k, contiguous);
            u64 start = e * (u64)k;
            if (start < first) {
                acc[0] |= x >> (unsigned int)(first - start);
                continue;
            }
            u64 rel = start - first;
            unsigned int off = (unsigned int)(rel & 63ull);
            u64 wi = rel >> 6;
            if (wi < 8ull) acc[wi] |= x << off;
            if (off != 0u && wi + 1ull < 8ull) acc[wi + 1ull] |= x >> (64u - off);
        }
        triad_xor_zero_share(s, t, acc);
        triad_store8(out, t, words, acc);
    }
}

// A row selection of and_rows: row r is row first + r * step of its buffer (rows of
// `width` words). Mirrored by `RowSel` in crates/cuda/src/args.rs.
struct row_sel {
    u64 first[5];
    u64 step[5];
};

// and_rows: thread t makes words 8t .. 8t + 8 (below n = rows * width) of
// x0 & (y0 ^ y1) ^ x1 & y0 ^ plus on the selected rows (plus only when has_plus), then
// the words of block t of the two PRG streams in s (kind 0) XOR-ed in. Selection i of
// sel names operand i in the order x0, x1, y0, y1, plus.
extern "C" __global__ void and_rows_u64(u64* out, const u64* x0, const u64* x1, const u64* y0, const u64* y1,
                                        const u64* plus, u64 n, u64 width, int has_plus, struct row_sel sel,
                                        struct addends s) {
    TRIAD_GROUPS(t, n) {
        u64 acc[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u64 e = 8ull * t + (u64)j;
            if (e >= n) {
                acc[j] = 0ull;
                continue;
            }
            u64 row = e / width, col = e % width;
            u64 at[5];
#pragma unroll
            for (int o = 0; o < 5; o++) at[o] = (sel.first[o] + row * sel.step[o]) * width + col;
            u64 z = (x0[at[0]] & (y0[at[2]] ^ y1[at[3]])) ^ (x1[at[1]] & y0[at[2]]);
            if (has_plus) z ^= plus[at[4]];
            acc[j] = z;
        }
        triad_xor_zero_share(s, t, acc);
        triad_store8(out, t, n, acc);
    }
}
