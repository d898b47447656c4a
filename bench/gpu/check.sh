#!/usr/bin/env bash
# On the lent GPU machine (no network, no cargo; PyTorch and the CUDA libraries in the Python
# environment of `python3`), with bench/gpu/out/ from build.sh carried along:
#   `train check --device cuda` (every model and optimizer against the CPU, the golden cases on
#   the GPU, checkpoints crossing), `train bench --device cuda` in f32, tf32 and bf16 (mixed
#   precision), a short f16 training run, and the PyTorch peer on the same models in f32, tf32 and
#   bf16 (autocast). Everything it prints is also written under $OUT (or
#   bench/gpu/out/report). Expected running time: at most 8 minutes (the timeouts), about 5 expected, on an H200.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-bench/gpu/out/report}"
mkdir -p "$out"
bin=/tmp/alig-train
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  bench/gpu/out/train.xz "$bin" && chmod +x "$bin"
# The CUDA libraries of the pip wheels (cuBLAS, cuDNN, NVRTC, cuRAND, NCCL) for the loader.
libs=$(python3 -c 'import glob, os, nvidia
print(":".join(sorted({os.path.dirname(f) for p in nvidia.__path__ for f in glob.glob(p + "/**/lib*.so*", recursive=True)})))')
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
step() { # name timeout command...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$out/log.txt"
  local t=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt" | tee -a "$out/log.txt"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t)) s" | tee -a "$out/log.txt"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
ldd "$bin" | grep -E 'not found|cuda|cublas|cudnn|nvrtc|curand|nccl' | tee "$out/ldd.txt"
step check 120 "$bin" check --device cuda --golden bench/gpu/out/golden --json "$out/check.json"
for p in f32 tf32 bf16; do
  step "bench-$p" 60 "$bin" bench --device cuda --precision "$p" --json "$out/bench-$p.json"
done
# Mixed precision end to end: f16 with loss scaling and bf16, on the digits (embedded in the binary).
for p in f16 bf16; do
  step "train-$p" 30 "$bin" --data digits --model wrn --depth 16 --width 2 --opt alig --epochs 3 \
    --device cuda --precision "$p" --out "/tmp/alig-$p" --quiet
  cat "/tmp/alig-$p/metrics.jsonl" >> "$out/train-$p.txt" 2>/dev/null
done
for p in f32 tf32 bf16; do
  step "torch-$p" 40 python3 bench/train_step.py --torch-all --device cuda --precision "$p"
done
