#!/usr/bin/env bash
# One command: install everything, then classify the bundled example clips by example with the bundled
# default model (no training, no network after the install, no data outside this repository).
#   bash scripts/quickstart.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/bootstrap.sh"
cd "$repo"

echo
echo "audiosiam classify --support examples/support examples/query --plot examples-plot.png"
audiosiam classify --support examples/support examples/query --plot examples-plot.png
