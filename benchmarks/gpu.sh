#!/usr/bin/env bash
# The GPU benchmarks, on the JAX backend: MFU of a GPT training step in
# bfloat16 (causal-only attention, then with a padding mask, a larger batch
# and a larger model), and mixed_float16 / mixed_bfloat16 against float32 for the
# Transformer and the ViT. Needs keras_attention's dependencies and JAX with
# CUDA; TensorFlow is not needed.
#
#     bash benchmarks/gpu.sh [OUT_DIR]     # CSVs and logs in OUT_DIR (default outputs/benchmarks)
set -u
out=${1:-outputs/benchmarks}
mkdir -p "$out"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
here=$(dirname "$0")
status=0
run() {  # run NAME CMD...: one benchmark; a failure is reported and the rest still run
    local name=$1
    shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$out/$name.log" | grep -v "^\s*$" | tail -n 40
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || status=1
}
run gpu_mfu python3 "$here/gpu_mfu.py" --out "$out/gpu_mfu.csv"
run gpu_mfu_padding python3 "$here/gpu_mfu.py" --padding-mask --out "$out/gpu_mfu_padding.csv"
run gpu_mfu_b32 python3 "$here/gpu_mfu.py" --batch-size 32 --out "$out/gpu_mfu_b32.csv"
run gpu_mfu_large python3 "$here/gpu_mfu.py" --num-hiddens 2048 --num-heads 16 --num-blks 8 \
    --seq-len 2048 --batch-size 8 --out "$out/gpu_mfu_large.csv"
run mixed_precision python3 "$here/mixed_precision.py" --steps 200 --batch-size 2048 \
    --out "$out/mixed_precision_gpu.csv"
exit $status
