// Pinned (page-locked) host memory of the CPU-executed CUDA driver: cuMemHostAlloc,
// cuMemFreeHost, and the host side of the copies. See book/src/cuda-emu.md.
//
// What it checks:
// - Each pinned allocation is tracked while live, poisoned when fresh, and ends at a guard
//   page. A copy whose host range lies in a pinned mapping must stay inside that live
//   allocation; host memory that is not pinned (pageable) is not checked.
// - cuMemFreeHost must name the start of a live pinned allocation: a double free, an
//   interior or unknown pointer is CUDA_ERROR_INVALID_VALUE. Freed memory stays reserved
//   without access, so a copy into it is refused and a host access faults, named by the
//   fault handler.
// - Copies to and from pinned memory are asynchronous here as they are on a GPU, at their
//   worst: a copy to the host leaves poison in its destination until the host synchronises
//   on it (an event recorded after it, or the stream); a copy from the host keeps the bytes
//   it read, and when the host synchronises, the source must still hold them (a host write
//   into a buffer while a copy may still be reading it is an error). Freeing pinned memory
//   that such a copy may still use is refused.
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "emu.h"

namespace {

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
};

using cuemu::POISON;

struct HostAlloc {
    uintptr_t base;
    size_t size;
    void* map;
    size_t map_len;
};

// A copy to or from pinned memory that the host may not yet treat as done.
struct Pending {
    uint64_t pos;
    bool to_host;
    uintptr_t host;
    size_t bytes;
    // To the host: the device's bytes, landing at completion. From the host: the bytes it
    // read, which the host must not have changed by completion.
    std::vector<unsigned char> data;
};

std::mutex mu;
std::map<uintptr_t, HostAlloc> live;   // by mapping start
std::map<uintptr_t, HostAlloc> freed;  // by mapping start: reserved, no access
size_t in_use = 0;
uint64_t position = 0;
std::vector<Pending> pending;  // in stream order

size_t capacity() {
    const char* s = getenv("CUEMU_PINNED_BYTES");
    return s ? strtoull(s, nullptr, 10) : (size_t)4 << 30;
}

// The allocation of `m` whose mapping holds p.
const HostAlloc* mapping_of(const std::map<uintptr_t, HostAlloc>& m, uintptr_t p) {
    auto it = m.upper_bound(p);
    if (it == m.begin()) return nullptr;
    --it;
    return p < (uintptr_t)it->second.map + it->second.map_len ? &it->second : nullptr;
}

// 0: [p, p + n) is not pinned memory; 1: it lies inside one live pinned allocation;
// -1: it is pinned memory but not that (`why` says how).
int classify(uintptr_t p, size_t n, const char** why) {
    if (const HostAlloc* a = mapping_of(live, p)) {
        bool starts_inside = p >= a->base && p - a->base <= a->size;
        if (starts_inside && n <= a->size - (p - a->base)) return 1;
        *why = starts_inside ? "runs past the end of its pinned allocation" : "starts in a pinned allocation's guard page";
        return -1;
    }
    if (mapping_of(freed, p)) {
        *why = "is pinned memory already freed by cuMemFreeHost";
        return -1;
    }
    return 0;
}

// Completes the pending copies issued at or before `pos`, in order. Returns false, with
// the first error in `err`, if the host wrote the source of a copy from it too soon.
bool complete(uint64_t pos, std::string& err) {
    size_t done = 0;
    for (; done < pending.size() && pending[done].pos <= pos; done++) {
        Pending& c = pending[done];
        void* host = reinterpret_cast<void*>(c.host);
        if (c.to_host) {
            memcpy(host, c.data.data(), c.bytes);
        } else if (err.empty() && memcmp(host, c.data.data(), c.bytes) != 0) {
            char buf[256];
            snprintf(buf, sizeof buf,
                     "the host wrote pinned memory [%p, +%zu) while a copy to the device from it may still have "
                     "been reading it (no event or stream synchronisation after the copy, before the write)",
                     host, c.bytes);
            err = buf;
        }
    }
    pending.erase(pending.begin(), pending.begin() + (long)done);
    return err.empty();
}

// Stream order: a copy touching host bytes of an earlier pending copy comes after it, so
// that one (and everything before it) completes first.
bool complete_overlapping(uintptr_t p, size_t n, std::string& err) {
    uint64_t upto = 0;
    for (const Pending& c : pending)
        if (c.host < p + n && p < c.host + c.bytes) upto = c.pos;
    return upto == 0 || complete(upto, err);
}

// The host side of a copy: 0 (and `pinned` set) or an error code, reported.
int check_host(const void* host, size_t bytes, const char* fn, bool& pinned) {
    const char* why = "";
    int c = classify((uintptr_t)host, bytes, &why);
    if (c < 0) return cuemu::fail(CUDA_ERROR_INVALID_VALUE, "%s: %zu bytes of host memory at %p: %s", fn, bytes, host, why);
    pinned = c == 1;
    std::string err;
    if (pinned && !complete_overlapping((uintptr_t)host, bytes, err))
        return cuemu::fail(CUDA_ERROR_ILLEGAL_ADDRESS, "%s: %s", fn, err.c_str());
    return CUDA_SUCCESS;
}

}  // namespace

namespace cuemu {

int copy_htod(void* dst, const void* src, size_t bytes, const char* fn) {
    std::lock_guard<std::mutex> g(mu);
    bool pinned = false;
    if (int r = check_host(src, bytes, fn, pinned)) return r;
    memcpy(dst, src, bytes);
    if (pinned) {
        const unsigned char* s = static_cast<const unsigned char*>(src);
        pending.push_back(Pending{++position, false, (uintptr_t)src, bytes, std::vector<unsigned char>(s, s + bytes)});
    }
    return CUDA_SUCCESS;
}

int copy_dtoh(void* dst, const void* src, size_t bytes, const char* fn) {
    std::lock_guard<std::mutex> g(mu);
    bool pinned = false;
    if (int r = check_host(dst, bytes, fn, pinned)) return r;
    if (!pinned) {
        memcpy(dst, src, bytes);  // to pageable memory a GPU's copy is synchronous too
        return CUDA_SUCCESS;
    }
    const unsigned char* s = static_cast<const unsigned char*>(src);
    pending.push_back(Pending{++position, true, (uintptr_t)dst, bytes, std::vector<unsigned char>(s, s + bytes)});
    // Until the host synchronises, the destination holds poison, not the data.
    unsigned char* d = static_cast<unsigned char*>(dst);
    for (size_t i = 0; i < bytes; i++) d[i] = (unsigned char)(POISON >> (8 * (((uintptr_t)d + i) % 8)));
    return CUDA_SUCCESS;
}

unsigned long long stream_position() {
    std::lock_guard<std::mutex> g(mu);
    return position;
}

int complete_pinned_copies(unsigned long long pos, const char* fn) {
    std::lock_guard<std::mutex> g(mu);
    std::string err;
    if (!complete(pos, err)) return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "%s: %s", fn, err.c_str());
    return CUDA_SUCCESS;
}

bool describe_pinned_fault(const void* addr, char* buf, size_t len) {
    // Called from the fault handler: never wait for the lock.
    std::unique_lock<std::mutex> g(mu, std::try_to_lock);
    if (!g.owns_lock()) return false;
    const char* what = mapping_of(freed, (uintptr_t)addr) ? "pinned memory freed by cuMemFreeHost"
                       : mapping_of(live, (uintptr_t)addr) ? "a guard page of a pinned allocation"
                                                           : nullptr;
    if (!what) return false;
    snprintf(buf, len, "cuda-emu: host access to %p: %s\n", addr, what);
    return true;
}

}  // namespace cuemu

CUEMU_EXPORT int cuMemHostAlloc(void** pp, size_t bytes, unsigned flags) {
    using cuemu::fail;
    if (int r = cuemu::need_context(__func__)) return r;
    if (flags & ~7u) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc: flags %#x beyond PORTABLE | DEVICEMAP | WRITECOMBINED", flags);
    if (bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc of 0 bytes");
    {
        std::lock_guard<std::mutex> g(mu);
        size_t cap = capacity();
        if (bytes > cap || in_use > cap - bytes)
            return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemHostAlloc: %zu bytes over the pinned capacity (CUEMU_PINNED_BYTES=%zu, %zu in use)",
                        bytes, cap, in_use);
        in_use += bytes;
    }
    void* m;
    size_t len;
    uintptr_t base = cuemu::guarded_map(bytes, 64, &m, &len);
    if (base == 0) {
        std::lock_guard<std::mutex> g(mu);
        in_use -= bytes;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    {
        std::lock_guard<std::mutex> g(mu);
        live[(uintptr_t)m] = HostAlloc{base, bytes, m, len};
    }
    *pp = reinterpret_cast<void*>(base);
    return CUDA_SUCCESS;
}

CUEMU_EXPORT int cuMemFreeHost(void* p) {
    using cuemu::fail;
    if (int r = cuemu::need_context(__func__)) return r;
    std::lock_guard<std::mutex> g(mu);
    const HostAlloc* a = mapping_of(live, (uintptr_t)p);
    if (!a || a->base != (uintptr_t)p) {
        const HostAlloc* f = mapping_of(freed, (uintptr_t)p);
        const char* why = f && f->base == (uintptr_t)p ? "a double free (already freed)"
                          : f                          ? "inside pinned memory already freed"
                          : a                          ? "not the start of its pinned allocation"
                                                       : "not pinned memory from cuMemHostAlloc";
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost(%p): %s", p, why);
    }
    for (const Pending& c : pending)
        if (c.host < a->base + a->size && a->base < c.host + c.bytes)
            return fail(CUDA_ERROR_INVALID_VALUE,
                        "cuMemFreeHost(%p): a copy %s it may still be in flight (synchronise on an event recorded after "
                        "it, or the stream, first)",
                        p, c.to_host ? "to" : "from");
    HostAlloc h = *a;
    live.erase((uintptr_t)h.map);
    in_use -= h.size;
    // Keep the addresses reserved, without access or memory: a later use faults or is refused.
    if (mmap(h.map, h.map_len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
        munmap(h.map, h.map_len);
    else
        freed[(uintptr_t)h.map] = h;
    return CUDA_SUCCESS;
}
