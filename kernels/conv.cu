// Convolution helpers (im2col / col2im) and pooling windows with their adjoints, over
// NCHW tensors. Geometry comes by value in `struct geom`, mirrored by `triad_cuda::Geom`.
// Every kernel computes each output element in one thread by a gather (no atomics), so
// results are deterministic; padded positions read as zero (or `pad` for windows).

typedef unsigned long long u64;
typedef long long i64;

struct geom {
    u64 batch;    // images in this launch
    u64 chans;    // channels of the input
    u64 in_h, in_w;
    u64 kh, kw;
    u64 stride_h, stride_w;
    u64 pad_h, pad_w;
    u64 out_h, out_w;
    u64 n0;       // first image of the launch within the tensor
    u64 col_sn;   // im2col / col2im: stride of one image in the columns buffer
    u64 col_sr;   // im2col / col2im: stride of one row (channel, ky, kx) in the columns buffer
    u64 unused;
};

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// cols[n*col_sn + r*col_sr + p] = input[n0 + n, c, y, x] for row r = (c*kh + ky)*kw + kx
// and output position p = oy*out_w + ox, zero where (y, x) is padding.
extern "C" __global__ void im2col_u64(u64* cols, const u64* input, struct geom g) {
    u64 ohw = g.out_h * g.out_w;
    u64 rows = g.chans * g.kh * g.kw;
    u64 total = g.batch * rows * ohw;
    GRID_STRIDE(t, total) {
        u64 p = t % ohw;
        u64 r = (t / ohw) % rows;
        u64 n = t / (ohw * rows);
        u64 kx = r % g.kw;
        u64 ky = (r / g.kw) % g.kh;
        u64 c = r / (g.kw * g.kh);
        u64 ox = p % g.out_w;
        u64 oy = p / g.out_w;
        i64 y = (i64)(oy * g.stride_h + ky) - (i64)g.pad_h;
        i64 x = (i64)(ox * g.stride_w + kx) - (i64)g.pad_w;
        u64 v = 0;
        if (y >= 0 && x >= 0 && (u64)y < g.in_h && (u64)x < g.in_w) {
            v = input[(((g.n0 + n) * g.chans + c) * g.in_h + (u64)y) * g.in_w + (u64)x];
        }
        cols[n * g.col_sn + r * g.col_sr + p] = v;
    }
}

// The adjoint of im2col: out[n0 + n, c, y, x] = sum of the columns entries that im2col
// would have read from (y, x). Overwrites the images of this launch.
extern "C" __global__ void col2im_u64(u64* out, const u64* cols, struct geom g) {
    u64 plane = g.in_h * g.in_w;
    u64 total = g.batch * g.chans * plane;
    GRID_STRIDE(t, total) {
        u64 x = t % g.in_w;
        u64 y = (t / g.in_w) % g.in_h;
        u64 c = (t / plane) % g.chans;
        u64 n = t / (plane * g.chans);
        u64 acc = 0;
        for (u64 ky = 0; ky < g.kh; ky++) {
            i64 ys = (i64)(y + g.pad_h) - (i64)ky;
            if (ys < 0 || (u64)ys % g.stride_h != 0) continue;
            u64 oy = (u64)ys / g.stride_h;
            if (oy >= g.out_h) continue;
            for (u64 kx = 0; kx < g.kw; kx++) {
                i64 xs = (i64)(x + g.pad_w) - (i64)kx;
                if (xs < 0 || (u64)xs % g.stride_w != 0) continue;
                u64 ox = (u64)xs / g.stride_w;
                if (ox >= g.out_w) continue;
                u64 r = (c * g.kh + ky) * g.kw + kx;
                acc += cols[n * g.col_sn + r * g.col_sr + oy * g.out_w + ox];
            }
        }
        out[(g.n0 + n) * g.chans * plane + c * plane + y * g.in_w + x] = acc;
    }
}

// Window sums: [N, C, H, W] -> [N, C, OH, OW], padding counts as zero.
extern "C" __global__ void pool_sum_u64(u64* out, const u64* input, struct geom g) {
    u64 ohw = g.out_h * g.out_w;
    u64 total = g.batch * g.chans * ohw;
    GRID_STRIDE(t, total) {
        u64 pc = t / ohw;
        u64 oy = (t % ohw) / g.out_w;
        u64 ox = t % g.out_w;
        const u64* src = input + pc * g.in_h * g.in_w;
        u64 acc = 0;
        for (u64 ky = 0; ky < g.kh; ky++) {
            i64 y = (i64)(oy * g.stride_h + ky) - (i64)g.pad_h;
            if (y < 0 || (u64)y >= g.in_h) continue;
            for (u64 kx = 0; kx < g.kw; kx++) {
                i64 x = (i64)(ox * g.stride_w + kx) - (i64)g.pad_w;
                if (x < 0 || (u64)x >= g.in_w) continue;
                acc += src[(u64)y * g.in_w + (u64)x];
            }
        }
        out[t] = acc;
    }
}

// The windows: [N, C, H, W] -> [N, C, OH, OW, KH*KW], padded positions hold `pad`.
extern "C" __global__ void pool_windows_u64(u64* out, const u64* input, struct geom g, u64 pad) {
    u64 kk = g.kh * g.kw;
    u64 ohw = g.out_h * g.out_w;
    u64 total = g.batch * g.chans * ohw * kk;
    GRID_STRIDE(t, total) {
        u64 w = t % kk;
        u64 o = t / kk;
        u64 pc = o / ohw;
        u64 oy = (o % ohw) / g.out_w;
        u64 ox = o % g.out_w;
        u64 ky = w / g.kw;
        u64 kx = w % g.kw;
        i64 y = (i64)(oy * g.stride_h + ky) - (i64)g.pad_h;
        i64 x = (i64)(ox * g.stride_w + kx) - (i64)g.pad_w;
        u64 v = pad;
        if (y >= 0 && x >= 0 && (u64)y < g.in_h && (u64)x < g.in_w) {
            v = input[pc * g.in_h * g.in_w + (u64)y * g.in_w + (u64)x];
        }
        out[t] = v;
    }
}

// Adjoints of pool_sum (windows == 0: grad is [N, C, OH, OW]) and of pool_windows
// (windows == 1: grad is [N, C, OH, OW, KH*KW]): every input position gathers the
// gradients of the window slots that read it.
extern "C" __global__ void pool_backward_u64(u64* out, const u64* grad, struct geom g, int windows) {
    u64 plane = g.in_h * g.in_w;
    u64 ohw = g.out_h * g.out_w;
    u64 kk = g.kh * g.kw;
    u64 total = g.batch * g.chans * plane;
    GRID_STRIDE(t, total) {
        u64 pc = t / plane;
        u64 y = (t % plane) / g.in_w;
        u64 x = t % g.in_w;
        u64 acc = 0;
        for (u64 ky = 0; ky < g.kh; ky++) {
            i64 ys = (i64)(y + g.pad_h) - (i64)ky;
            if (ys < 0 || (u64)ys % g.stride_h != 0) continue;
            u64 oy = (u64)ys / g.stride_h;
            if (oy >= g.out_h) continue;
            for (u64 kx = 0; kx < g.kw; kx++) {
                i64 xs = (i64)(x + g.pad_w) - (i64)kx;
                if (xs < 0 || (u64)xs % g.stride_w != 0) continue;
                u64 ox = (u64)xs / g.stride_w;
                if (ox >= g.out_w) continue;
                u64 o = pc * ohw + oy * g.out_w + ox;
                acc += windows ? grad[o * kk + ky * g.kw + kx] : grad[o];
            }
        }
        out[t] = acc;
    }
}
