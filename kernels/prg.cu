// The ChaCha20 stream of triad_ring::prg (the block in chacha.cuh). Word indices wrap
// mod 2^64, so block indices wrap mod 2^61.

#include "chacha.cuh"

// One thread per ChaCha block touched by ring words offset .. offset + len: thread t
// computes block (offset / 8 + t) mod 2^61 and writes its words that fall in range.
extern "C" __global__ void prg_fill_u64(u64* out, u64 k0, u64 k1, u64 k2, u64 k3, u64 stream, u64 offset,
                                        u64 len) {
    u64 head = offset & 7ull;
    u64 blocks = (head + len + 7ull) / 8ull;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < blocks; t += (u64)gridDim.x * blockDim.x) {
        u64 counter = ((offset >> 3) + t) & ((1ull << 61) - 1ull);
        u64 w[8];
        triad_chacha_block(k0, k1, k2, k3, stream, counter, w);
        // Output index of this block's word j: 8t + j - head (in range [0, len)).
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u64 pos = 8ull * t + (u64)j;
            if (pos >= head && pos - head < len) {
                out[pos - head] = w[j];
            }
        }
    }
}
