# Sourced by .ci/run and bench/gpu/build.sh: the CUDA 13.0 toolkit from PyPI (nvcc, the runtime
# headers, CCCL, NVVM; no GPU and no driver needed to compile), in a virtual environment outside
# the checkout, installed on first use; exports CUDA_ROOT, PATH and CUDA_COMPUTE_CAP (H100/H200).
cuda_venv="${ALIG_CUDA_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/alig/cuda-13.0}"
if ! ls "$cuda_venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
  echo "installing the CUDA 13.0 toolkit from PyPI into $cuda_venv" >&2
  python3 -m venv "$cuda_venv"
  "$cuda_venv/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-cccl==13.0.85 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
fi
CUDA_ROOT=$(echo "$cuda_venv"/lib/python3*/site-packages/nvidia/cu13)
export CUDA_ROOT PATH="$CUDA_ROOT/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
