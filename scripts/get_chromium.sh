#!/usr/bin/env bash
# Headless Chromium for the browser test of `--report` pages (tests/test_report_browser.py), without root:
# Debian's `chromium` and `chromium-common` packages, and whichever of their library packages this
# system lacks, are fetched with `apt-get download` and unpacked with `dpkg -x` into one folder.
#
#   bash scripts/get_chromium.sh            # prints the command that starts it (last line)
#   AUDIOSIAM_CHROMIUM_DIR=/elsewhere bash scripts/get_chromium.sh
#
# A `chromium` already on PATH is used as it is. Every package unpacked must come from Debian's main
# archive (free software by the Debian Free Software Guidelines) and carry its copyright file; the
# script refuses anything else. Needs a Debian or Ubuntu system with apt sources and the network, once.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  command -v chromium
  exit 0
fi

dest="${AUDIOSIAM_CHROMIUM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/audiosiam/chromium}"
binary="$dest/usr/lib/chromium/chromium"
launcher="$dest/chromium"  # sets the library path, then runs $binary
# The marker is written only after a complete install that starts, so a broken one is redone.
if [ -f "$dest/.audiosiam-complete" ] && [ -x "$launcher" ]; then
  echo "$launcher"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb dpkg-query; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "get_chromium: needs $tool (a Debian or Ubuntu system); install chromium by hand instead" >&2
    exit 1
  }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$dest"
mkdir -p "$dest"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# The packages to fetch: chromium, chromium-common and, transitively, every hard dependency that is
# not installed here (the first of alternatives; virtual packages are skipped: headless needs none).
declare -A seen=()
queue=(chromium chromium-common)
wanted=()
while [ ${#queue[@]} -gt 0 ]; do
  pkg="${queue[0]}"
  queue=("${queue[@]:1}")
  [ -n "${seen[$pkg]:-}" ] && continue
  seen[$pkg]=1
  if [ "$pkg" != chromium ] && [ "$pkg" != chromium-common ] && installed "$pkg"; then
    continue
  fi
  apt-cache show "$pkg" >/dev/null 2>&1 || continue  # virtual: nothing to download
  wanted+=("$pkg")
  while read -r dep; do
    queue+=("$dep")
  done < <(apt-cache depends --no-recommends --no-suggests "$pkg" 2>/dev/null |
    awk '/^  Depends: [^<]/ {print $2}' | sed 's/:any$//')
done

echo "get_chromium: downloading ${#wanted[@]} packages: ${wanted[*]}" >&2
(cd "$work" && apt-get download "${wanted[@]}" >&2)

for deb in "$work"/*.deb; do
  name="$(dpkg-deb -f "$deb" Package)"
  section="$(dpkg-deb -f "$deb" Section)"
  case "$section" in
    non-free* | contrib* | restricted* | multiverse*)
      echo "get_chromium: $name is in section '$section', not free software; refusing it" >&2
      exit 1
      ;;
  esac
  listing="$(dpkg-deb -c "$deb")"  # whole, before grep: an early exit of grep -q would break the pipe
  if ! grep -qE "\./usr/share/doc/[^/]+/copyright$|\./usr/share/doc/$name -> " <<<"$listing"; then
    echo "get_chromium: $name carries no copyright file; refusing it" >&2
    exit 1
  fi
  dpkg-deb -x "$deb" "$dest"
done

multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")"
libs="$dest/usr/lib/$multiarch"
libpath="$libs:$libs/pulseaudio:$dest/lib/$multiarch:$dest/usr/lib/chromium"

# Every library the binary links must now resolve.
missing="$(LD_LIBRARY_PATH="$libpath" ldd "$binary" | awk '/not found/ {print $1}' | sort -u)"
if [ -n "$missing" ]; then
  echo "get_chromium: still missing libraries: $missing" >&2
  exit 1
fi
if ! LD_LIBRARY_PATH="$libpath" "$binary" --headless --no-sandbox --version >&2; then
  echo "get_chromium: $binary does not start" >&2
  exit 1
fi
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
  "$libpath" "$binary" >"$launcher"
chmod +x "$launcher"
touch "$dest/.audiosiam-complete"
echo "$launcher"
