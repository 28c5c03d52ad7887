// Exact ring matrix products mod 2^64.
//
// All products are row-major and batched with explicit leading dimensions and batch
// strides: C[b] (m x n, ldc) = op(A[b]) . op(B[b]) where op(A) is m x k (stored k x m
// when a_trans) and op(B) is k x n (stored n x k when b_trans).
//
// - gemm_u64_tiled: the plain path, 64 x 64 output tiles, 16-deep k tiles in shared
//   memory, 4 x 4 outputs per thread, wrapping u64 multiply-adds.
// - split_limbs16_f64 / acc_f64_u64: the CryptGPU float64 path. Each u64 is split into
//   four 16-bit limbs held exactly in doubles; the ten limb products with shift < 64 are
//   float64 GEMMs (cuBLAS), exact while k * (2^16 - 1)^2 < 2^53, i.e. k <= 2^21; each
//   product is converted back to u64 exactly and added in with its shift, mod 2^64.
// - split_digits8_i8 / acc_i32_u64: the int8 path. Eight balanced 8-bit digits per
//   element; the 36 digit products with shift < 64 are int8 GEMMs with int32 sums
//   (cuBLAS GemmEx), exact while k * 2^14 < 2^31, i.e. k <= 2^17 - 1; each sum is
//   sign-extended and added in with its shift, mod 2^64.

typedef unsigned long long u64;

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16

extern "C" __global__ void __launch_bounds__(256) gemm_u64_tiled(u64* c, const u64* a, const u64* b, u64 m, u64 n,
                                                                 u64 k, u64 lda, u64 ldb, u64 ldc, u64 stride_a,
                                                                 u64 stride_b, u64 stride_c, u64 batch, int a_trans,
                                                                 int b_trans, int accumulate) {
    __shared__ u64 as[TILE_K][TILE_M];
    __shared__ u64 bs[TILE_K][TILE_N];
    const unsigned int tx = threadIdx.x % 16u;
    const unsigned int ty = threadIdx.x / 16u;
    const u64 row0 = (u64)blockIdx.y * TILE_M;
    const u64 col0 = (u64)blockIdx.x * TILE_N;
    for (u64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const u64* ab = a + z * stride_a;
        const u64* bb = b + z * stride_b;
        u64* cb = c + z * stride_c;
        u64 acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0;
        for (u64 k0 = 0; k0 < k; k0 += TILE_K) {
#pragma unroll
            for (int l = 0; l < 4; l++) {
                unsigned int idx = threadIdx.x + 256u * (unsigned int)l;
                unsigned int i, kk;
                if (a_trans) { kk = idx / TILE_M; i = idx % TILE_M; } else { i = idx / TILE_K; kk = idx % TILE_K; }
                u64 r = row0 + i, q = k0 + kk;
                u64 v = 0;
                if (r < m && q < k) v = a_trans ? ab[q * lda + r] : ab[r * lda + q];
                as[kk][i] = v;
                unsigned int j;
                if (b_trans) { j = idx / TILE_K; kk = idx % TILE_K; } else { kk = idx / TILE_N; j = idx % TILE_N; }
                u64 cc = col0 + j;
                q = k0 + kk;
                v = 0;
                if (cc < n && q < k) v = b_trans ? bb[cc * ldb + q] : bb[q * ldb + cc];
                bs[kk][j] = v;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < TILE_K; kk++) {
                u64 ar[4], br[4];
#pragma unroll
                for (int i = 0; i < 4; i++) ar[i] = as[kk][ty + 16u * (unsigned int)i];
#pragma unroll
                for (int j = 0; j < 4; j++) br[j] = bs[kk][tx + 16u * (unsigned int)j];
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) acc[i][j] += ar[i] * br[j];
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            u64 r = row0 + ty + 16u * (unsigned int)i;
            if (r >= m) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                u64 cc = col0 + tx + 16u * (unsigned int)j;
                if (cc >= n) continue;
                u64* dst = cb + r * ldc + cc;
                *dst = accumulate ? *dst + acc[i][j] : acc[i][j];
            }
        }
    }
}

// out[l * n + i] = limb l (bits 16l .. 16l + 16) of in[i], as an exact double.
extern "C" __global__ void split_limbs16_f64(double* out, const u64* in, u64 n) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        u64 x = in[i];
#pragma unroll
        for (int l = 0; l < 4; l++) {
            out[(u64)l * n + i] = (double)((x >> (16 * l)) & 0xffffull);
        }
    }
}

// Where dense index t of a [batch][m][n] product lands in C (leading dimension ldc,
// batch stride stride_c).
__device__ __forceinline__ u64* triad_c_at(u64* c, u64 t, u64 m, u64 n, u64 ldc, u64 stride_c) {
    u64 j = t % n;
    u64 r = (t / n) % m;
    u64 z = t / (n * m);
    return c + z * stride_c + r * ldc + j;
}

// c[b][r][j] (+)= (u64)p[b][r][j] << shift, with p dense [batch][m][n]. Every p is an
// integer in [0, 2^53) (the float64 GEMM was exact), so the conversion is exact.
extern "C" __global__ void acc_f64_u64(u64* c, const double* p, u64 m, u64 n, u64 ldc, u64 stride_c, u64 batch,
                                       unsigned int shift, int accumulate) {
    u64 total = batch * m * n;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (u64)gridDim.x * blockDim.x) {
        u64 v = __double2ull_rn(p[t]) << (shift & 63u);
        u64* dst = triad_c_at(c, t, m, n, ldc, stride_c);
        *dst = accumulate ? *dst + v : v;
    }
}

// The int8 path: eight balanced digits per element. With y = x + 0x8080808080808080
// (mod 2^64), digit l = byte l of y minus 128, in [-128, 128), and
// sum_l digit_l * 2^(8l) = y - 0x8080808080808080 = x (mod 2^64).
// out[l * n + i] = digit l of in[i].
extern "C" __global__ void split_digits8_i8(signed char* out, const u64* in, u64 n) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        u64 y = in[i] + 0x8080808080808080ull;
#pragma unroll
        for (int l = 0; l < 8; l++) {
            out[(u64)l * n + i] = (signed char)((int)((y >> (8 * l)) & 0xffull) - 128);
        }
    }
}

// c[b][r][j] (+)= (u64)(i64)p[b][r][j] << shift, with p dense [batch][m][n] int32 (the int8
// GEMM's exact sums); the sign extension makes a negative sum count mod 2^64.
extern "C" __global__ void acc_i32_u64(u64* c, const int* p, u64 m, u64 n, u64 ldc, u64 stride_c, u64 batch,
                                       unsigned int shift, int accumulate) {
    u64 total = batch * m * n;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (u64)gridDim.x * blockDim.x) {
        u64 v = ((u64)(long long)p[t]) << (shift & 63u);
        u64* dst = triad_c_at(c, t, m, n, ldc, stride_c);
        *dst = accumulate ? *dst + v : v;
    }
}
