#!/usr/bin/env bash
# Installs the Debian 12 packages devnet needs to build and test (as root, with apt-get),
# or says exactly which are missing and how to install them (as another user).
set -euo pipefail

# Build and runtime libraries, the test framework, and the tools the Makefile calls.
PACKAGES=(
  build-essential pkg-config ca-certificates curl
  libopenblas-dev libcjson-dev libturbojpeg0-dev libpng-dev libmicrohttpd-dev
  libcriterion-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "devnet: missing Debian packages: ${missing[*]}" >&2
  echo "devnet: install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "devnet: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
