#!/usr/bin/env bash
# Builds the CUDA binary of `train` on a machine without a GPU, for the GPU machine: a release
# build with FEATURES (default cuda,cudnn; add nccl for multi-GPU runs, which then also needs
# Open MPI there) against the CUDA 13.0 toolkit from PyPI. The driver (libcuda) and the CUDA
# libraries that candle links (cuBLAS, cuBLASLt, cuRAND, NVRTC, cuDNN, NCCL) are not on this
# machine: the link goes against stubs made here from the symbols the code references, with the
# real libraries' sonames, so the binary loads the real ones there. Writes bench/gpu/out/: the
# stripped binary compressed (train.xz) and the golden cases `train check` reads.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/gpu/toolkit.sh
features="${FEATURES:-cuda,cudnn}"
target="${CARGO_TARGET_DIR:-target/gpu}"
out=bench/gpu/out
build=(cargo build --release -p train --no-default-features --features "$features" --target-dir "$target")
start=$SECONDS

# 1. Everything but the final link.
"${build[@]}" --lib

# 2. Stubs: every CUDA symbol the compiled code references, as an empty function, in a library
# with the soname the real one has.
stubs="$target/gpu-stubs"
rm -rf "$stubs" && mkdir -p "$stubs"
nm -u "$target"/release/deps/*.rlib 2>/dev/null | awk '{ print $NF }' \
  | grep -E '^(cu[A-Z]|cublas|cublasLt|curand|nvrtc|cudnn|nccl)' | sort -u > "$stubs/symbols.txt"
stub() { # library-name soname symbol-regex
  local c="$stubs/$1.c"
  { grep -E "$3" "$stubs/symbols.txt" || true; } | sed 's/.*/void &(void) {}/' > "$c"
  [ -s "$c" ] || return 0 # not linked by these features
  gcc -shared -fPIC -Wl,-soname,"$2" -o "$stubs/lib$1.so" "$c"
  ln -sf "lib$1.so" "$stubs/$2" # so that the binary also starts here, for its CPU path
  echo "stub lib$1.so ($2): $(wc -l < "$c") symbols"
}
stub cuda libcuda.so.1 '^cu[A-Z]'
stub cublasLt libcublasLt.so.13 '^cublasLt'
stub cublas libcublas.so.13 '^cublas([^L]|$)|^cublasLo'
stub curand libcurand.so.10 '^curand'
stub nvrtc libnvrtc.so.13 '^nvrtc'
stub cudnn libcudnn.so.9 '^cudnn'
stub nccl libnccl.so.2 '^nccl'
# candle's MoE kernels (a static library built by nvcc) call the CUDA runtime, which the pip
# wheel has without the unversioned name the linker asks for.
ln -sf "$CUDA_ROOT/lib/libcudart.so.13" "$stubs/libcudart.so"

# 3. The binary, linked against the stubs.
LIBRARY_PATH="$stubs${LIBRARY_PATH:+:$LIBRARY_PATH}" "${build[@]}" --bin train
# Stripped, then xz-compressed (candle's kernels are mostly PTX text and fatbins): about 76 MB
# becomes 12 MB, under what travels to the GPU machine; check.sh unpacks it there.
mkdir -p "$out/golden"
strip -o "$target/train-stripped" "$target/release/train"
xz -T0 -6 -c "$target/train-stripped" > "$out/train.xz"
rm -rf "$out/golden/zoo" && cp -r "${GOLDEN:-../shared/golden}/zoo" "$out/golden/zoo"
echo "binary: $(du -h "$target/train-stripped" | cut -f1) stripped, $(du -h "$out/train.xz" | cut -f1) as $out/train.xz; features $features; built in $((SECONDS - start)) s"
echo "it needs: $(readelf -d "$target/train-stripped" | awk '/NEEDED/ { gsub(/[][]/, "", $5); printf "%s ", $5 }')"
echo "carried: $(du -sh "$out" | cut -f1) ($out: carry it with the working tree)"
