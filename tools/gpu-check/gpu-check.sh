#!/usr/bin/env bash
# The prepared GPU check (packed by tools/gpu-check/pack; runs on the lent GPU machine in
# one call of at most 8 minutes: carry [".gpu"], command "bash .gpu/gpu-check.sh",
# timeout_s 480). Writes at most 8 files into $OUT (or /tmp/gpu-check), the most a call
# brings back:
#   cuda_device.log, cuda_protocols.log, cuda_kernels.log  the GPU suites, TRIAD_REQUIRE_GPU=1
#   suites.txt   the device (nvidia-smi) and each suite's tail
#   gemm.txt     ring GEMM rate of every path beside cuBLAS's own float64 and int8 rates
#   transfer.txt host transfer bandwidth, H2D and D2H: the device's (through its pinned
#                staging buffers) beside raw pageable and raw pinned copies
#   bench.json   triad bench --backend cuda, one line per step, each line one step's JSON
#                array: LeNet/MNIST, AlexNet/CIFAR-10 and VGG-16/CIFAR-10 (inference at
#                batch 1 and one training iteration), then ResNet-50/ImageNet inference at
#                batch 1. Each step runs on its own with its own time limit, so a step that
#                fails or runs out of time loses its own line only.
#   bench.err    each failed step's exit status and stderr (absent when every step passed)
#
# Time: every step has its own limit, and no step may run past DEADLINE seconds from the
# start (each limit is cut to what is left), so the whole check ends within 440 s of a
# 480 s call whatever the steps take. The limits add up to 420 s: suites 160, GEMM rates
# 30 + 25, transfers 15, LeNet 25, AlexNet 35, VGG-16 70, ResNet-50 60.
set -u
cd "$(dirname "$0")/.."
export OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
DEADLINE=440
# Runs "$@" under `timeout`, with the step's limit $1 cut to the seconds left before DEADLINE
# (a step with under 5 s left is skipped with exit status 124).
limited() {
    local want=$1 left=$((DEADLINE - SECONDS))
    shift
    if [ "$left" -lt 5 ]; then
        echo "gpu-check: no time left for: $*" >&2
        return 124
    fi
    [ "$want" -gt "$left" ] && want=$left
    timeout "$want" "$@"
}

# Files the tests read from the working tree: this checkout's, not the one they were built in
# (the packed binaries carry the build machine's CARGO_MANIFEST_DIR).
export TRIAD_MNIST_DIR="$PWD/datasets/mnist-10k"
export TRIAD_KERNELS_DIR="$PWD/kernels"
# NVRTC: the machine's CUDA 13 libraries (the crate names the file in TRIAD_NVRTC_LIB), else
# the one in a Python environment's nvidia-cuda-nvrtc package.
if [ -z "${TRIAD_NVRTC_LIB:-}" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
        if [ -f "$d/libnvrtc.so.13" ]; then export TRIAD_NVRTC_LIB="$d/libnvrtc.so.13"; break; fi
    done
fi
if [ -z "${TRIAD_NVRTC_LIB:-}" ]; then
    f="$(find /opt /usr/local/lib /usr/lib/python3* -name 'libnvrtc.so.13' -print -quit 2>/dev/null)"
    [ -n "$f" ] && export TRIAD_NVRTC_LIB="$f"
fi
echo "TRIAD_NVRTC_LIB=${TRIAD_NVRTC_LIB:-none found}" >"$OUT/suites.txt"
limited 160 bash .gpu/run.sh >>"$OUT/suites.txt" 2>&1
suites=$?
echo "suites exit $suites ($SECONDS s since the start)" >>"$OUT/suites.txt"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
{
    limited 30 .gpu/tools/gemm_rate 4096 5
    limited 25 .gpu/tools/gemm_rate 8192 2
} >"$OUT/gemm.txt" 2>&1
limited 15 .gpu/tools/transfer_rate 256 3 >"$OUT/transfer.txt" 2>&1

# One `triad bench` per step; its JSON (printed at the end of a run) becomes one line of
# bench.json.
: >"$OUT/bench.json"
: >"$OUT/bench.err"
bench() {
    local name=$1 limit=$2 status
    shift 2
    limited "$limit" .gpu/tools/triad bench --backend cuda --json "$@" >"/tmp/gpu-check-$name.json" 2>"/tmp/gpu-check-$name.err"
    status=$?
    if [ "$status" -eq 0 ] && [ -s "/tmp/gpu-check-$name.json" ]; then
        tr -d '\n' <"/tmp/gpu-check-$name.json" >>"$OUT/bench.json"
        echo >>"$OUT/bench.json"
        echo "bench $name: ok ($SECONDS s since the start)"
    else
        echo "bench $name: exit $status$([ "$status" -eq 124 ] && echo ' (out of time)')" | tee -a "$OUT/bench.err"
        tail -n 20 "/tmp/gpu-check-$name.err" >>"$OUT/bench.err"
    fi
}
bench lenet 25 --models lenet --datasets mnist --inference --training
bench alexnet 35 --models alexnet --datasets cifar10 --inference --training
bench vgg16 70 --models vgg16 --datasets cifar10 --inference --training
bench resnet50 60 --models resnet50 --datasets imagenet --inference
[ -s "$OUT/bench.err" ] || rm -f "$OUT/bench.err"
tail -n 3 "$OUT/suites.txt" "$OUT/gemm.txt" "$OUT/transfer.txt"
echo "gpu-check: done in $SECONDS s"
exit $suites
