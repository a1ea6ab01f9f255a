#!/usr/bin/env bash
# Builds the reference (Sphinx: the README's quickstart, the command line, ARCHITECTURE.md and a page per
# public module) into build/docs; open build/docs/index.html. Warnings are errors, as in the test suite
# (tests/packaging/test_docs.py): a broken cross-reference or a docstring that does not render fails the build.
#   bash scripts/docs.sh              # extra arguments go to sphinx-build (-E: rebuild every page)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/bootstrap.sh"
cd "$repo"

echo "audiosiam: building the reference (sphinx-build -W --keep-going -n docs/reference build/docs)"
"$AUDIOSIAM_PY" -m sphinx -W --keep-going -n -q -b html docs/reference build/docs "$@"
echo "audiosiam: the reference is in $repo/build/docs/index.html"
