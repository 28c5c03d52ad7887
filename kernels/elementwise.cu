// Elementwise ring operations over Z_{2^64}: every op wraps mod 2^64 (unsigned
// arithmetic in C is exactly that). Op codes match `triad_cuda::ops`:
//   unary:  0 neg, 1 not, 2 shl, 3 logical shr, 4 arithmetic shr (shift taken mod 64)
//   binary: 0 add, 1 sub, 2 mul, 3 xor, 4 and, 5 or
// All kernels use a grid-stride loop over 64-bit indices; the launch configuration
// lives in Rust.

typedef unsigned long long u64;
typedef long long i64;

__device__ __forceinline__ u64 triad_unary(unsigned int op, u64 a, unsigned int s) {
    switch (op) {
    case 0: return (u64)0 - a;
    case 1: return ~a;
    case 2: return a << (s & 63u);
    case 3: return a >> (s & 63u);
    default: return (u64)(((i64)a) >> (s & 63u));
    }
}

__device__ __forceinline__ u64 triad_binary(unsigned int op, u64 a, u64 b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a ^ b;
    case 4: return a & b;
    default: return a | b;
    }
}

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

extern "C" __global__ void fill_u64(u64* out, u64 value, u64 n) {
    GRID_STRIDE(i, n) { out[i] = value; }
}

extern "C" __global__ void unary_u64(u64* out, const u64* a, u64 n, unsigned int op, unsigned int s) {
    GRID_STRIDE(i, n) { out[i] = triad_unary(op, a[i], s); }
}

extern "C" __global__ void binary_u64(u64* out, const u64* a, const u64* b, u64 n, unsigned int op) {
    GRID_STRIDE(i, n) { out[i] = triad_binary(op, a[i], b[i]); }
}

extern "C" __global__ void binary_assign_u64(u64* a, const u64* b, u64 n, unsigned int op) {
    GRID_STRIDE(i, n) { a[i] = triad_binary(op, a[i], b[i]); }
}

extern "C" __global__ void binary_scalar_u64(u64* out, const u64* a, u64 s, u64 n, unsigned int op) {
    GRID_STRIDE(i, n) { out[i] = triad_binary(op, a[i], s); }
}
