#!/usr/bin/env bash
# The prepared GPU check (packed by tools/gpu-check/pack; runs on the lent GPU machine in
# one call of at most 8 minutes). Writes into $OUT (or /tmp/gpu-check):
#   cuda_device.log, cuda_protocols.log, cuda_kernels.log  the GPU suites, TRIAD_REQUIRE_GPU=1
#   suites.txt   the device (nvidia-smi) and each suite's tail
#   gemm.txt     ring GEMM rate of every path beside cuBLAS's own float64 and int8 rates
#   transfer.txt host transfer bandwidth, H2D and D2H: the device's (through its pinned
#                staging buffers) beside raw pageable and raw pinned copies
#   bench.json   triad bench --backend cuda: LeNet, AlexNet, VGG-16 inference at batch 1
#                and one training iteration
#   resnet50.json  triad bench --backend cuda: ResNet-50 inference at batch 1
set -u
cd "$(dirname "$0")/.."
export OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
# NVRTC: the machine's CUDA 13 libraries (the crate names the file in TRIAD_NVRTC_LIB).
if [ -z "${TRIAD_NVRTC_LIB:-}" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
        if [ -f "$d/libnvrtc.so.13" ]; then export TRIAD_NVRTC_LIB="$d/libnvrtc.so.13"; break; fi
    done
fi
echo "TRIAD_NVRTC_LIB=${TRIAD_NVRTC_LIB:-none found}" >"$OUT/suites.txt"
timeout 200 bash .gpu/run.sh >>"$OUT/suites.txt" 2>&1
suites=$?
echo "suites exit $suites" >>"$OUT/suites.txt"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
{
    timeout 40 .gpu/tools/gemm_rate 4096 5
    timeout 30 .gpu/tools/gemm_rate 8192 2
} >"$OUT/gemm.txt" 2>&1
timeout 10 .gpu/tools/transfer_rate 256 3 >"$OUT/transfer.txt" 2>&1
timeout 120 .gpu/tools/triad bench --backend cuda --models lenet,alexnet,vgg16 --inference --training --json \
    >"$OUT/bench.json" 2>"$OUT/bench.err"
timeout 60 .gpu/tools/triad bench --backend cuda --models resnet50 --inference --json \
    >"$OUT/resnet50.json" 2>>"$OUT/bench.err"
[ -s "$OUT/bench.err" ] || rm -f "$OUT/bench.err"
tail -n 3 "$OUT/suites.txt" "$OUT/gemm.txt" "$OUT/transfer.txt"
exit $suites
