#!/usr/bin/env bash
# One command: install everything, then run the whole test suite (this is what CI runs).
#   bash scripts/test.sh                # everything
#   bash scripts/test.sh -k knn         # extra arguments go to pytest
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/bootstrap.sh"
cd "$repo"

echo "audiosiam: lint and format check (ruff; fix with: ruff check --fix . && ruff format .)"
"$AUDIOSIAM_PY" -m ruff check --quiet .
"$AUDIOSIAM_PY" -m ruff format --check --quiet .

echo "audiosiam: C++ tests (CMake + ctest against libtorch)"
bash "$repo/scripts/cpp_tests.sh"

echo "audiosiam: Python tests"
"$AUDIOSIAM_PY" -m pytest tests "$@"

# Every benchmark once, untimed: a benchmark whose result stops being right fails the build.
echo "audiosiam: benchmark correctness checks (pytest benchmarks/bench_*.py --benchmark-disable)"
"$AUDIOSIAM_PY" -m pytest benchmarks/bench_*.py --benchmark-disable -q -p no:cacheprovider
