// The ChaCha20 block of triad_ring::prg, bit for bit, for every kernel that draws PRG
// words (prg.cu, fused.cu): state words 0..4 the constants "expand 32-byte k", 4..12 the
// key (little-endian words), 12..14 the 64-bit block counter (low word first), 14..16 the
// 64-bit stream id (low word first); block b yields w0..w15 and ring word 8b + j is
// w[2j] | w[2j+1] << 32. The key comes as four u64 (k0 = key words 0 | 1 << 32, ...).
#pragma once

typedef unsigned long long u64;
typedef unsigned int u32;

#define TRIAD_ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define TRIAD_QR(a, b, c, d)                                                                                           \
    a += b; d ^= a; d = TRIAD_ROTL32(d, 16);                                                                           \
    c += d; b ^= c; b = TRIAD_ROTL32(b, 12);                                                                           \
    a += b; d ^= a; d = TRIAD_ROTL32(d, 8);                                                                            \
    c += d; b ^= c; b = TRIAD_ROTL32(b, 7);

// Ring words 8 counter .. 8 counter + 8 of the stream `stream` under the key k0..k3: the
// ChaCha20 block `counter` (the caller wraps it mod 2^61), as eight ring words.
__device__ __forceinline__ void triad_chacha_block(u64 k0, u64 k1, u64 k2, u64 k3, u64 stream, u64 counter,
                                                   u64 out[8]) {
    u32 init[16];
    init[0] = 0x61707865u;
    init[1] = 0x3320646eu;
    init[2] = 0x79622d32u;
    init[3] = 0x6b206574u;
    init[4] = (u32)k0;
    init[5] = (u32)(k0 >> 32);
    init[6] = (u32)k1;
    init[7] = (u32)(k1 >> 32);
    init[8] = (u32)k2;
    init[9] = (u32)(k2 >> 32);
    init[10] = (u32)k3;
    init[11] = (u32)(k3 >> 32);
    init[12] = (u32)counter;
    init[13] = (u32)(counter >> 32);
    init[14] = (u32)stream;
    init[15] = (u32)(stream >> 32);
    u32 x0 = init[0], x1 = init[1], x2 = init[2], x3 = init[3];
    u32 x4 = init[4], x5 = init[5], x6 = init[6], x7 = init[7];
    u32 x8 = init[8], x9 = init[9], x10 = init[10], x11 = init[11];
    u32 x12 = init[12], x13 = init[13], x14 = init[14], x15 = init[15];
    for (int r = 0; r < 10; r++) {
        TRIAD_QR(x0, x4, x8, x12);
        TRIAD_QR(x1, x5, x9, x13);
        TRIAD_QR(x2, x6, x10, x14);
        TRIAD_QR(x3, x7, x11, x15);
        TRIAD_QR(x0, x5, x10, x15);
        TRIAD_QR(x1, x6, x11, x12);
        TRIAD_QR(x2, x7, x8, x13);
        TRIAD_QR(x3, x4, x9, x14);
    }
    u32 w[16] = {x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15};
#pragma unroll
    for (int j = 0; j < 8; j++) {
        u32 lo = w[2 * j] + init[2 * j];
        u32 hi = w[2 * j + 1] + init[2 * j + 1];
        out[j] = (u64)lo | ((u64)hi << 32);
    }
}
