#!/usr/bin/env bash
# Builds the wheel: the package with its compiled core (the CPU kernels at every CPU level, chosen at run
# time; the CUDA kernels too with AUDIOSIAM_CUDA=1), the bundled models and the example clips; repairs it
# to a manylinux tag with auditwheel and prints the tag.
#   bash scripts/build_wheel.sh               # -> wheelhouse/audiosiam-VERSION-cpXY-cpXY-manylinux_*.whl
#   AUDIOSIAM_CUDA=1 bash scripts/build_wheel.sh
# Uses $AUDIOSIAM_PY (set by scripts/bootstrap.sh) or python3, which must hold requirements.txt (torch,
# build, auditwheel): the build compiles against that torch, without build isolation (which would download
# another 5 GB). WHEELHOUSE=/path puts the wheel elsewhere.
#
# torch's own libraries (libtorch*, libc10*, and the libgomp and CUDA runtime that torch's wheels bring)
# are not copied into the wheel: the extension is tied to torch's ABI, so the wheel requires torch==2.11.*,
# whose libraries are loaded before audiosiam._C. Nothing else needs grafting, so where patchelf is absent
# auditwheel runs without it (AUDITWHEEL_PATCHER=none). --strip drops the debug information (28 MB of the
# library's 29).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${AUDIOSIAM_PY:-python3}"
out="${WHEELHOUSE:-$repo/wheelhouse}"
export AUDIOSIAM_CUDA="${AUDIOSIAM_CUDA:-0}"
command -v patchelf >/dev/null 2>&1 || export AUDITWHEEL_PATCHER="${AUDITWHEEL_PATCHER:-none}"

raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
echo "audiosiam: building the wheel (CUDA kernels: $([ "$AUDIOSIAM_CUDA" = 1 ] && echo on || echo off)); a few minutes on 2 cores"
(cd "$repo" && "$py" -m build --wheel --no-isolation --outdir "$raw" . > "$raw/build.log" 2>&1) || {
  tail -n 40 "$raw/build.log"
  echo "audiosiam: the wheel build failed; the log above names the file and line." >&2
  exit 1
}
mkdir -p "$out"
"$py" -m auditwheel repair --wheel-dir "$out" --strip \
  --exclude 'libtorch*.so' --exclude 'libc10*.so' --exclude 'libgomp.so.1' \
  --exclude 'libcudart.so.*' --exclude 'libcaffe2_nvrtc.so' \
  "$raw"/audiosiam-*.whl
wheel="$(ls -t "$out"/audiosiam-*.whl | head -n 1)"
# show knows no --exclude: it counts torch's libraries as external, hence "consistent with linux_x86_64";
# the manylinux tag it names after "constrains the platform tag to" is the one repair gave.
"$py" -m auditwheel show "$wheel"
echo "audiosiam: $wheel ($(du -h "$wheel" | cut -f1))"
