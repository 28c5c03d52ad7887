// Internal interface of the CPU-executed CUDA driver (libcuda.so) and cuBLAS
// (libcublas.so) in tools/cuda-emu. Not a CUDA header: the Rust side only sees the
// exported cu* / cublas* entry points.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define CUEMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace cuemu {

// One kernel compiled from kernels/*.cu for the CPU, with its C++ signature.
struct Kernel {
    const char* name;
    const char* file;
    std::vector<size_t> param_sizes;
    std::vector<bool> param_is_ptr;
    // Whether its body calls __syncthreads (its threads then run as fibers).
    bool barriers;
    void* fn;
    // Reads the launch's parameters (each from its pointer, as the driver does) into a
    // bound call; `call` runs one thread of it; `drop` frees it.
    void* (*bind)(void* fn, void* const* params);
    void (*call)(void* bound);
    void (*drop)(void* bound);
};

void register_kernel(const Kernel& k);

// Prints "cuda-emu: <message>" on stderr and returns `code`.
int fail(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// 0 when cuInit was called and this thread has the current context, else the error (reported).
int need_context(const char* fn);

// The poison of fresh memory (device and pinned): as a u64 an unlikely value, as a double a NaN.
constexpr uint64_t POISON = 0x7ff4a5a5a5a5a5a5ull;

// A fresh mapping for `bytes` of memory (device or pinned): filled with poison, ending
// (aligned down to `align`) at a guard page, after a guard page. Its start (0 on failure).
uintptr_t guarded_map(size_t bytes, size_t align, void** map, size_t* map_len);

// Pinned host memory (pinned.cpp). The host side of a copy is checked here (the device
// side by the caller): 0 or the error, reported.
int copy_htod(void* dst, const void* src, size_t bytes, const char* fn);
int copy_dtoh(void* dst, const void* src, size_t bytes, const char* fn);
// How many copies involving pinned memory the stream has issued (an event records this).
unsigned long long stream_position();
// Completes the pinned copies issued at or before `pos`: 0 or the error, reported.
int complete_pinned_copies(unsigned long long pos, const char* fn);
// For the fault handler: a line naming a host access at `addr` to freed pinned memory or
// a pinned guard page, or false.
bool describe_pinned_fault(const void* addr, char* buf, size_t len);

template <class T>
T read_param(void* p) {
    T v;
    std::memcpy(static_cast<void*>(&v), p, sizeof(T));
    return v;
}

template <class... A>
struct Bound {
    void (*f)(A...);
    std::tuple<A...> args;
};

template <class... A, size_t... I>
std::tuple<A...> read_params(void* const* params, std::index_sequence<I...>) {
    return std::tuple<A...>{read_param<A>(params[I])...};
}

template <class... A>
Kernel make_kernel(const char* name, const char* file, void (*f)(A...), bool barriers) {
    Kernel k;
    k.name = name;
    k.file = file;
    k.param_sizes = {sizeof(A)...};
    k.param_is_ptr = {std::is_pointer<A>::value...};
    k.barriers = barriers;
    k.fn = reinterpret_cast<void*>(f);
    k.bind = [](void* fn, void* const* params) -> void* {
        using F = void (*)(A...);
        return new Bound<A...>{reinterpret_cast<F>(fn), read_params<A...>(params, std::index_sequence_for<A...>{})};
    };
    k.call = [](void* b) {
        auto* bound = static_cast<Bound<A...>*>(b);
        std::apply(bound->f, bound->args);
    };
    k.drop = [](void* b) { delete static_cast<Bound<A...>*>(b); };
    return k;
}

struct Registrar {
    explicit Registrar(std::initializer_list<Kernel> ks) {
        for (const Kernel& k : ks) register_kernel(k);
    }
};

}  // namespace cuemu

// Shared with libcublas.so: whether [p, p + bytes) lies inside one live allocation
// (0), else writes why into `why` (a static string) and returns nonzero.
CUEMU_EXPORT int cuemu_check_range(const void* p, size_t bytes, const char** why);
