// Internal interface of the CPU-executed CUDA driver (libcuda.so) and cuBLAS
// (libcublas.so) in tools/cuda-emu. Not a CUDA header: the Rust side only sees the
// exported cu* / cublas* entry points.
#pragma once
#include <cstddef>
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
