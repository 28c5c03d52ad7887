// A CPU cuBLAS (libcublas.so) for tests: the five entry points the CUDA device calls.
// cublasDgemmStridedBatched computes exactly what cuBLAS computes when every product is
// exact, and fails when it might not be: each used element of A and B must be an integer,
// and for each result the sum of |a*b| over the inner dimension must stay below 2^53
// (then every partial sum, in whatever order a GPU adds them, is an integer below 2^53 in
// magnitude and exact). Operand spans must lie inside live allocations (checked with
// libcuda.so's allocation table). cublasGemmStridedBatchedEx (int8 inputs, int32 sums and
// output) likewise fails when the sum of |a*b| for a result could leave int32.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "emu.h"

typedef int cublasStatus_t;
enum { OK = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, EXECUTION_FAILED = 13 };
enum { OP_N = 0, OP_T = 1, OP_C = 2 };

namespace {
struct Handle {
    uint64_t magic = 0xb1a5b1a5;
    void* stream = nullptr;
};

bool live(Handle* h) { return h && h->magic == 0xb1a5b1a5; }

cublasStatus_t fail(cublasStatus_t s, const char* what) {
    fprintf(stderr, "cuda-emu cublas: %s\n", what);
    return s;
}

bool span_ok(const void* p, size_t elem, int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch, const char* name) {
    if (rows == 0 || cols == 0 || batch == 0) return true;
    int64_t last = (batch - 1) * stride + (cols - 1) * ld + (rows - 1);
    const char* why = "";
    if (stride < 0 || cuemu_check_range(p, (size_t)(last + 1) * elem, &why) != 0) {
        fprintf(stderr, "cuda-emu cublas: gemm: operand %s (%lld x %lld, ld %lld, stride %lld, batch %lld) %s\n",
                name, (long long)rows, (long long)cols, (long long)ld, (long long)stride, (long long)batch, why);
        return false;
    }
    return true;
}
}  // namespace

CUEMU_EXPORT cublasStatus_t cublasCreate_v2(Handle** h) {
    *h = new Handle;
    return OK;
}

CUEMU_EXPORT cublasStatus_t cublasDestroy_v2(Handle* h) {
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasDestroy: not a handle");
    h->magic = 0;
    delete h;
    return OK;
}

CUEMU_EXPORT cublasStatus_t cublasSetStream_v2(Handle* h, void* stream) {
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasSetStream: not a handle");
    if (stream != nullptr) return fail(INVALID_VALUE, "cublasSetStream: only the default stream is emulated");
    h->stream = stream;
    return OK;
}

CUEMU_EXPORT cublasStatus_t cublasDgemmStridedBatched(Handle* h, int transa, int transb, int m, int n, int k,
                                                      const double* alpha, const double* A, int lda, long long sa,
                                                      const double* B, int ldb, long long sb, const double* beta,
                                                      double* C, int ldc, long long sc, int batch) {
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasDgemmStridedBatched: not a handle");
    if (transa < OP_N || transa > OP_C || transb < OP_N || transb > OP_C || m < 0 || n < 0 || k < 0 || batch < 0)
        return fail(INVALID_VALUE, "cublasDgemmStridedBatched: bad operation or negative size");
    bool ta = transa != OP_N, tb = transb != OP_N;
    // Column-major: op(A) is m x k (A stored k x m when transposed), op(B) k x n.
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return fail(INVALID_VALUE, "cublasDgemmStridedBatched: a leading dimension below its operand's rows");
    if (m == 0 || n == 0 || batch == 0) return OK;
    if (!span_ok(C, sizeof(double), m, n, ldc, sc, batch, "C")) return EXECUTION_FAILED;
    double al = *alpha, be = *beta;
    if (k > 0 && al != 0.0 && (!span_ok(A, sizeof(double), ar, ac, lda, sa, batch, "A") || !span_ok(B, sizeof(double), br, bc, ldb, sb, batch, "B")))
        return EXECUTION_FAILED;
    const double LIMIT = 9007199254740992.0;  // 2^53
    std::vector<double> a((size_t)m * k), b((size_t)k * n), s((size_t)m), bound((size_t)m);
    for (int64_t z = 0; z < batch; z++) {
        const double* Az = A + z * sa;
        const double* Bz = B + z * sb;
        double* Cz = C + z * sc;
        // op(A) as a dense m x k column-major copy, op(B) as k x n; every used element must
        // be an integer (the limb planes are; poison is a NaN).
        for (int64_t l = 0; l < k; l++)
            for (int64_t i = 0; i < m; i++) {
                double v = ta ? Az[l + i * (int64_t)lda] : Az[i + l * (int64_t)lda];
                if (!(std::floor(v) == v)) return fail(EXECUTION_FAILED, "cublasDgemmStridedBatched: an element of A is not an integer (unwritten memory?)");
                a[(size_t)(i + l * m)] = v;
            }
        for (int64_t j = 0; j < n; j++)
            for (int64_t l = 0; l < k; l++) {
                double v = tb ? Bz[j + l * (int64_t)ldb] : Bz[l + j * (int64_t)ldb];
                if (!(std::floor(v) == v)) return fail(EXECUTION_FAILED, "cublasDgemmStridedBatched: an element of B is not an integer (unwritten memory?)");
                b[(size_t)(l + j * k)] = v;
            }
        for (int64_t j = 0; j < n; j++) {
            for (int64_t i = 0; i < m; i++) s[(size_t)i] = bound[(size_t)i] = 0.0;
            for (int64_t l = 0; l < k; l++) {
                double bl = b[(size_t)(l + j * k)];
                const double* al_col = &a[(size_t)(l * m)];
                for (int64_t i = 0; i < m; i++) {
                    double p = al_col[i] * bl;
                    s[(size_t)i] += p;
                    bound[(size_t)i] += std::fabs(p);
                }
            }
            for (int64_t i = 0; i < m; i++) {
                if (!(bound[(size_t)i] < LIMIT)) {
                    char msg[200];
                    snprintf(msg, sizeof msg, "cublasDgemmStridedBatched: the sum of |a*b| for C(%lld,%lld) of batch %lld is %.0f, not below 2^53: not exact",
                             (long long)i, (long long)j, (long long)z, bound[(size_t)i]);
                    return fail(EXECUTION_FAILED, msg);
                }
                double* c = &Cz[i + j * (int64_t)ldc];
                *c = be == 0.0 ? al * s[(size_t)i] : al * s[(size_t)i] + be * *c;
            }
        }
    }
    return OK;
}

// int8 x int8 -> int32, column-major, as cuBLAS with CUDA_R_8I inputs, CUDA_R_32I output
// and CUBLAS_COMPUTE_32I: alpha and beta are host int32.
CUEMU_EXPORT cublasStatus_t cublasGemmStridedBatchedEx(Handle* h, int transa, int transb, int m, int n, int k,
                                                       const void* alpha, const void* A, int atype, int lda, long long sa,
                                                       const void* B, int btype, int ldb, long long sb, const void* beta,
                                                       void* C, int ctype, int ldc, long long sc, int batch, int compute,
                                                       int algo) {
    (void)algo;
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasGemmStridedBatchedEx: not a handle");
    const int R_8I = 3, R_32I = 10, COMPUTE_32I = 72, COMPUTE_32I_PEDANTIC = 73;
    if (atype != R_8I || btype != R_8I || ctype != R_32I || (compute != COMPUTE_32I && compute != COMPUTE_32I_PEDANTIC))
        return fail(INVALID_VALUE, "cublasGemmStridedBatchedEx: only int8 inputs, int32 output and 32I compute are emulated");
    if (transa < OP_N || transa > OP_C || transb < OP_N || transb > OP_C || m < 0 || n < 0 || k < 0 || batch < 0)
        return fail(INVALID_VALUE, "cublasGemmStridedBatchedEx: bad operation or negative size");
    bool ta = transa != OP_N, tb = transb != OP_N;
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return fail(INVALID_VALUE, "cublasGemmStridedBatchedEx: a leading dimension below its operand's rows");
    if (m == 0 || n == 0 || batch == 0) return OK;
    int32_t al = *static_cast<const int32_t*>(alpha), be = *static_cast<const int32_t*>(beta);
    if (!span_ok(C, 4, m, n, ldc, sc, batch, "C")) return EXECUTION_FAILED;
    if (k > 0 && al != 0 && (!span_ok(A, 1, ar, ac, lda, sa, batch, "A") || !span_ok(B, 1, br, bc, ldb, sb, batch, "B")))
        return EXECUTION_FAILED;
    const int64_t LIMIT = 2147483647;  // 2^31 - 1
    std::vector<int32_t> a((size_t)m * k), b((size_t)k * n);
    std::vector<int64_t> s((size_t)m), bound((size_t)m);
    for (int64_t z = 0; z < batch; z++) {
        const int8_t* Az = static_cast<const int8_t*>(A) + z * sa;
        const int8_t* Bz = static_cast<const int8_t*>(B) + z * sb;
        int32_t* Cz = static_cast<int32_t*>(C) + z * sc;
        for (int64_t l = 0; l < k; l++)
            for (int64_t i = 0; i < m; i++) a[(size_t)(i + l * m)] = ta ? Az[l + i * (int64_t)lda] : Az[i + l * (int64_t)lda];
        for (int64_t j = 0; j < n; j++)
            for (int64_t l = 0; l < k; l++) b[(size_t)(l + j * k)] = tb ? Bz[j + l * (int64_t)ldb] : Bz[l + j * (int64_t)ldb];
        for (int64_t j = 0; j < n; j++) {
            for (int64_t i = 0; i < m; i++) s[(size_t)i] = bound[(size_t)i] = 0;
            for (int64_t l = 0; l < k; l++) {
                int64_t bl = b[(size_t)(l + j * k)];
                const int32_t* acol = &a[(size_t)(l * m)];
                for (int64_t i = 0; i < m; i++) {
                    int64_t p = acol[i] * bl;
                    s[(size_t)i] += p;
                    bound[(size_t)i] += p < 0 ? -p : p;
                }
            }
            for (int64_t i = 0; i < m; i++) {
                int32_t* c = &Cz[i + j * (int64_t)ldc];
                int64_t v = (int64_t)al * s[(size_t)i] + (be == 0 ? 0 : (int64_t)be * *c);
                if (bound[(size_t)i] > LIMIT || v > LIMIT || v < -LIMIT - 1) {
                    char msg[200];
                    snprintf(msg, sizeof msg, "cublasGemmStridedBatchedEx: the sum of |a*b| for C(%lld,%lld) of batch %lld is %lld, over 2^31 - 1: int32 overflow",
                             (long long)i, (long long)j, (long long)z, (long long)bound[(size_t)i]);
                    return fail(EXECUTION_FAILED, msg);
                }
                *c = (int32_t)v;
            }
        }
    }
    return OK;
}
