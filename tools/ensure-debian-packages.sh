#!/usr/bin/env bash
# Install the distribution's packages that the tests (and `make dev`) need, when missing;
# a no-op when they are there. Each argument is FILE=PACKAGE: PACKAGE is installed when FILE
# does not exist. `make test` asks for Debian's Chromium (the console test drives it through
# Playwright, which never downloads a browser) and Tesseract's English model (the OCR tests and
# the parse worker's OCR). With --optional, a package that cannot be installed (not root, no
# sudo) is a warning, not an error: `make dev` runs without OCR rather than not at all.
set -euo pipefail

optional=false
if [ "${1:-}" = "--optional" ]; then
  optional=true
  shift
fi

missing=()
for pair in "$@"; do
  file="${pair%%=*}"
  package="${pair#*=}"
  [ -e "$file" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
  if $optional; then
    echo "warning: $1" >&2
    exit 0
  fi
  echo "error: $1" >&2
  exit 1
}

echo "ensure-debian-packages: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "${missing[*]} missing and this user can neither install them (not root) nor use sudo without a password; run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
fi
if ! { ${as_root[@]+"${as_root[@]}"} apt-get update -qq \
  && ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
  fail "installing ${missing[*]} failed (see apt-get's message above)"
fi
for pair in "$@"; do
  file="${pair%%=*}"
  [ -e "$file" ] || fail "${pair#*=} was installed but $file is not there"
done
