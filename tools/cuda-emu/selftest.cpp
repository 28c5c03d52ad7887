// Self-test of the emulator's own checks (tools/cuda-emu/test runs it before the suites):
// each refusal below must happen, and the legal calls must succeed. Linked directly against
// the built libcuda.so and libcublas.so.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
int cuInit(unsigned);
int cuDeviceGet(int*, int);
int cuDevicePrimaryCtxRetain(void**, int);
int cuCtxSetCurrent(void*);
int cuMemAllocAsync(unsigned long long*, size_t, void*);
int cuMemFreeAsync(unsigned long long, void*);
int cuMemcpyHtoDAsync_v2(unsigned long long, const void*, size_t, void*);
int cuMemcpyDtoHAsync_v2(void*, unsigned long long, size_t, void*);
int cuModuleLoadData(void**, const void*);
int cuMemHostAlloc(void**, size_t, unsigned);
int cuMemFreeHost(void*);
int cuEventCreate(void**, unsigned);
int cuEventRecord(void*, void*);
int cuEventSynchronize(void*);
int cuStreamSynchronize(void*);
int cublasCreate_v2(void**);
int cublasDgemmStridedBatched(void*, int, int, int, int, int, const double*, const double*, int, long long,
                              const double*, int, long long, const double*, double*, int, long long, int);
int cublasGemmStridedBatchedEx(void*, int, int, int, int, int, const void*, const void*, int, int, long long,
                               const void*, int, int, long long, const void*, void*, int, int, long long, int, int, int);
}

static int failures = 0;
static void expect(bool ok, const char* what) {
    printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

// Pinned host memory: tracked, poisoned, bounds-checked, asynchronous at its worst.
// `dev` is a live 64-byte device allocation.
static void pinned_memory(unsigned long long dev) {
    const unsigned long long POISON = 0x7ff4a5a5a5a5a5a5ull;
    unsigned long long* h = nullptr;
    expect(cuMemHostAlloc((void**)&h, 64, 0) == 0 && h[0] == POISON && h[7] == POISON, "fresh pinned memory is poison");
    expect(cuMemcpyHtoDAsync_v2(dev, h + 1, 64, nullptr) == 1, "a copy from past the end of a pinned allocation is refused");
    expect(cuMemcpyDtoHAsync_v2(h + 1, dev, 64, nullptr) == 1, "a copy to past the end of a pinned allocation is refused");
    void* ev;
    expect(cuEventCreate(&ev, 0) == 0 && cuEventSynchronize(ev) == 0, "an event never recorded is complete");
    unsigned long long values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cuMemcpyHtoDAsync_v2(dev, values, 64, nullptr);
    bool issued = cuMemcpyDtoHAsync_v2(h, dev, 64, nullptr) == 0;
    expect(issued && h[0] == POISON && h[7] == POISON, "a copy into pinned memory leaves poison until the host synchronises");
    expect(cuEventRecord(ev, nullptr) == 0 && cuEventSynchronize(ev) == 0 && h[0] == 1 && h[7] == 8,
           "it lands when the host synchronises on an event recorded after it");
    expect(cuMemcpyHtoDAsync_v2(dev, h, 64, nullptr) == 0 && cuEventRecord(ev, nullptr) == 0, "a copy from pinned memory");
    h[3] = 99;
    expect(cuEventSynchronize(ev) == 700, "a host write into its source before synchronising is an error");
    expect(cuMemcpyHtoDAsync_v2(dev, h, 64, nullptr) == 0 && cuEventRecord(ev, nullptr) == 0 && cuEventSynchronize(ev) == 0,
           "the same copy synchronised before the write");
    h[3] = 4;
    expect(cuMemcpyHtoDAsync_v2(dev, h, 64, nullptr) == 0 && cuEventRecord(ev, nullptr) == 0 &&
               cuMemcpyHtoDAsync_v2(dev, h, 32, nullptr) == 0 && cuEventSynchronize(ev) == 0,
           "two copies from the same pinned bytes (reads only)");
    cuMemcpyDtoHAsync_v2(h, dev, 64, nullptr);
    expect(cuMemFreeHost(h) == 1, "freeing pinned memory that a copy may still use is refused");
    expect(cuStreamSynchronize(nullptr) == 0 && h[0] == 1 && cuMemFreeHost(h) == 0, "freed after a stream synchronisation");
    expect(cuMemFreeHost(h) == 1, "a double free of pinned memory is refused");
    expect(cuMemFreeHost(values) == 1, "freeing host memory that is not pinned is refused");
    unsigned long long* h2 = nullptr;
    expect(cuMemHostAlloc((void**)&h2, 4096, 0) == 0 && cuMemFreeHost(h2 + 1) == 1, "freeing inside a pinned allocation is refused");
    cuMemFreeHost(h2);
    expect(cuMemcpyHtoDAsync_v2(dev, h, 8, nullptr) == 1 && cuMemcpyDtoHAsync_v2(h, dev, 8, nullptr) == 1,
           "a copy from or to freed pinned memory is refused");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        volatile unsigned long long x = *(volatile unsigned long long*)h;  // faults: named, then abort
        _exit((int)(x & 1) + 3);
    }
    int status = 0;
    waitpid(child, &status, 0);
    expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "a host access to freed pinned memory faults and is named");
    setenv("CUEMU_PINNED_BYTES", "4096", 1);
    void* big;
    expect(cuMemHostAlloc(&big, 8192, 0) == 2, "pinned memory past CUEMU_PINNED_BYTES is CUDA_ERROR_OUT_OF_MEMORY");
    unsetenv("CUEMU_PINNED_BYTES");
    expect(cuMemHostAlloc(&big, 8, 8) == 1, "unknown cuMemHostAlloc flags are refused");
}

int main() {
    void* ctx;
    int dev;
    expect(cuMemAllocAsync(nullptr, 8, nullptr) == 3, "a call before cuInit is CUDA_ERROR_NOT_INITIALIZED");
    expect(cuInit(0) == 0 && cuDeviceGet(&dev, 0) == 0 && cuDevicePrimaryCtxRetain(&ctx, dev) == 0, "init");
    unsigned long long p;
    expect(cuMemAllocAsync(&p, 64, nullptr) == 201, "an allocation with no current context is refused");
    expect(cuCtxSetCurrent(ctx) == 0 && cuMemAllocAsync(&p, 64, nullptr) == 0, "an allocation");
    unsigned long long host[8];
    double as_double = 0;
    bool copied = cuMemcpyDtoHAsync_v2(host, p, 64, nullptr) == 0;
    memcpy(&as_double, &host[3], sizeof as_double);
    expect(copied && host[0] == 0x7ff4a5a5a5a5a5a5ull && std::isnan(as_double),
           "a fresh allocation is poison (a NaN as a double)");
    expect(cuMemcpyHtoDAsync_v2(p + 8, host, 64, nullptr) == 1, "a copy past the end of an allocation is refused");
    expect(cuMemFreeAsync(p + 8, nullptr) == 1, "freeing inside an allocation is refused");
    pinned_memory(p);
    const char not_elf[] = "// PTX text\n.version 8.0\n";
    void* mod;
    expect(cuModuleLoadData(&mod, not_elf) == 200, "a module that is not a CUBIN is CUDA_ERROR_INVALID_IMAGE");

    void* h;
    expect(cublasCreate_v2(&h) == 0, "cuBLAS handle");
    const double one = 1.0, zero = 0.0;
    // 2 x 2 times 2 x 2, column-major, in three device buffers.
    unsigned long long a, b, c;
    cuMemAllocAsync(&a, 32, nullptr);
    cuMemAllocAsync(&b, 32, nullptr);
    cuMemAllocAsync(&c, 32, nullptr);
    double av[4] = {1, 2, 3, 4}, bv[4] = {5, 6, 7, 8}, cv[4];
    cuMemcpyHtoDAsync_v2(a, av, 32, nullptr);
    cuMemcpyHtoDAsync_v2(b, bv, 32, nullptr);
    expect(cublasDgemmStridedBatched(h, 0, 0, 2, 2, 2, &one, (double*)a, 2, 4, (double*)b, 2, 4, &zero, (double*)c, 2, 4, 1) == 0 &&
               cuMemcpyDtoHAsync_v2(cv, c, 32, nullptr) == 0 && cv[0] == 23 && cv[1] == 34 && cv[2] == 31 && cv[3] == 46,
           "dgemm computes A*B column-major");
    expect(cublasDgemmStridedBatched(h, 0, 0, 2, 2, 2, &one, (double*)a, 2, 4, (double*)b, 2, 4, &zero, (double*)c, 2, 4, 2) == 13,
           "a batch past the operands' allocations is refused");
    expect(cublasDgemmStridedBatched(h, 0, 0, 2, 2, 2, &one, (double*)a, 1, 4, (double*)b, 2, 4, &zero, (double*)c, 2, 4, 1) == 7,
           "a leading dimension below the rows is CUBLAS_STATUS_INVALID_VALUE");
    av[1] = 0.5;
    cuMemcpyHtoDAsync_v2(a, av, 32, nullptr);
    expect(cublasDgemmStridedBatched(h, 0, 0, 2, 2, 2, &one, (double*)a, 2, 4, (double*)b, 2, 4, &zero, (double*)c, 2, 4, 1) == 13,
           "a non-integer operand is refused");
    double big[4] = {67108864.0, 67108864.0, 1, 1};  // 2^26: 2^26 * 2^26 * 2 = 2^53
    cuMemcpyHtoDAsync_v2(a, big, 32, nullptr);
    cuMemcpyHtoDAsync_v2(b, big, 32, nullptr);
    expect(cublasDgemmStridedBatched(h, 1, 0, 1, 1, 2, &one, (double*)a, 2, 4, (double*)b, 2, 4, &zero, (double*)c, 2, 4, 1) == 13,
           "a dot product reaching 2^53 is refused (not exact)");
    unsigned long long i8a, i32c;
    cuMemAllocAsync(&i8a, 4, nullptr);
    cuMemAllocAsync(&i32c, 16, nullptr);
    signed char m128[4] = {-128, -128, -128, -128};
    cuMemcpyHtoDAsync_v2(i8a, m128, 4, nullptr);
    const int ione = 1, izero = 0;
    int ic[4];
    expect(cublasGemmStridedBatchedEx(h, 0, 0, 2, 2, 2, &ione, (void*)i8a, 3, 2, 4, (void*)i8a, 3, 2, 4, &izero, (void*)i32c, 10, 2, 4, 1, 72, -1) == 0 &&
               cuMemcpyDtoHAsync_v2(ic, i32c, 16, nullptr) == 0 && ic[0] == 32768 && ic[3] == 32768,
           "int8 GemmEx computes exact int32 sums");
    expect(cublasGemmStridedBatchedEx(h, 0, 0, 2, 2, 2, &ione, (void*)i8a, 0, 2, 4, (void*)i8a, 3, 2, 4, &izero, (void*)i32c, 10, 2, 4, 1, 72, -1) == 7,
           "GemmEx with a float input type is refused");
    printf(failures ? "cuda-emu selftest: %d FAILED\n" : "cuda-emu selftest: all checks refused and allowed as expected (%d failures)\n", failures);
    return failures ? 1 : 0;
}
