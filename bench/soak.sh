#!/usr/bin/env bash
# Abuse and endurance: wrk against a fresh devnetd on loopback with a mix of valid images,
# corrupt images and bad requests (bench/mix.lua), first for --mix-seconds at
# --mix-concurrency, then a soak of --soak-seconds at --soak-concurrency with the daemon's
# RSS sampled every --sample-seconds. Writes the "Load with bad requests, and a soak"
# section of docs/RELIABILITY.md (between its markers) and prints two parseable lines:
#
#   MIX_SUMMARY concurrency=64 seconds=60 requests=... unexpected=0 s5xx_not_503=0 ... pass=1
#   SOAK_SUMMARY seconds=600 samples=... rss_warm_kb=... rss_end_kb=... growth_pct=... pass=1
#
# Usage (from anywhere; run after `make build/devnetd build/devnet backbone`):
#   bench/soak.sh [--mix-seconds S] [--mix-concurrency C] [--soak-seconds S]
#                 [--soak-concurrency C] [--sample-seconds S] [--warmup-seconds S]
#                 [--shots K] [--queue-depth N] [--wrk-threads N] [--no-doc]
# LOAD_DATA is the MVTec-layout folder (default ${DEVNET_SHARED:-../shared}/data/mvtec_bottle).
#
# Needs (Debian 12): wrk, netpbm (pngtopnm), libjpeg-turbo-progs (cjpeg), curl.
#
# The model: with --shots K (default 10), `devnet train --data LOAD_DATA --shots K --seed 1`
# trains a model with a DevNet head (fusion: the whole forward pass, the head and the
# normality branch) and the daemon serves it; --shots 0 lets the daemon train its first
# (normality) model at start instead. The daemon's queue holds --queue-depth (32) jobs,
# fewer than the mix's 64 connections, so that the mix also fills it: the answer must then
# be 503 with Retry-After. Pass criteria: no answer outside the statuses each
# kind of request may get (bench/mix.lua), no 5xx but 503 with Retry-After, the daemon
# alive at the end; in the soak, RSS at the end within 5 % of RSS after the warm-up.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

cmdline="bench/soak.sh${*:+ $*}"
mix_s=60
mix_c=64
soak_s=600
soak_c=16
sample_s=10
warmup_s=60
shots=10
queue_depth=32
wrk_threads=2
write_doc=1
data=${LOAD_DATA:-${DEVNET_SHARED:-../shared}/data/mvtec_bottle}
devnetd=build/devnetd
devnet=build/devnet
doc=docs/RELIABILITY.md
growth_limit=5

usage() { sed -n '/^# Usage/,/^# LOAD_DATA/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "soak: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --mix-seconds|--mix-concurrency|--soak-seconds|--soak-concurrency|--sample-seconds|--warmup-seconds|--shots|--queue-depth|--wrk-threads)
      [ $# -ge 2 ] || { echo "soak: $1 needs a value" >&2; usage; } ;;
  esac
  case $1 in
    --mix-seconds) mix_s=$2; shift 2 ;;
    --mix-concurrency) mix_c=$2; shift 2 ;;
    --soak-seconds) soak_s=$2; shift 2 ;;
    --soak-concurrency) soak_c=$2; shift 2 ;;
    --sample-seconds) sample_s=$2; shift 2 ;;
    --warmup-seconds) warmup_s=$2; shift 2 ;;
    --shots) shots=$2; shift 2 ;;
    --queue-depth) queue_depth=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --no-doc) write_doc=0; shift ;;
    -h|--help) usage ;;
    *) echo "soak: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in "$mix_s" "$mix_c" "$soak_s" "$soak_c" "$sample_s" "$warmup_s" "$shots" "$queue_depth" "$wrk_threads"; do
  case $v in ''|*[!0-9]*) die "'$v' is not a whole number" ;; esac
done
[ "$sample_s" -ge 1 ] && [ "$mix_c" -ge 1 ] && [ "$soak_c" -ge 1 ] && [ "$wrk_threads" -ge 1 ] ||
  die "concurrencies, threads and the sample period must be at least 1"
[ "$soak_s" = 0 ] || [ "$soak_s" -gt "$warmup_s" ] || die "--soak-seconds must exceed --warmup-seconds"

missing=()
for t in wrk pngtopnm cjpeg curl; do command -v "$t" >/dev/null || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: apt-get install wrk netpbm libjpeg-turbo-progs curl"
[ -x "$devnetd" ] && [ -x "$devnet" ] || die "$devnetd or $devnet missing (make build/devnetd build/devnet)"
[ -f build/backbone.safetensors ] || die "build/backbone.safetensors missing (make backbone)"
[ -d "$data/train/good" ] && [ -d "$data/test" ] || die "$data is not an MVTec-layout folder"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/devnet-soak.XXXXXX")
dpid=""
jpid=""
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_traps

# ---- bodies: 8 448x448 JPEGs evenly spaced over the test set ----
bench_jpegs "$data" 8

# ---- the daemon ----
bench_model "$data" "$shots"
bench_start_devnetd "${model_args[@]}" --workers 2 --set queue_depth="$queue_depth"
base=http://127.0.0.1:$port
head_type=$(curl -s "$base/model" | grep -o '"head_type":"[a-z]*"' | head -1 | cut -d'"' -f4 || true)

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$dpid/status"; }
field() { # line key: the value of key=value in line
  printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# run_mix C SECONDS OUT: wrk with the mix; OUT gets wrk's output.
run_mix() {
  local c=$1 secs=$2 out=$3 t=$wrk_threads
  [ "$t" -le "$c" ] || t=$c
  wrk -t"$t" -c"$c" -d"${secs}s" --timeout 30s --latency -s bench/mix.lua "$base" -- "${jpegs[@]}" \
    > "$out" 2> "$out.err" &
  jpid=$!
}

# ---- 1. the mix at high concurrency ----
echo "soak: devnetd pid $dpid on port $port ($head_type); mix at c=$mix_c for $mix_s s" >&2
rss_mix0=$(rss_kb)
run_mix "$mix_c" "$mix_s" "$tmp/mix.out"
wait "$jpid" || { cat "$tmp/mix.out" "$tmp/mix.out.err" >&2; die "wrk failed"; }
jpid=""
mix=$(grep '^MIX ' "$tmp/mix.out") || { cat "$tmp/mix.out" >&2; die "wrk printed no MIX line"; }
kill -0 "$dpid" 2>/dev/null && mix_alive=1 || mix_alive=0
rss_mix1=$(rss_kb 2>/dev/null || echo 0)
mix_unexpected=$(field "$mix" unexpected)
mix_5xx=$(field "$mix" s5xx)
mix_503=$(field "$mix" s503)
mix_503_nora=$(field "$mix" s503_no_retry_after)
mix_5xx_other=$((mix_5xx - mix_503 + mix_503_nora))
mix_pass=$([ "$mix_alive" = 1 ] && [ "$mix_unexpected" = 0 ] && [ "$mix_5xx_other" = 0 ] && echo 1 || echo 0)
mix_summary="MIX_SUMMARY concurrency=$mix_c seconds=$mix_s requests=$(field "$mix" requests) rps=$(field "$mix" rps)"
mix_summary+=" p50_ms=$(field "$mix" p50_ms) p99_ms=$(field "$mix" p99_ms) max_ms=$(field "$mix" max_ms)"
mix_summary+=" unexpected=$mix_unexpected s5xx_not_503=$mix_5xx_other s503=$mix_503 s503_no_retry_after=$mix_503_nora"
mix_summary+=" socket_errors=$(field "$mix" socket_errors) statuses=$(field "$mix" statuses) sent=$(field "$mix" sent)"
mix_summary+=" alive=$mix_alive rss_before_kb=$rss_mix0 rss_after_kb=$rss_mix1 pass=$mix_pass"
echo "$mix_summary"

# ---- 2. the soak ----
soak_summary=""
if [ "$soak_s" -gt 0 ] && [ "$mix_alive" = 1 ]; then
  echo "soak: soak at c=$soak_c for $soak_s s, RSS every $sample_s s" >&2
  : > "$tmp/rss"
  start=$(date +%s.%N)
  run_mix "$soak_c" "$soak_s" "$tmp/soak.out"
  while kill -0 "$jpid" 2>/dev/null; do
    now=$(date +%s.%N)
    r=$(rss_kb 2>/dev/null || echo 0)
    echo "$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.0f", b - a }') $r" >> "$tmp/rss"
    sleep "$sample_s"
  done
  wait "$jpid" || { cat "$tmp/soak.out" >&2; die "wrk failed in the soak"; }
  jpid=""
  echo "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') $(rss_kb 2>/dev/null || echo 0)" >> "$tmp/rss"
  soak=$(grep '^MIX ' "$tmp/soak.out") || { cat "$tmp/soak.out" >&2; die "wrk printed no MIX line in the soak"; }
  kill -0 "$dpid" 2>/dev/null && soak_alive=1 || soak_alive=0
  # warm: the first sample at or after the warm-up; end: the last sample
  read -r rss_warm rss_end rss_max samples < <(awk -v w="$warmup_s" '
    { n++; if ($2 > max) max = $2; if (!warm && $1 >= w) warm = $2; last = $2 }
    END { print warm + 0, last + 0, max + 0, n }' "$tmp/rss")
  growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%.2f", (a > 0 ? (b - a) * 100 / a : 999) }')
  s_unexpected=$(field "$soak" unexpected)
  s_5xx_other=$(($(field "$soak" s5xx) - $(field "$soak" s503) + $(field "$soak" s503_no_retry_after)))
  soak_pass=$(awk -v g="$growth" -v l="$growth_limit" -v a="$soak_alive" -v u="$s_unexpected" -v f="$s_5xx_other" \
    'BEGIN { print (g < l && a == 1 && u == 0 && f == 0) ? 1 : 0 }')
  soak_summary="SOAK_SUMMARY concurrency=$soak_c seconds=$soak_s samples=$samples warmup_s=$warmup_s"
  soak_summary+=" rss_start_kb=$(head -1 "$tmp/rss" | cut -d' ' -f2) rss_warm_kb=$rss_warm rss_end_kb=$rss_end rss_max_kb=$rss_max"
  soak_summary+=" growth_pct=$growth requests=$(field "$soak" requests) rps=$(field "$soak" rps)"
  soak_summary+=" p50_ms=$(field "$soak" p50_ms) p99_ms=$(field "$soak" p99_ms) unexpected=$s_unexpected"
  soak_summary+=" s5xx_not_503=$s_5xx_other statuses=$(field "$soak" statuses) alive=$soak_alive pass=$soak_pass"
  echo "$soak_summary"
fi

# ---- the section of docs/RELIABILITY.md ----
section() {
  echo "<!-- bench/soak.sh:begin (generated by bench/soak.sh; the rest of this file is written by hand) -->"
  echo "### Load with bad requests, and a soak"
  echo
  echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, shared with"
  echo "other work (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end). devnetd \`--workers 2\` (queue"
  echo "depth ${queue_depth:-?}) serving $model_origin (head \`${head_type:-?}\`); wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
  echo "\`-t$wrk_threads\` on the same machine with \`bench/mix.lua\`: a fixed rotation in which 12 of 21"
  echo "requests are valid 448x448 JPEGs to /score and the rest corrupt JPEGs, a broken PNG, a wrong"
  echo "content type, malformed JSON, bad base64, a wrong method, an unknown path and a bad feedback label."
  echo
  echo "| run | concurrency | seconds | requests | req/s | p50 ms | p99 ms | max ms | statuses | unexpected | 5xx other than 503 + Retry-After | daemon alive |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
  echo "| mix | $mix_c | $mix_s | $(field "$mix" requests) | $(field "$mix" rps) | $(field "$mix" p50_ms) | $(field "$mix" p99_ms) | $(field "$mix" max_ms) | $(field "$mix" statuses | sed 's/,/, /g') | $mix_unexpected | $mix_5xx_other | $([ "$mix_alive" = 1 ] && echo yes || echo NO) |"
  if [ -n "$soak_summary" ]; then
    echo "| soak | $soak_c | $soak_s | $(field "$soak" requests) | $(field "$soak" rps) | $(field "$soak" p50_ms) | $(field "$soak" p99_ms) | $(field "$soak" max_ms) | $(field "$soak" statuses | sed 's/,/, /g') | $s_unexpected | $s_5xx_other | $([ "$soak_alive" = 1 ] && echo yes || echo NO) |"
  fi
  echo
  echo "Requests sent in the mix, by kind: $(field "$mix" sent | sed 's/,/, /g'). Socket errors: $(field "$mix" socket_errors)."
  echo "503 answers: $mix_503 in the mix, all with Retry-After: $([ "$mix_503_nora" = 0 ] && echo yes || echo "NO ($mix_503_nora without)")."
  echo "**Mix: $([ "$mix_pass" = 1 ] && echo "passed" || echo "FAILED").**"
  if [ -n "$soak_summary" ]; then
    echo
    echo "Soak: daemon RSS sampled every $sample_s s ($samples samples): $(head -1 "$tmp/rss" | cut -d' ' -f2) kB at the"
    echo "start, $rss_warm kB after the ${warmup_s}-s warm-up, $rss_end kB at the end, at most $rss_max kB:"
    echo "growth after the warm-up **$growth %** (limit $growth_limit %). **Soak: $([ "$soak_pass" = 1 ] && echo "passed" || echo "FAILED").**"
    echo
    echo "RSS (kB) by second: $(awk '{ printf "%s%s: %s", (NR > 1 ? ", " : ""), $1, $2 }' "$tmp/rss")."
  fi
  echo "<!-- bench/soak.sh:end -->"
}

if [ "$write_doc" = 1 ]; then
  section > "$tmp/section.md"
  [ -f "$doc" ] || : > "$doc"
  if grep -q '^<!-- bench/soak.sh:begin' "$doc"; then
    awk -v f="$tmp/section.md" '
      /^<!-- bench\/soak.sh:begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
      /^<!-- bench\/soak.sh:end -->/ { skip = 0; next }
      !skip' "$doc" > "$tmp/doc.md"
  else
    { cat "$doc"; echo; cat "$tmp/section.md"; } > "$tmp/doc.md"
  fi
  cat "$tmp/doc.md" > "$doc"
  echo "soak: wrote the section of $doc" >&2
fi
[ "$mix_pass" = 1 ] && { [ -z "$soak_summary" ] || [ "$soak_pass" = 1 ]; }
