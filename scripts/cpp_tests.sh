#!/usr/bin/env bash
# Build the ops with CMake against the installed libtorch (CPU kernels) and run the C++ tests (ctest).
# Uses $AUDIOSIAM_PY (set by scripts/bootstrap.sh) or python3 to find torch.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${AUDIOSIAM_PY:-python3}"
prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
build="$repo/build/cpp"
mkdir -p "$build"
args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DAUDIOSIAM_CUDA=OFF)
if "$py" -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
  # torch's CMake config insists on finding CUDA when torch is a CUDA build, although these CPU tests use
  # none of it: point it at nvcc and at the runtime and headers that torch's own wheels installed.
  nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
  command -v "$nvcc" >/dev/null 2>&1 || nvcc="$(command -v nvcc || true)"
  if [ -z "$nvcc" ]; then
    echo "audiosiam: C++ tests skipped: this torch is a CUDA build, and its CMake config needs nvcc (CUDA toolkit)," \
         "which is not installed; the Python tests still test every op." >&2
    exit 0
  fi
  cu="$("$py" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
  args+=(-DCUDA_TOOLKIT_ROOT_DIR="$(dirname "$(dirname "$(readlink -f "$nvcc")")")" -DCUDA_NVCC_EXECUTABLE="$nvcc"
         -DCUDA_INCLUDE_DIRS="$cu/include" -DCUDA_CUDART_LIBRARY="$cu/lib/libcudart.so.13")
fi
cmake -S "$repo" -B "$build" "${args[@]}" > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure
