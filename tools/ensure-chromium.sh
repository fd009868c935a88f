#!/usr/bin/env bash
# `make test`'s browser step: the console test (tests/browser) drives Debian's Chromium through
# Playwright, which never downloads a browser. Install the distribution's package when it is
# missing; a no-op when it is there. CHROMIUM (default /usr/bin/chromium) is the path the test
# uses, a variable so this script's logic can be exercised where Chromium is installed.
set -euo pipefail

chromium="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0

echo "ensure-chromium: $chromium is missing; installing Debian's chromium"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "error: $chromium is missing and this user can neither install it (not root) nor use sudo without a password; run as root: apt-get update && apt-get install -y --no-install-recommends chromium" >&2
  exit 1
fi
if ! { ${as_root[@]+"${as_root[@]}"} apt-get update -qq \
  && ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }; then
  echo "error: installing Debian's chromium failed (see apt-get's message above)" >&2
  exit 1
fi
[ -x "$chromium" ] || { echo "error: chromium was installed but $chromium is not there" >&2; exit 1; }
