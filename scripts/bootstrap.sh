#!/usr/bin/env bash
# Creates (or reuses) the Python environment for audiosiam and builds the package into it.
#
# Sourced by scripts/quickstart.sh and scripts/test.sh; after it, $AUDIOSIAM_PY is the interpreter to use.
# Needs only python3.11 (or newer) and a C++ compiler. torch's CUDA 13.0 build is ~5 GB, so the
# environment lives in a cache folder keyed by requirements.txt and is reused by every later run (and
# by every clone: CI clones afresh each time). Override its location with AUDIOSIAM_VENV.
#
# CUDA kernels are compiled when asked (AUDIOSIAM_CUDA=1), when torch sees a GPU, or in CI (CI=true) where
# nvcc exists; CPU kernels otherwise (AUDIOSIAM_CUDA=0 forces that). An unchanged tree is not compiled again.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "audiosiam: needs Python 3.11 or newer; '$python_bin' is $("$python_bin" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
}

key="$( (cat "$repo/requirements.txt"; "$python_bin" --version) | sha256sum | cut -c1-12)"
venv="${AUDIOSIAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/audiosiam/venv-$key}"
# The marker is written only after a complete install, so an interrupted install is redone, not trusted.
if [ ! -f "$venv/.audiosiam-complete" ]; then
  echo "audiosiam: creating the environment in $venv (first run only: downloads ~5 GB, takes a few minutes)"
  rm -rf "$venv"
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --progress-bar off -r "$repo/requirements.txt"
  touch "$venv/.audiosiam-complete"
fi
lint_marker="$venv/.lint-$(sha256sum "$repo/requirements-lint.txt" | cut -c1-12)"
if [ ! -f "$lint_marker" ]; then
  "$venv/bin/python" -m pip install --quiet --progress-bar off -r "$repo/requirements-lint.txt"
  touch "$lint_marker"
fi
nodeps_marker="$venv/.nodeps-$(sha256sum "$repo/requirements-nodeps.txt" | cut -c1-12)"
if [ ! -f "$nodeps_marker" ]; then
  "$venv/bin/python" -m pip install --quiet --progress-bar off --no-deps -r "$repo/requirements-nodeps.txt"
  touch "$nodeps_marker"
fi
export AUDIOSIAM_PY="$venv/bin/python"
export PATH="$venv/bin:$PATH"

# torch's cpp_extension finds CUDA through CUDA_HOME or nvcc on PATH.
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
# CUDA kernels: when asked (AUDIOSIAM_CUDA=1), else setup.py's own rule (a GPU that torch sees). CI
# (CI=true) compiles them wherever nvcc exists, so the CUDA sources stay checked on GPU-less machines.
if [ -z "${AUDIOSIAM_CUDA:-}" ] && [ "${CI:-}" = true ]; then
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ] || command -v nvcc >/dev/null 2>&1; then
    export AUDIOSIAM_CUDA=1
  fi
fi

# Rebuild only when what the compiled core is made of changed: its sources and build files, torch, the
# CUDA choice, and this clone (the editable install maps the package to one clone's folder; a build from
# another clone replaces the mapping, and this check then sees it).
build_key="$(
  cd "$repo" && {
    find csrc -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum setup.py pyproject.toml CMakeLists.txt 2>/dev/null || true
    echo "$repo ${AUDIOSIAM_CUDA:-auto} ${AUDIOSIAM_NO_EXTENSION:-}"
    "$AUDIOSIAM_PY" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>/dev/null
  } | sha256sum | cut -c1-16
)"
build_marker="$venv/.build-$build_key"
loaded_from="$(cd / && "$AUDIOSIAM_PY" -c 'import audiosiam, os; print(os.path.dirname(os.path.dirname(audiosiam.__file__)))' 2>/dev/null || true)"
if [ -f "$build_marker" ] && [ "$loaded_from" = "$repo" ] && compgen -G "$repo/audiosiam/_C*.so" >/dev/null; then
  echo "audiosiam: the package in $repo is built and unchanged since (nothing to compile)"
  return 0 2>/dev/null || exit 0
fi

n_cpp=$(find "$repo/csrc" -name '*.cpp' | wc -l)
n_cu=$(find "$repo/csrc" -name '*.cu' | wc -l)
case "${AUDIOSIAM_CUDA:-}" in
  1) cuda_note="CUDA kernels: on, $n_cu .cu files" ;;
  0) cuda_note="CUDA kernels: off" ;;
  *) cuda_note="CUDA kernels: if torch sees a GPU" ;;
esac
echo "audiosiam: building the package: $n_cpp C++ files ($cuda_note); a few minutes on 2 cores"
rm -f "$venv"/.build-*
start=$SECONDS
( while sleep 30; do echo "audiosiam:   still compiling ($((SECONDS - start)) s)"; done ) &
heartbeat=$!
# --no-build-isolation: compile against the torch just installed instead of downloading another 5 GB.
if (cd "$repo" && "$AUDIOSIAM_PY" -m pip install --quiet --no-build-isolation --no-deps -e .); then
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  touch "$build_marker"
  echo "audiosiam: built in $((SECONDS - start)) s"
else
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  echo "audiosiam: the build failed; the log above names the file and line." >&2
  exit 1
fi
