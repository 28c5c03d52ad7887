// Bits of a word under a mask, compacted and spread (software pext and pdep), for the
// packing kernels (bits.cu, fused.cu). `lo` and `k` are the mask's lowest set bit and
// popcount; `contiguous` says its set bits are one run, which takes the shift path.
#pragma once

typedef unsigned long long u64;

// The bits of v selected by mask, compacted to the low end (software pext).
__device__ __forceinline__ u64 triad_extract(u64 v, u64 mask, unsigned int lo, unsigned int k, int contiguous) {
    if (contiguous) {
        u64 x = v >> lo;
        return k == 64u ? x : (x & ((1ull << k) - 1ull));
    }
    u64 out = 0;
    unsigned int bit = 0;
    while (mask != 0) {
        unsigned int p = (unsigned int)(__ffsll((long long)mask) - 1);
        out |= ((v >> p) & 1ull) << bit;
        bit++;
        mask &= mask - 1ull;
    }
    return out;
}

// Inverse of triad_extract (software pdep).
__device__ __forceinline__ u64 triad_deposit(u64 v, u64 mask, unsigned int lo, unsigned int k, int contiguous) {
    if (contiguous) {
        u64 x = k == 64u ? v : (v & ((1ull << k) - 1ull));
        return x << lo;
    }
    u64 out = 0;
    unsigned int bit = 0;
    while (mask != 0) {
        unsigned int p = (unsigned int)(__ffsll((long long)mask) - 1);
        out |= ((v >> bit) & 1ull) << p;
        bit++;
        mask &= mask - 1ull;
    }
    return out;
}
