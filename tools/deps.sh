#!/usr/bin/env bash
# Installs the Debian 12 packages devnet needs to build and test (as root, with apt-get),
# or says exactly which are missing and how to install them (as another user).
# With --test it also tries the optional test tools (Chromium for the console's browser
# test, openssl to make the HTTPS test's certificate); those are only warned about when
# they cannot be installed: the tests that need them skip then.
set -euo pipefail

# Build and runtime libraries, the test framework, and the tools the Makefile calls.
PACKAGES=(
  build-essential pkg-config ca-certificates curl
  libopenblas-dev libcjson-dev libturbojpeg0-dev libpng-dev libmicrohttpd-dev
  libcriterion-dev
)

OPTIONAL_TEST_PACKAGES=(chromium openssl)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

optional_test_tools() {
  local want=()
  for p in "${OPTIONAL_TEST_PACKAGES[@]}"; do installed "$p" || want+=("$p"); done
  [ ${#want[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! apt-get update -q || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}"; then
    echo "devnet: warning: could not install ${want[*]}; the tests that need them (console in a browser, HTTPS) will skip" >&2
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "${1:-}" = "--test" ] && optional_test_tools
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "devnet: missing Debian packages: ${missing[*]}" >&2
  echo "devnet: install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "devnet: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
[ "${1:-}" = "--test" ] && optional_test_tools
exit 0
