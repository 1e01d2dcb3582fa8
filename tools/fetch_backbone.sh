#!/usr/bin/env bash
# Puts the default backbone's TFLite file into BUILD_DIR, checked against its sha256:
# from $DEVNET_SHARED/models (default ../shared) when present, otherwise downloaded from
# its public origin (google-coral/test_data, Apache-2.0). Explains what to do when neither
# works (no network).
set -euo pipefail
build=${1:?usage: fetch_backbone.sh BUILD_DIR}
name=tf2_mobilenet_v2_1.0_224_ptq.tflite
sha=5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c
commit=104342d2d3480b3e66203073dac24f4e2dbb4c41
url="https://raw.githubusercontent.com/google-coral/test_data/$commit/$name"
shared=${DEVNET_SHARED:-../shared}
out="$build/$name"
mkdir -p "$build"

check() { [ -f "$1" ] && echo "$sha  $1" | sha256sum -c --status; }

check "$out" && exit 0
if [ -f "$shared/models/$name" ]; then
  cp "$shared/models/$name" "$out.tmp"
elif command -v curl >/dev/null; then
  echo "devnet: downloading the backbone from $url"
  curl -fsSL --max-time 120 -o "$out.tmp" "$url" || rm -f "$out.tmp"
fi
if ! check "$out.tmp"; then
  rm -f "$out.tmp"
  echo "devnet: no backbone. Put $name (sha256 $sha) in $shared/models/ or $build/," >&2
  echo "devnet: or download it from $url" >&2
  exit 1
fi
mv "$out.tmp" "$out"
