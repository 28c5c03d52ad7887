// The CUDA C subset kernels/*.cu use, for compiling them with g++ for the CPU emulator.
// Each kernel file is included inside its own namespace (see tools/cuda-emu/build), so its
// helpers and structs stay private to it; `extern "C"` kernels keep their names.
#pragma once
#include <cstdint>

#define __global__
#define __device__ static
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
// Blocks run one after another on one host thread, so a block's shared memory is a static.
#define __shared__ static

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

namespace cuemu {
// Set by the emulator before each thread of each block runs.
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void syncthreads();
unsigned long long double2ull_rn(double x);
}  // namespace cuemu

using cuemu::blockDim;
using cuemu::blockIdx;
using cuemu::gridDim;
using cuemu::threadIdx;

static inline void __syncthreads() { cuemu::syncthreads(); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline unsigned long long __double2ull_rn(double x) { return cuemu::double2ull_rn(x); }
