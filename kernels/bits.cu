// Bit packing under a mask, exactly the CPU device's stream layout: with
// k = popcount(mask), element e's selected bits (lowest first) are stream bits
// e*k .. e*k+k; stream bit t is bit t % 64 of word t / 64; unused high bits are zero.

#include "bits.cuh"

// One thread per output word w: ORs in every element whose k bits overlap stream bits
// [64w, 64w + 64).
extern "C" __global__ void pack_bits_u64(u64* out, const u64* a, u64 len, u64 words, u64 mask,
                                         unsigned int k, unsigned int lo, int contiguous) {
    for (u64 w = (u64)blockIdx.x * blockDim.x + threadIdx.x; w < words; w += (u64)gridDim.x * blockDim.x) {
        u64 first_bit = w * 64ull;
        u64 e0 = first_bit / k;
        u64 e1 = (first_bit + 63ull) / k; // last element touching this word
        if (e1 >= len) e1 = len - 1ull;
        u64 acc = 0;
        for (u64 e = e0; e <= e1; e++) {
            u64 x = triad_extract(a[e], mask, lo, k, contiguous);
            u64 start = e * k;
            if (start >= first_bit) {
                acc |= x << (unsigned int)(start - first_bit);
            } else {
                acc |= x >> (unsigned int)(first_bit - start);
            }
        }
        out[w] = acc;
    }
}

// One thread per element: reads its k stream bits (from at most two words; a word past
// the end of the stream reads as zero) and deposits them under the mask.
extern "C" __global__ void unpack_bits_u64(u64* out, const u64* packed, u64 words, u64 len, u64 mask,
                                           unsigned int k, unsigned int lo, int contiguous) {
    for (u64 e = (u64)blockIdx.x * blockDim.x + threadIdx.x; e < len; e += (u64)gridDim.x * blockDim.x) {
        u64 start = e * k;
        u64 w0 = start / 64ull;
        unsigned int off = (unsigned int)(start % 64ull);
        u64 lo_word = w0 < words ? packed[w0] : 0ull;
        u64 x = lo_word >> off;
        if (off != 0u && k > 64u - off) {
            u64 hi_word = (w0 + 1ull) < words ? packed[w0 + 1ull] : 0ull;
            x |= hi_word << (64u - off);
        }
        out[e] = triad_deposit(x, mask, lo, k, contiguous);
    }
}

// bit_planes: one thread per output word (row j, group g) of `planes` rows of `groups`
// words: lane e is bit j of a[from + 64g + e], for the `count` words from `from` (lanes
// past count zero).
extern "C" __global__ void bit_planes_u64(u64* out, const u64* a, u64 from, u64 count, u64 groups,
                                          unsigned int planes) {
    u64 total = (u64)planes * groups;
    for (u64 w = (u64)blockIdx.x * blockDim.x + threadIdx.x; w < total; w += (u64)gridDim.x * blockDim.x) {
        u64 j = w / groups, g = w % groups;
        u64 first = 64ull * g;
        u64 last = first + 64ull < count ? first + 64ull : count;
        u64 acc = 0ull;
        for (u64 e = first; e < last; e++) acc |= ((a[from + e] >> j) & 1ull) << (e - first);
        out[w] = acc;
    }
}
