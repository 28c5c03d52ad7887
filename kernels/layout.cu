// Layout and reductions: sums over an axis, strided gathers and scatters.
// A strided view is passed by value as `struct view` (rank <= 8 after the Rust side
// merges contiguous dimensions; larger ranks are split into several launches).

typedef unsigned long long u64;

#define TRIAD_MAX_RANK 8

struct view {
    u64 rank;
    u64 offset;
    u64 dims[TRIAD_MAX_RANK];
    u64 strides[TRIAD_MAX_RANK];
};

// Sums [outer, axis, inner] over the middle axis into [outer, inner]; one thread per
// output element (consecutive threads read consecutive inner positions).
extern "C" __global__ void sum_axis_u64(u64* out, const u64* a, u64 outer, u64 axis, u64 inner) {
    u64 n = outer * inner;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (u64)gridDim.x * blockDim.x) {
        u64 o = t / inner;
        u64 i = t - o * inner;
        const u64* src = a + o * axis * inner + i;
        u64 acc = 0;
        for (u64 j = 0; j < axis; j++) {
            acc += src[j * inner];
        }
        out[t] = acc;
    }
}

__device__ __forceinline__ u64 triad_view_index(const struct view& v, u64 t) {
    u64 idx = v.offset;
#pragma unroll
    for (int d = TRIAD_MAX_RANK - 1; d >= 0; d--) {
        if ((u64)d < v.rank) {
            u64 q = t / v.dims[d];
            idx += (t - q * v.dims[d]) * v.strides[d];
            t = q;
        }
    }
    return idx;
}

// out[out_offset + t] = a[view(t)] for t < n (n = the view's element count).
extern "C" __global__ void gather_strided_u64(u64* out, const u64* a, struct view v, u64 n, u64 out_offset) {
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (u64)gridDim.x * blockDim.x) {
        out[out_offset + t] = a[triad_view_index(v, t)];
    }
}

// dst[view(t)] = src[src_offset + t]; the view never aliases itself, so threads write
// distinct positions.
extern "C" __global__ void scatter_strided_u64(u64* dst, const u64* src, struct view v, u64 n, u64 src_offset) {
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (u64)gridDim.x * blockDim.x) {
        dst[triad_view_index(v, t)] = src[src_offset + t];
    }
}
