// A CPU-executed CUDA driver (libcuda.so) for tests: exactly the driver entry points the
// CUDA device (crates/cuda, through cudarc) calls, executing kernels compiled for the CPU
// from the unmodified kernels/*.cu. See book/src/cuda-emu.md.
//
// What it checks, as a GPU would (or more strictly):
// - cuModuleLoadData gets the real NVRTC CUBIN; its ELF metadata (kernel names, parameter
//   sizes, launch bounds, static shared memory, registers) is what launches are checked
//   against, and each CUBIN kernel's parameters must match the C++ signature compiled here.
// - cuModuleGetFunction finds only kernels of that module.
// - cuLaunchKernel refuses block sizes over the device limits or the kernel's launch
//   bounds, grids over the limits, shared memory over 48 KiB, registers over 64 Ki per
//   block, and pointer arguments outside every live allocation.
// - Allocations are poisoned when fresh, sit against guard pages (a kernel running off the
//   end of a buffer faults, and the fault is reported with the kernel's name), and are
//   unmapped when freed; copies must stay inside one live allocation.
// - Kernels that call __syncthreads run each block's threads as fibers switched at the
//   barrier (so a missing barrier gives wrong results); barrier divergence is an error.
// - Pinned host memory (cuMemHostAlloc, cuMemFreeHost, the host side of copies, and the
//   events that complete them) is in pinned.cpp.
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "emu.h"
#include "shim.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_LAUNCH_FAILED = 719,
};

namespace cuemu {
uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

CUresult fail(CUresult code, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-emu: %s\n", buf);
    return code;
}
}  // namespace cuemu

namespace {

// ---- reporting --------------------------------------------------------------------------

using cuemu::fail;

[[noreturn]] void fatal(const char* msg) {
    fprintf(stderr, "cuda-emu: fatal: %s\n", msg);
    abort();
}

// ---- kernels compiled into this library ---------------------------------------------------

std::map<std::string, cuemu::Kernel>& registry() {
    static std::map<std::string, cuemu::Kernel> r;
    return r;
}

// ---- device memory -------------------------------------------------------------------------

struct Alloc {
    uintptr_t base;
    size_t size;
    void* map;
    size_t map_len;
};

std::mutex alloc_mu;
std::map<uintptr_t, Alloc> allocs;
size_t in_use = 0;
const size_t PAGE = 4096;

size_t capacity() {
    static size_t cap = [] {
        const char* s = getenv("CUEMU_MEM_BYTES");
        return s ? strtoull(s, nullptr, 10) : (size_t)16 << 30;
    }();
    return cap;
}

// The allocation holding [p, p + n) (n may be 0: p may then be one past the end).
const Alloc* find_locked(uintptr_t p, size_t n) {
    auto it = allocs.upper_bound(p);
    if (it == allocs.begin()) return nullptr;
    --it;
    const Alloc& a = it->second;
    if (p < a.base || p - a.base > a.size || n > a.size - (p - a.base)) return nullptr;
    return &a;
}

bool in_range(uintptr_t p, size_t n) {
    std::lock_guard<std::mutex> g(alloc_mu);
    return find_locked(p, n) != nullptr;
}

using cuemu::POISON;

// ---- contexts, events, modules ------------------------------------------------------------

struct Ctx {
    int refs = 0;
};
Ctx primary;
std::atomic<bool> initialised{false};
thread_local Ctx* current = nullptr;

struct Event {
    uint64_t magic = 0xe7e7e7e7;
    // The stream position when last recorded (0: never recorded, which completes nothing).
    unsigned long long position = 0;
};

struct KInfo {
    std::string name;
    std::vector<size_t> params;
    unsigned max_threads = 1024;
    size_t static_shared = 0;
    unsigned regs = 0;
    const cuemu::Kernel* k = nullptr;
};

struct Module {
    uint64_t magic = 0x6d6f64756c65ull;
    bool live = true;
    std::map<std::string, std::unique_ptr<KInfo>> kernels;
};
std::mutex module_mu;

// ---- the CUBIN's metadata --------------------------------------------------------------------

template <class T>
T rd(const uint8_t* p) {
    T v;
    memcpy(&v, p, sizeof v);
    return v;
}

// Parses an NVRTC CUBIN (ELF64, EM_CUDA) into its kernels. Returns an error message, or
// empty on success.
std::string parse_cubin(const uint8_t* img, Module& m) {
    if (memcmp(img, "\x7f" "ELF", 4) != 0) return "the image is not an ELF CUBIN (PTX text is not supported)";
    if (img[4] != 2) return "the CUBIN is not ELF64";
    if (rd<uint16_t>(img + 0x12) != 190) return "the ELF image is not for EM_CUDA";
    uint64_t shoff = rd<uint64_t>(img + 0x28);
    uint16_t shentsize = rd<uint16_t>(img + 0x3a), shnum = rd<uint16_t>(img + 0x3c),
             shstrndx = rd<uint16_t>(img + 0x3e);
    if (shentsize != 64 || shstrndx >= shnum) return "bad ELF section headers";
    struct Sec {
        uint32_t name, type;
        uint64_t off, size;
        uint32_t link, info;
        uint64_t entsize;
    };
    std::vector<Sec> secs(shnum);
    for (unsigned i = 0; i < shnum; i++) {
        const uint8_t* h = img + shoff + 64ull * i;
        secs[i] = {rd<uint32_t>(h), rd<uint32_t>(h + 4), rd<uint64_t>(h + 0x18), rd<uint64_t>(h + 0x20),
                   rd<uint32_t>(h + 0x28), rd<uint32_t>(h + 0x2c), rd<uint64_t>(h + 0x38)};
    }
    auto sec_name = [&](const Sec& s) { return std::string((const char*)img + secs[shstrndx].off + s.name); };
    // Symbol names by index (for the register counts in .nv.info).
    std::vector<std::string> syms;
    for (const Sec& s : secs) {
        if (s.type != 2 /* SHT_SYMTAB */ || s.entsize != 24) continue;
        const char* strtab = (const char*)img + secs[s.link].off;
        for (uint64_t o = 0; o < s.size; o += 24) syms.push_back(strtab + rd<uint32_t>(img + s.off + o));
    }
    std::map<std::string, unsigned> regs;
    std::map<std::string, size_t> shared;
    for (const Sec& s : secs) {
        std::string n = sec_name(s);
        if (n.rfind(".nv.shared.", 0) == 0) shared[n.substr(11)] = s.size;
    }
    auto attrs = [&](const Sec& s, auto&& each) {
        const uint8_t* b = img + s.off;
        uint64_t i = 0;
        while (i + 4 <= s.size) {
            uint8_t fmt = b[i], attr = b[i + 1];
            if (fmt == 4) {  // EIFMT_SVAL: u16 size, then the value
                uint16_t sz = rd<uint16_t>(b + i + 2);
                each(attr, b + i + 4, (size_t)sz);
                i += 4 + sz;
            } else {  // EIFMT_NVAL / BVAL / HVAL: a 2-byte value
                each(attr, b + i + 2, (size_t)2);
                i += 4;
            }
        }
    };
    for (const Sec& s : secs) {
        if (sec_name(s) != ".nv.info") continue;
        attrs(s, [&](uint8_t attr, const uint8_t* v, size_t sz) {
            if (attr == 0x2f && sz == 8) {  // EIATTR_REGCOUNT: symbol, registers
                uint32_t sym = rd<uint32_t>(v);
                if (sym < syms.size()) regs[syms[sym]] = rd<uint32_t>(v + 4);
            }
        });
    }
    for (const Sec& s : secs) {
        std::string n = sec_name(s);
        if (n.rfind(".nv.info.", 0) != 0) continue;
        auto ki = std::make_unique<KInfo>();
        ki->name = n.substr(9);
        std::map<unsigned, size_t> params;
        attrs(s, [&](uint8_t attr, const uint8_t* v, size_t sz) {
            if (attr == 0x17 && sz == 12) {  // EIATTR_KPARAM_INFO: ordinal, offset, size
                params[rd<uint16_t>(v + 4)] = rd<uint32_t>(v + 8) >> 18;
            } else if (attr == 0x05 && sz == 12) {  // EIATTR_MAX_THREADS (launch bounds)
                ki->max_threads = rd<uint32_t>(v) * rd<uint32_t>(v + 4) * rd<uint32_t>(v + 8);
            }
        });
        for (unsigned i = 0; i < params.size(); i++) {
            if (!params.count(i)) return "kernel " + ki->name + ": parameter ordinals are not contiguous";
            ki->params.push_back(params[i]);
        }
        ki->static_shared = shared.count(ki->name) ? shared[ki->name] : 0;
        ki->regs = regs.count(ki->name) ? regs[ki->name] : 0;
        auto r = registry().find(ki->name);
        if (r == registry().end())
            return "kernel " + ki->name + " is in the CUBIN but not in this emulator build (rebuild tools/cuda-emu)";
        const cuemu::Kernel& k = r->second;
        if (k.param_sizes != ki->params) {
            std::string d = "kernel " + ki->name + ": the CUBIN's parameter sizes (";
            for (size_t p : ki->params) d += std::to_string(p) + " ";
            d += ") differ from the C++ signature's (";
            for (size_t p : k.param_sizes) d += std::to_string(p) + " ";
            return d + ")";
        }
        ki->k = &k;
        m.kernels[ki->name] = std::move(ki);
    }
    if (m.kernels.empty()) return "the CUBIN has no kernels";
    return "";
}

// ---- running blocks -----------------------------------------------------------------------

std::mutex launch_mu;
thread_local const char* running_kernel = nullptr;
struct sigaction old_segv, old_bus;

void on_fault(int sig, siginfo_t* info, void* uc) {
    if (running_kernel) {
        char msg[256];
        int n = snprintf(msg, sizeof msg,
                         "cuda-emu: kernel %s (block %u,%u,%u thread %u,%u,%u) accessed %p, outside every "
                         "live allocation\n",
                         running_kernel, cuemu::blockIdx.x, cuemu::blockIdx.y, cuemu::blockIdx.z, cuemu::threadIdx.x,
                         cuemu::threadIdx.y, cuemu::threadIdx.z, info->si_addr);
        if (n > 0) (void)!write(2, msg, (size_t)n);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    char line[256];
    if (cuemu::describe_pinned_fault(info->si_addr, line, sizeof line)) {
        (void)!write(2, line, strlen(line));
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    struct sigaction* old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, uc);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        sigaction(sig, old, nullptr);  // re-raised by the faulting instruction
    } else {
        old->sa_handler(sig);
    }
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    });
}

enum FiberState { READY, AT_BARRIER, DONE };
struct Fiber {
    ucontext_t ctx;
    FiberState state;
    uint3 tid;
};
ucontext_t scheduler;
Fiber* cur_fiber = nullptr;
const cuemu::Kernel* cur_kernel = nullptr;
void* cur_bound = nullptr;
bool in_fiber_block = false;
const size_t FIBER_STACK = 256 * 1024;
std::vector<void*> stacks;

void fiber_main() {
    cur_kernel->call(cur_bound);
    cur_fiber->state = DONE;
}  // returns to `scheduler` through uc_link

std::string barrier_error;

// Runs one block whose threads meet at __syncthreads: every thread runs until its next
// barrier (or its end), then the next thread, in order; when all wait, the barrier opens.
bool run_fiber_block(unsigned nthreads, const dim3& bd) {
    static std::vector<Fiber> fibers;
    fibers.resize(nthreads);
    while (stacks.size() < nthreads) {
        void* s = mmap(nullptr, FIBER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s == MAP_FAILED) fatal("mmap of a fiber stack failed");
        stacks.push_back(s);
    }
    for (unsigned t = 0; t < nthreads; t++) {
        Fiber& f = fibers[t];
        f.state = READY;
        f.tid = {t % bd.x, (t / bd.x) % bd.y, t / (bd.x * bd.y)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[t];
        f.ctx.uc_stack.ss_size = FIBER_STACK;
        f.ctx.uc_link = &scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
    in_fiber_block = true;
    for (unsigned round = 0;; round++) {
        unsigned done = 0, waiting = 0;
        for (unsigned t = 0; t < nthreads; t++) {
            Fiber& f = fibers[t];
            if (f.state == DONE) {
                done++;
                continue;
            }
            f.state = READY;
            cur_fiber = &f;
            cuemu::threadIdx = f.tid;
            swapcontext(&scheduler, &f.ctx);
            if (f.state == DONE) done++;
            else waiting++;
        }
        if (waiting == 0) break;
        if (done > 0) {
            in_fiber_block = false;
            barrier_error = "barrier divergence: " + std::to_string(waiting) + " threads wait at __syncthreads (barrier " +
                            std::to_string(round + 1) + ") while " + std::to_string(done) + " have exited";
            return false;
        }
    }
    in_fiber_block = false;
    return true;
}

}  // namespace

namespace cuemu {

void register_kernel(const Kernel& k) {
    if (!registry().emplace(k.name, k).second) fatal("a kernel name is defined twice");
}

void syncthreads() {
    if (!in_fiber_block) {
        fprintf(stderr, "cuda-emu: fatal: kernel %s called __syncthreads but was built as barrier-free\n",
                running_kernel ? running_kernel : "?");
        abort();
    }
    Fiber* f = cur_fiber;
    f->state = AT_BARRIER;
    swapcontext(&f->ctx, &scheduler);
    cuemu::threadIdx = f->tid;
}

unsigned long long double2ull_rn(double x) {
    // CUDA's __double2ull_rn: round to nearest even, saturating; NaN gives 2^63.
    if (std::isnan(x)) return 1ull << 63;
    double r = std::nearbyint(x);
    if (r <= 0.0) return 0;
    if (r >= 18446744073709551616.0) return ~0ull;
    return (unsigned long long)r;
}

}  // namespace cuemu

uintptr_t cuemu::guarded_map(size_t bytes, size_t align, void** map, size_t* map_len) {
    // [guard page][... poison, ending at the last guard page (rounded down to `align`)][guard page]
    size_t body = (bytes + PAGE - 1) / PAGE * PAGE;
    size_t len = body + 2 * PAGE;
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return 0;
    mprotect(m, PAGE, PROT_NONE);
    mprotect((char*)m + PAGE + body, PAGE, PROT_NONE);
    uintptr_t base = ((uintptr_t)m + PAGE + body - bytes) & ~(uintptr_t)(align - 1);
    uint64_t* w = reinterpret_cast<uint64_t*>(base);
    for (size_t i = 0; i < bytes / 8; i++) w[i] = POISON;
    memset(reinterpret_cast<char*>(base) + bytes / 8 * 8, 0xa5, bytes % 8);
    *map = m;
    *map_len = len;
    return base;
}

CUEMU_EXPORT int cuemu_check_range(const void* p, size_t bytes, const char** why) {
    std::lock_guard<std::mutex> g(alloc_mu);
    if (find_locked((uintptr_t)p, bytes)) return 0;
    *why = find_locked((uintptr_t)p, 0) ? "runs past the end of its allocation" : "is not inside any live allocation";
    return 1;
}

// ---- the driver API -------------------------------------------------------------------------

int cuemu::need_context(const char* fn) {
    if (!initialised) return fail(CUDA_ERROR_NOT_INITIALIZED, "%s before cuInit", fn);
    if (current != &primary || primary.refs <= 0)
        return fail(CUDA_ERROR_INVALID_CONTEXT, "%s with no current context on this thread", fn);
    return CUDA_SUCCESS;
}

#define NEED_INIT() \
    if (!initialised) return fail(CUDA_ERROR_NOT_INITIALIZED, "%s before cuInit", __func__)
#define NEED_CTX()                                                                        \
    NEED_INIT();                                                                          \
    if (current != &primary || primary.refs <= 0)                                         \
    return fail(CUDA_ERROR_INVALID_CONTEXT, "%s with no current context on this thread", __func__)

CUEMU_EXPORT CUresult cuInit(unsigned flags) {
    if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit flags must be 0");
    install_fault_handler();
    initialised = true;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuDeviceGetCount(int* count) {
    NEED_INIT();
    *count = 1;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuDeviceGet(CUdevice* dev, int ordinal) {
    NEED_INIT();
    if (ordinal != 0) return fail(CUDA_ERROR_INVALID_DEVICE, "no device %d", ordinal);
    *dev = 0;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
    NEED_INIT();
    if (dev != 0 || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "cuda-emu (CPU-executed CUDA emulator, not a GPU)");
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice dev) {
    NEED_INIT();
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
    case 75: *v = 9; return CUDA_SUCCESS;   // compute capability major (sm_90)
    case 76: *v = 0; return CUDA_SUCCESS;   // minor
    case 115: *v = 1; return CUDA_SUCCESS;  // memory pools supported (async alloc)
    default: return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetAttribute: attribute %d is not emulated", attr);
    }
}

CUEMU_EXPORT CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice dev) {
    NEED_INIT();
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    primary.refs++;
    *ctx = &primary;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    NEED_INIT();
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    if (primary.refs <= 0) return fail(CUDA_ERROR_INVALID_CONTEXT, "primary context released more often than retained");
    primary.refs--;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuCtxGetCurrent(void** ctx) {
    NEED_INIT();
    *ctx = current;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuCtxSetCurrent(void* ctx) {
    NEED_INIT();
    if (ctx != nullptr && ctx != &primary) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxSetCurrent: unknown context");
    current = static_cast<Ctx*>(ctx);
    return CUDA_SUCCESS;
}

static CUresult check_stream(void* stream, const char* fn) {
    if (stream != nullptr) return fail(CUDA_ERROR_INVALID_HANDLE, "%s: only the default stream is emulated", fn);
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    if (bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAllocAsync of 0 bytes");
    {
        std::lock_guard<std::mutex> g(alloc_mu);
        if (bytes > capacity() - in_use) return CUDA_ERROR_OUT_OF_MEMORY;
        in_use += bytes;
    }
    void* m;
    size_t len;
    uintptr_t base = cuemu::guarded_map(bytes, 8, &m, &len);
    if (base == 0) {
        std::lock_guard<std::mutex> g(alloc_mu);
        in_use -= bytes;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    {
        std::lock_guard<std::mutex> g(alloc_mu);
        allocs[base] = Alloc{base, bytes, m, len};
    }
    *dptr = base;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    Alloc a;
    {
        std::lock_guard<std::mutex> g(alloc_mu);
        auto it = allocs.find((uintptr_t)dptr);
        if (it == allocs.end())
            return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFreeAsync(%#llx): not the start of a live allocation", dptr);
        a = it->second;
        allocs.erase(it);
        in_use -= a.size;
    }
    munmap(a.map, a.map_len);
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    if (!in_range(dst, bytes))
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemcpyHtoDAsync: %zu bytes at %#llx leave every allocation", bytes, dst);
    return cuemu::copy_htod(reinterpret_cast<void*>(dst), src, bytes, "cuMemcpyHtoDAsync");
}

CUEMU_EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    if (!in_range(src, bytes))
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemcpyDtoHAsync: %zu bytes at %#llx leave every allocation", bytes, src);
    return cuemu::copy_dtoh(dst, reinterpret_cast<const void*>(src), bytes, "cuMemcpyDtoHAsync");
}

CUEMU_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    if (!in_range(src, bytes) || !in_range(dst, bytes))
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemcpyDtoDAsync: %zu bytes %#llx -> %#llx leave every allocation", bytes,
                    src, dst);
    memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    return CUDA_SUCCESS;
}

static Event* live_event(void* ev) {
    Event* e = static_cast<Event*>(ev);
    return e && e->magic == 0xe7e7e7e7 ? e : nullptr;
}

CUEMU_EXPORT CUresult cuEventCreate(void** ev, unsigned flags) {
    NEED_CTX();
    (void)flags;
    *ev = new Event;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuEventDestroy_v2(void* ev) {
    NEED_CTX();
    Event* e = live_event(ev);
    if (!e) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventDestroy: not an event");
    e->magic = 0;
    delete e;
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuEventRecord(void* ev, void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    Event* e = live_event(ev);
    if (!e) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventRecord: not an event");
    e->position = cuemu::stream_position();
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuEventSynchronize(void* ev) {
    NEED_CTX();
    Event* e = live_event(ev);
    if (!e) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventSynchronize: not an event");
    return cuemu::complete_pinned_copies(e->position, __func__);
}

CUEMU_EXPORT CUresult cuStreamSynchronize(void* stream) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    // Kernels and device copies completed when issued; copies to and from pinned memory
    // complete now.
    return cuemu::complete_pinned_copies(~0ull, __func__);
}

CUEMU_EXPORT CUresult cuModuleLoadData(void** module, const void* image) {
    NEED_CTX();
    auto m = std::make_unique<Module>();
    std::string err;
    {
        std::lock_guard<std::mutex> g(module_mu);
        err = parse_cubin(static_cast<const uint8_t*>(image), *m);
    }
    if (!err.empty()) return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: %s", err.c_str());
    *module = m.release();
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuModuleUnload(void* module) {
    NEED_CTX();
    Module* m = static_cast<Module*>(module);
    if (!m || m->magic != 0x6d6f64756c65ull || !m->live) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleUnload: not a live module");
    m->live = false;  // kept, so that a stale function handle is reported rather than followed
    return CUDA_SUCCESS;
}

struct Func {
    Module* m;
    KInfo* k;
};

CUEMU_EXPORT CUresult cuModuleGetFunction(void** fn, void* module, const char* name) {
    NEED_CTX();
    Module* m = static_cast<Module*>(module);
    if (!m || m->magic != 0x6d6f64756c65ull || !m->live) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleGetFunction: not a live module");
    auto it = m->kernels.find(name);
    if (it == m->kernels.end()) {
        std::string have;
        for (auto& kv : m->kernels) have += " " + kv.first;
        return fail(CUDA_ERROR_NOT_FOUND, "cuModuleGetFunction: no kernel %s in this module (it has:%s)", name, have.c_str());
    }
    *fn = new Func{m, it->second.get()};
    return CUDA_SUCCESS;
}

CUEMU_EXPORT CUresult cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                     unsigned bz, unsigned shmem, void* stream, void** params, void** extra) {
    NEED_CTX();
    if (CUresult r = check_stream(stream, __func__)) return r;
    Func* f = static_cast<Func*>(fn);
    if (!f || !f->m || f->m->magic != 0x6d6f64756c65ull) return fail(CUDA_ERROR_INVALID_HANDLE, "cuLaunchKernel: not a function");
    const KInfo& ki = *f->k;
    const char* name = ki.name.c_str();
    if (!f->m->live) return fail(CUDA_ERROR_INVALID_HANDLE, "cuLaunchKernel(%s): its module was unloaded", name);
    if (extra != nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): `extra` is not emulated", name);
    if (!ki.params.empty() && params == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): no parameters", name);
    uint64_t threads = (uint64_t)bx * by * bz;
    if (bx == 0 || by == 0 || bz == 0 || gx == 0 || gy == 0 || gz == 0)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): a zero grid or block dimension", name);
    if (bx > 1024 || by > 1024 || bz > 64 || threads > 1024)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): block %ux%ux%u over the device's limits", name, bx, by, bz);
    if (threads > ki.max_threads)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): %llu threads per block over its launch bounds (%u)", name,
                    (unsigned long long)threads, ki.max_threads);
    if (gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): grid %ux%ux%u over the device's limits", name, gx, gy, gz);
    if (ki.static_shared + shmem > 48 * 1024)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): %zu bytes of shared memory per block over 48 KiB", name,
                    ki.static_shared + shmem);
    uint64_t warps = (threads + 31) / 32;
    uint64_t regs_per_warp = ((uint64_t)ki.regs * 32 + 255) / 256 * 256;
    if (warps * regs_per_warp > 65536)
        return fail(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "cuLaunchKernel(%s): %llu threads x %u registers over 64 Ki per block",
                    name, (unsigned long long)threads, ki.regs);
    const cuemu::Kernel& k = *ki.k;
    for (size_t i = 0; i < k.param_sizes.size(); i++) {
        if (!k.param_is_ptr[i]) continue;
        uintptr_t p = cuemu::read_param<uintptr_t>(params[i]);
        if (!in_range(p, 0))
            return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "cuLaunchKernel(%s): pointer parameter %zu (%#llx) is not inside any live allocation",
                        name, i, (unsigned long long)p);
    }
    std::lock_guard<std::mutex> g(launch_mu);
    void* bound = k.bind(k.fn, params);
    cuemu::gridDim = {gx, gy, gz};
    cuemu::blockDim = {bx, by, bz};
    running_kernel = name;
    cur_kernel = &k;
    cur_bound = bound;
    bool ok = true;
    for (unsigned z = 0; z < gz && ok; z++)
        for (unsigned y = 0; y < gy && ok; y++)
            for (unsigned x = 0; x < gx && ok; x++) {
                cuemu::blockIdx = {x, y, z};
                if (k.barriers) {
                    ok = run_fiber_block((unsigned)threads, cuemu::blockDim);
                } else {
                    for (unsigned t = 0; t < threads; t++) {
                        cuemu::threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
                        k.call(bound);
                    }
                }
            }
    running_kernel = nullptr;
    k.drop(bound);
    if (!ok) return fail(CUDA_ERROR_LAUNCH_FAILED, "kernel %s: %s", name, barrier_error.c_str());
    return CUDA_SUCCESS;
}

static const char* err_name(int e) {
    switch (e) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    default: return nullptr;
    }
}

CUEMU_EXPORT CUresult cuGetErrorName(int e, const char** s) {
    *s = err_name(e);
    return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUEMU_EXPORT CUresult cuGetErrorString(int e, const char** s) {
    // The emulator printed the details on stderr when it returned the error.
    *s = err_name(e);
    return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
