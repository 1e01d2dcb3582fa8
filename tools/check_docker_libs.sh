#!/usr/bin/env bash
# Checks that the runtime stage of docker/Dockerfile installs the right Debian packages
# for build/devnetd (run on Debian 12 after building it):
#   1. the packages owning the libraries devnetd links against directly (ELF NEEDED,
#      resolved by ldd, owners from dpkg -S) must be exactly the Dockerfile's
#      ARG RUNTIME_LIBS="..." list, leaving out those of the base image (libc6);
#   2. every library ldd resolves, direct or not, must belong to a package that the list
#      or the base image brings, through the Depends/Pre-Depends of the installed
#      packages (the base image: Essential and Priority required packages and theirs);
#   3. ldd must resolve every library.
# Usage: tools/check_docker_libs.sh [BINARY [DOCKERFILE]]   (defaults: build/devnetd,
# docker/Dockerfile). Exits 1 on a mismatch, naming the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/devnetd}
dockerfile=${2:-docker/Dockerfile}
die() { echo "check_docker_libs: $*" >&2; exit 1; }
words() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }

[ -f "$bin" ] || die "$bin does not exist (build it first: make $bin)"
[ -f "$dockerfile" ] || die "$dockerfile does not exist"
for tool in ldd readelf dpkg dpkg-query; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

listed=$(sed -n 's/^ARG RUNTIME_LIBS="\([^"]*\)"[[:space:]]*$/\1/p' "$dockerfile" | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
[ -n "$listed" ] || die "no line ARG RUNTIME_LIBS=\"...\" in $dockerfile"

# The package owning a library path; dpkg records /usr/lib/... for most libraries but
# /lib/... for some (libc6), and ldd may print either side of the /lib -> usr/lib merge
# or a symlink (libopenblas.so.0 goes through /etc/alternatives).
owner() {
  local p=$1 real c
  real=$(readlink -f "$p")
  for c in "$p" "$real" "/usr${p#/usr}" "/usr${real#/usr}" "${p#/usr}" "${real#/usr}"; do
    if out=$(dpkg -S "$c" 2>/dev/null); then
      echo "${out%%: *}" | tr ',' '\n' | sed 's/^ *//; s/:.*//' | head -1
      return 0
    fi
  done
  return 1
}

ldd_out=$(ldd "$bin") || die "ldd $bin failed"
if grep -q 'not found' <<<"$ldd_out"; then
  die "ldd cannot resolve: $(grep 'not found' <<<"$ldd_out" | awk '{print $1}' | tr '\n' ' ')"
fi
declare -A path_of=()
while read -r soname arrow path _; do
  [ "$arrow" = "=>" ] && [ -n "$path" ] && path_of[$soname]=$path
done <<<"$ldd_out"

# Dependency closure of a set of installed packages (Depends and Pre-Depends, every
# alternative, version constraints and architecture qualifiers dropped), from one read of
# the dpkg database.
declare -A deps_of=()
while IFS=$'\t' read -r pkg deps; do
  deps_of[$pkg]="${deps_of[$pkg]:-} $deps"
done < <(dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n' | sed 's/([^)]*)//g; s/:[a-z0-9]*//g; s/[,|]/ /g')
closure() {
  local -A seen=()
  local queue=("$@") p d i=0
  while [ $i -lt ${#queue[@]} ]; do
    p=${queue[$i]}
    i=$((i + 1))
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    for d in ${deps_of[$p]:-}; do
      [ -z "${seen[$d]:-}" ] && queue+=("$d")
    done
  done
  printf '%s\n' "${!seen[@]}" | sort
}

base_roots=$(dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" {print $1}')
# shellcheck disable=SC2086
base=$(closure $base_roots)

fail=0
# 1. direct dependencies
direct=""
for soname in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'); do
  path=${path_of[$soname]:-}
  [ -n "$path" ] || die "ldd does not show where $soname resolves"
  pkg=$(owner "$path") || die "no Debian package owns $path ($soname)"
  direct+="$pkg"$'\n'
done
needed=$(sed '/^$/d' <<<"$direct" | sort -u | comm -23 - <(echo "$base"))
extra=$(comm -23 <(echo "$listed") <(echo "$needed"))
missing=$(comm -13 <(echo "$listed") <(echo "$needed"))
if [ -n "$missing" ]; then
  echo "check_docker_libs: $bin needs, but $dockerfile's RUNTIME_LIBS lacks: $(words "$missing")" >&2
  fail=1
fi
if [ -n "$extra" ]; then
  echo "check_docker_libs: $dockerfile's RUNTIME_LIBS lists packages $bin does not link against: $(words "$extra")" >&2
  fail=1
fi

# 2. every resolved library, direct or not
# shellcheck disable=SC2086
provided=$(closure $listed $base_roots)
for path in "${path_of[@]}"; do
  pkg=$(owner "$path") || { echo "check_docker_libs: no Debian package owns $path" >&2; fail=1; continue; }
  if ! grep -qx "$pkg" <<<"$provided"; then
    echo "check_docker_libs: $path ($pkg) would be missing from the image: neither RUNTIME_LIBS nor the base image brings $pkg" >&2
    fail=1
  fi
done

if [ $fail -eq 0 ]; then
  echo "check_docker_libs: $dockerfile's RUNTIME_LIBS ($(words "$listed")) match $bin (${#path_of[@]} libraries resolved)"
fi
exit $fail
