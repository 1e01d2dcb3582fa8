#!/usr/bin/env bash
# The service under load: wrk against POST /score of a fresh devnetd on loopback, raw
# 448x448 JPEG bodies, at several concurrencies, interleaved in the same run with the raw
# forward pass (`devnet bench`) at the daemon's worker count and model input size.
# Writes the "Service under load" section of docs/PERFORMANCE.md for the model's head
# (between its markers, leaving the rest of the file alone, the other head's section
# included) and prints one parseable line:
#
#   LOAD_SUMMARY date=... workers=2 size=224 ... c8_rps=... raw_rps=... ratio=... pass=0|1
#
# Usage (from anywhere; run after `make build/devnetd build/devnet backbone`):
#   bench/load.sh [--duration S] [--concurrency "1 8 32"] [--repeats N] [--workers N]
#                 [--wrk-threads N] [--images N] [--bench-iters N] [--profile-c C]
#                 [--noise-cores X] [--shots K] [--head-input final|patches]
#                 [--no-profile] [--no-doc]
#                 [-- EXTRA DEVNETD ARGS...]
# Each option also reads an environment variable: LOAD_DURATION, LOAD_CONCURRENCY,
# LOAD_REPEATS, LOAD_WORKERS, LOAD_WRK_THREADS, LOAD_IMAGES, LOAD_BENCH_ITERS,
# LOAD_PROFILE_C, LOAD_NOISE_CORES, LOAD_SHOTS, LOAD_HEAD_INPUT; LOAD_DATA is the MVTec-layout folder, relative to the project root (default
# ${DEVNET_SHARED:-../shared}/data/mvtec_bottle).
#
# Needs (Debian 12): wrk, netpbm (pngtopnm) and libjpeg-turbo-progs (cjpeg) to make the
# JPEG bodies from the dataset's PNGs, curl; optionally perf (linux-perf) for the profile.
#
# Method: without --shots, the daemon trains its first model from LOAD_DATA's train/good at
# start (a normality-only model at input size 224, what a new installation serves); with
# --shots K, `devnet train --data LOAD_DATA --shots K --seed 1` first trains a model with a
# DevNet head (fusion: the whole forward pass plus the normality branch, what the service
# serves once inspectors have sent anomalies) and the daemon serves it (--model);
# --head-input patches trains its head on the patch inputs instead (its forward pass stops
# at stride 16), and the section is then that of `fusion+patches`. It is measured only once /readyz answers 200
# and a warm-up run has passed. Each repeat runs `devnet bench --size S --threads W`
# (S = the live model's input_size, W = --workers) and then wrk at every concurrency, so
# that background load on a shared machine hits both alike; the table gives medians over
# the repeats, leaving out runs during which the rest of the machine used more than
# --noise-cores cores (when a cleaner run at that concurrency exists). wrk's own CPU and the rest of the machine's are measured per run from
# /proc (the daemon, wrk and everything else share the same cores on loopback).
# Non-2xx answers are counted by status in bench/load.lua; 503 with Retry-After (the
# queue is full) is the only acceptable one. A last run at --profile-c is sampled with
# `perf record` (flat profile of the daemon, no call graphs) to say where the time goes.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

cmdline="bench/load.sh${*:+ $*}"
duration=${LOAD_DURATION:-20}
concurrency=${LOAD_CONCURRENCY:-"1 8 32"}
repeats=${LOAD_REPEATS:-3}
workers=${LOAD_WORKERS:-2}
wrk_threads=${LOAD_WRK_THREADS:-1}
n_images=${LOAD_IMAGES:-8}
bench_iters=${LOAD_BENCH_ITERS:-200}
profile_c=${LOAD_PROFILE_C:-8}
noise_cores=${LOAD_NOISE_CORES:-0.25}
shots=${LOAD_SHOTS:-0}
head_input=${LOAD_HEAD_INPUT:-final}
data=${LOAD_DATA:-${DEVNET_SHARED:-../shared}/data/mvtec_bottle}
profile=1
write_doc=1
devnetd=build/devnetd
devnet=build/devnet
doc=docs/PERFORMANCE.md
target=0.90

usage() { sed -n '/^# Usage/,/^# Needs/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --duration|--concurrency|--repeats|--workers|--wrk-threads|--images|--bench-iters|--profile-c|--noise-cores|--shots|--head-input)
      [ $# -ge 2 ] || { echo "load: $1 needs a value" >&2; usage; } ;;
  esac
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --images) n_images=$2; shift 2 ;;
    --bench-iters) bench_iters=$2; shift 2 ;;
    --profile-c) profile_c=$2; shift 2 ;;
    --noise-cores) noise_cores=$2; shift 2 ;;
    --shots) shots=$2; shift 2 ;;
    --head-input) head_input=$2; shift 2 ;;
    --no-profile) profile=0; shift ;;
    --no-doc) write_doc=0; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "load: unknown argument '$1'" >&2; usage ;;
  esac
done
extra_args=("$@")

die() { echo "load: $*" >&2; exit 2; }
is_int() { case $1 in ''|*[!0-9]*) return 1 ;; *) [ "$1" -ge 1 ] ;; esac; }
for v in "$duration" "$repeats" "$workers" "$wrk_threads" "$n_images" "$bench_iters" "$profile_c"; do
  is_int "$v" || die "'$v' is not a whole number >= 1"
done
[ "$shots" = 0 ] || is_int "$shots" || die "--shots '$shots' is not a whole number"
case $head_input in final|patches) ;; *) die "--head-input takes final or patches" ;; esac
[ "$head_input" = final ] || [ "$shots" -gt 0 ] || die "--head-input patches needs --shots (a model with a head)"
for c in $concurrency; do is_int "$c" || die "concurrency '$c' is not a whole number >= 1"; done
[ -n "${concurrency// /}" ] || die "--concurrency lists nothing"
awk -v x="$noise_cores" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]*)?$/) }' || die "--noise-cores takes a number of cores"

missing=()
for t in wrk pngtopnm cjpeg curl; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  die "missing ${missing[*]}: apt-get install wrk netpbm libjpeg-turbo-progs curl"
fi
[ -x "$devnetd" ] && [ -x "$devnet" ] || die "$devnetd or $devnet missing (make build/devnetd build/devnet)"
[ -f build/backbone.safetensors ] || die "build/backbone.safetensors missing (make backbone)"
[ -d "$data/train/good" ] && [ -d "$data/test" ] || die "$data is not an MVTec-layout folder"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/devnet-load.XXXXXX")
dpid=""   # the daemon
jpid=""   # the wrk or perf job in flight
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_traps

# ---- bodies: evenly spaced over the test set (normal and defective), 448x448 JPEGs ----
bench_jpegs "$data" "$n_images"
jpeg_bytes=$(cat "${jpegs[@]}" | wc -c)
jpeg_kb=$(awk -v b="$jpeg_bytes" -v n="$n_images" 'BEGIN{printf "%.1f", b / n / 1024}')
img_dims=$(file -b "${jpegs[0]}" 2>/dev/null | grep -o '[0-9]*x[0-9]*,' | tail -1 | tr -d ,) || true

# ---- the daemon ----
bench_model "$data" "$shots" "$head_input"
bench_start_devnetd "${model_args[@]}" --workers "$workers" ${extra_args[@]+"${extra_args[@]}"}
url=http://127.0.0.1:$port/score
# the served model's file and the same photos, for the raw model-inference bench
bench_images=()
for j in "${jpegs[@]}"; do bench_images+=(--image "$j"); done
model_file=$tmp/model.safetensors
[ "$shots" -gt 0 ] || model_file=$(find "$tmp/data/models" -name 'model-*.safetensors' | sort | tail -1)
[ -f "$model_file" ] || die "cannot find the served model's file"
model_json=$(curl -s "http://127.0.0.1:$port/model")
size=$(printf '%s' "$model_json" | grep -o '"input_size":[0-9]*' | grep -o '[0-9]*$' | head -1 || true)
head_type=$(printf '%s' "$model_json" | grep -o '"head_type":"[a-z]*"' | cut -d'"' -f4 | head -1 || true)
bank=$(printf '%s' "$model_json" | grep -o '"memory_bank_patches":[0-9]*' | grep -o '[0-9]*$' | head -1 || true)
served_input=$(printf '%s' "$model_json" | grep -o '"head_input":"[a-z]*"' | cut -d'"' -f4 | head -1 || true)
kind=$head_type   # the section's name
[ "$served_input" = patches ] && kind=$head_type+patches
[ -n "$size" ] || die "GET /model gave no input_size"
code=$(curl -s -o "$tmp/one.json" -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary "@${jpegs[0]}" "$url")
[ "$code" = 200 ] || { cat "$tmp/one.json" >&2; die "POST /score answered $code"; }
resp_bytes=$(wc -c < "$tmp/one.json")

# ---- measuring ----
clk=$(getconf CLK_TCK)
cores=$(nproc)
snap() { # sets snap_host (busy ticks of the machine), snap_daemon (ticks of devnetd)
  local _c u n s _i _w irq sirq st _r line
  read -r _c u n s _i _w irq sirq st _r < /proc/stat
  snap_host=$((u + n + s + irq + sirq + st))
  read -r line < "/proc/$dpid/stat"
  line=${line##*) }
  # shellcheck disable=SC2086
  set -- $line
  snap_daemon=$((${12} + ${13}))
}
child_cpu() { # file written by `times`: children's user + system seconds
  awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$1"
}

# run_wrk C SECONDS OUT: wrk at concurrency C; OUT gets the LOAD line plus CPU figures.
run_wrk() {
  local c=$1 secs=$2 out=$3 t=$wrk_threads h0 d0 h1 d1
  [ "$t" -le "$c" ] || t=$c
  snap; h0=$snap_host; d0=$snap_daemon
  times > "$tmp/times0"
  wrk -t"$t" -c"$c" -d"${secs}s" --timeout 30s --latency -s bench/load.lua "$url" -- "${jpegs[@]}" \
    > "$out.wrk" 2> "$out.err" &
  jpid=$!
  wait "$jpid" || { jpid=""; cat "$out.err" >&2; die "wrk failed at concurrency $c"; }
  jpid=""
  times > "$tmp/times1"
  snap; h1=$snap_host; d1=$snap_daemon
  local line wcpu
  line=$(grep '^LOAD ' "$out.wrk") || { cat "$out.wrk" "$out.err" >&2; die "wrk printed no LOAD line"; }
  wcpu=$(awk -v a="$(child_cpu "$tmp/times0")" -v b="$(child_cpu "$tmp/times1")" 'BEGIN{print b - a}')
  awk -v line="$line" -v c="$c" -v dh=$((h1 - h0)) -v dd=$((d1 - d0)) -v clk="$clk" -v w="$wcpu" '
    BEGIN {
      n = split(line, kv, " ")
      for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
      secs = v["duration_s"]; req = v["requests"] > 0 ? v["requests"] : 1
      daemon_s = dd / clk; host_s = dh / clk
      other = host_s - daemon_s - w; if (other < 0) other = 0
      printf "%s c=%d daemon_ms_per_req=%.3f daemon_cores=%.3f wrk_cores=%.3f other_cores=%.3f\n",
        line, c, daemon_s * 1000 / req, daemon_s / secs, w / secs, other / secs
    }' > "$out"
}

echo "load: devnetd pid $dpid on port $port, model input $size ($head_type), $workers workers;" \
  "$n_images JPEG bodies (${jpeg_kb} KB mean); ${duration}s per run, concurrency $concurrency," \
  "$repeats repeats" >&2
loadavg0=$(cut -d' ' -f1-3 /proc/loadavg)
max_c=$(for c in $concurrency; do echo "$c"; done | sort -n | tail -1)
run_wrk "$max_c" 3 "$tmp/warmup" # builds every worker's extractor, warms the allocator

: > "$tmp/runs"
: > "$tmp/raw"
# bench_once: one raw bench and one raw model bench; appends "ms_per_image latency_ms
# other_cores images_per_s model_images_per_s" to $tmp/raw and sets raw_last and
# model_last (images/s). The model bench (`devnet bench --model --image ...`) runs the
# served model's whole inference (resize, forward pass, scoring) on the same photos,
# decoded beforehand: what a request costs but for the HTTP exchange, the JPEG decode and
# the JSON. The throughput of record is workers x 1000 /
# latency_ms (the median time of one pass; the workers run side by side), not the bench's
# ms_per_image: that one is the median round time / workers, timed by the bench's main
# thread, which on a 2-core machine competes with its 2 workers and can read a round's
# start late (seen here: 3.3 ms/image with 8.9 ms passes, which two workers cannot do).
bench_once() {
  local line ms lat mlat h0 d0 t0 h1 d1 t1 other
  snap; h0=$snap_host; d0=$snap_daemon; t0=$EPOCHREALTIME
  times > "$tmp/times0"
  "$devnet" bench --size "$size" --threads "$workers" --iters "$bench_iters" --json > "$tmp/bench.out" ||
    die "devnet bench failed"
  times > "$tmp/times1"
  snap; h1=$snap_host; d1=$snap_daemon; t1=$EPOCHREALTIME
  # the rest of the machine (the daemon, idle, included) while the bench ran
  other=$(awk -v dh=$((h1 - h0)) -v dd=$((d1 - d0)) -v clk="$clk" -v t0="$t0" -v t1="$t1" \
    -v a="$(child_cpu "$tmp/times0")" -v b="$(child_cpu "$tmp/times1")" \
    'BEGIN { o = (dh / clk - (b - a)) / (t1 - t0); printf "%.3f", o < 0 ? 0 : o }')
  line=$(grep '^{' "$tmp/bench.out" | tail -1)
  ms=$(printf '%s' "$line" | grep -o '"ms_per_image":[0-9.]*' | cut -d: -f2)
  lat=$(printf '%s' "$line" | grep -o '"latency_ms":[0-9.]*' | cut -d: -f2)
  [ -n "$ms" ] || die "devnet bench printed no ms_per_image"
  [ -n "$lat" ] || die "devnet bench printed no latency_ms"
  raw_last=$(awk -v l="$lat" -v w="$workers" 'BEGIN { printf "%.3f", w * 1000 / l }')
  DEVNET_BACKBONE=build/backbone.safetensors "$devnet" bench --model "$model_file" "${bench_images[@]}" \
    --threads "$workers" --iters "$bench_iters" --json > "$tmp/mbench.out" || die "devnet bench --model failed"
  mlat=$(grep '^{' "$tmp/mbench.out" | tail -1 | grep -o '"latency_ms":[0-9.]*' | cut -d: -f2)
  [ -n "$mlat" ] || die "devnet bench --model printed no latency_ms"
  model_last=$(awk -v l="$mlat" -v w="$workers" 'BEGIN { printf "%.3f", w * 1000 / l }')
  echo "$ms $lat $other $raw_last $model_last" >> "$tmp/raw"
}
# Raw benches and wrk runs alternate: B W B W ... B. Each wrk run is compared with the mean
# throughput of the two raw benches around it, so that a burst of background load that
# slows one slows its reference too.
bench_once
for r in $(seq 1 "$repeats"); do
  for c in $concurrency; do
    raw_before=$raw_last
    model_before=$model_last
    run_wrk "$c" "$duration" "$tmp/run.$r.$c"
    bench_once
    ref=$(awk -v a="$raw_before" -v b="$raw_last" 'BEGIN { printf "%.3f", (a + b) / 2 }')
    mref=$(awk -v a="$model_before" -v b="$model_last" 'BEGIN { printf "%.3f", (a + b) / 2 }')
    echo "r=$r $(cat "$tmp/run.$r.$c") raw_rps_ref=$ref model_rps_ref=$mref" |
      awk '{ for (i = 1; i <= NF; i++) { split($i, p, "="); v[p[1]] = p[2] }
             printf "%s rps_ratio=%.4f model_ratio=%.4f\n", $0, v["rps"] / v["raw_rps_ref"], v["rps"] / v["model_rps_ref"] }' >> "$tmp/runs"
    tail -1 "$tmp/runs" | awk '{ for (i = 1; i <= NF; i++) { split($i, p, "="); v[p[1]] = p[2] }
      printf "load: repeat %s, c=%s: %s req/s (raw around it %s/s), p50 %s ms, p99 %s ms, non-2xx %s, " \
        "daemon %s CPU-ms/req, wrk %s cores, other %s cores\n", v["r"], v["c"], v["rps"], v["raw_rps_ref"],
        v["p50_ms"], v["p99_ms"], v["non2xx"], v["daemon_ms_per_req"], v["wrk_cores"], v["other_cores"] }' >&2
  done
done
loadavg1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- profile: one more run at profile_c under perf record (flat, daemon only) ----
profile_note=""
prof_c=$max_c # the profile's CPU shares are converted with the daemon CPU-ms/req measured at prof_c
for c in $concurrency; do [ "$c" != "$profile_c" ] || prof_c=$profile_c; done
: > "$tmp/profile"
if [ "$profile" = 1 ]; then
  if ! command -v perf >/dev/null; then
    profile_note="skipped: perf is not installed (Debian linux-perf)"
  else
    psecs=$duration; [ "$psecs" -le 10 ] || psecs=10
    wrk -t1 -c"$prof_c" -d"$((psecs + 2))s" --timeout 30s -s bench/load.lua "$url" -- "${jpegs[@]}" \
      > "$tmp/prof.wrk" 2>&1 &
    jpid=$!
    sleep 1
    if perf record -q -F 499 -o "$tmp/perf.data" -p "$dpid" -- sleep "$psecs" > "$tmp/perf.log" 2>&1 &&
       perf report -i "$tmp/perf.data" --no-children --sort dso,sym --stdio -q 2>/dev/null > "$tmp/perf.txt"; then
      wait "$jpid" || true
      jpid=""
      # Categories by symbol (and library). memcpy/memmove/memset count as the forward
      # pass: a DWARF call graph put >95% of them in im2col and the bias initialisation.
      awk '
        $1 ~ /%$/ {
          pct = $1; sub(/%/, "", pct); dso = $2; sym = $4
          if (dso ~ /openblas/ || sym ~ /^(dn_dwconv|dn_act_inplace|dn_conv2d|init_accumulator|dn_forward|run_chain|run_node|pointwise|im2col|dn_add|dn_mean|dn_softmax)/ || sym ~ /^__mem(move|cpy|set)/)
            k = "1 forward pass (BLAS, depthwise, activations, copies)"
          else if (sym ~ /^(exact_sqdist|leaf_bounds|box_bounds|search_leaf|min_index|dn_bank_|embed|row_argmin|nearest_|try_entry|worth_visiting|scratch_layout|sqnorm|centre)/)
            k = "2 normality branch: nearest-neighbour search"
          else if (sym ~ /^(sep_filter|dn_patch_descriptors|pool_box3|box3_taps)/)
            k = "3 normality branch: patch descriptors"
          else if (dso ~ /turbojpeg|libjpeg/ || sym ~ /^(tj|dn_decode|dn_image_decode|dn_jpeg)/)
            k = "4 JPEG decode (libturbojpeg)"
          else if (sym ~ /^(dn_image_resize|dn_resize|dn_backbone_input|dn_axis)/)
            k = "5 resize to the model size + normalisation"
          else if (sym ~ /(cJSON|printf|print_number|strtod|scanf|hack_digit|mpn|round_and_return|str_to_mpn|dn_api_|dn_base64)/)
            k = "6 JSON (cJSON; its number printing uses printf/sscanf)"
          else if (sym ~ /^(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free|unlink_chunk|malloc_consolidate|sysmalloc|__libc_malloc|__libc_free|tcache|_int_realloc|alloc_perturb)/)
            k = "7 malloc/free"
          else if (dso ~ /microhttpd/ || dso ~ /kernel/)
            k = "8 HTTP (libmicrohttpd) and kernel (TCP, scheduling, page faults)"
          else
            k = "9 other"
          s[k] += pct; tot += pct
        }
        END { for (k in s) printf "%s\t%.2f\n", k, s[k] * 100 / (tot > 0 ? tot : 1) }' "$tmp/perf.txt" |
        sort -n > "$tmp/profile"
      profile_note="perf record -F 499 -p DAEMON for ${psecs} s during a wrk run at concurrency $prof_c"
    else
      wait "$jpid" || true
      jpid=""
      profile_note="skipped: perf record failed ($(head -1 "$tmp/perf.log"))"
    fi
  fi
else
  profile_note="skipped (--no-profile)"
fi

# ---- medians and the summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (!NR) { print "nan"; exit } print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
# Runs during which other processes used more than noise_cores cores are noisy: left out
# of the medians at a concurrency that has at least one quiet run (they still count for
# non-2xx). col C KEY: the values of KEY over the runs kept at concurrency C;
# allcol C KEY over every run.
allcol() {
  awk -v c="$1" -v k="$2" '{ for (i = 1; i <= NF; i++) { split($i, p, "="); v[p[1]] = p[2] } if (v["c"] == c) print v[k] }' "$tmp/runs"
}
col() {
  awk -v c="$1" -v k="$2" -v t="$noise_cores" '
    { for (i = 1; i <= NF; i++) { split($i, p, "="); v[p[1]] = p[2] }
      if (v["c"] != c) next
      n++; val[n] = v[k]; quiet[n] = v["other_cores"] <= t; nq += quiet[n] }
    END { for (i = 1; i <= n; i++) if (quiet[i] || !nq) print val[i] }' "$tmp/runs"
}
sumcol() { allcol "$1" "$2" | awk '{ s += $1 } END { print s + 0 }'; }
# the raw figures of record: medians over the quiet benches (all of them if none is quiet)
rawcol() {
  awk -v k="$1" -v t="$noise_cores" '{ n++; v[n] = $k; q[n] = $3 <= t; nq += q[n] }
    END { for (i = 1; i <= n; i++) if (q[i] || !nq) print v[i] }' "$tmp/raw"
}
raw_ms=$(rawcol 1 | median)
raw_lat=$(rawcol 2 | median)
raw_quiet=$(awk -v t="$noise_cores" '$3 <= t { n++ } END { print n + 0 }' "$tmp/raw")
raw_min=$(awk '{ print $4 }' "$tmp/raw" | sort -g | head -1)
raw_max=$(awk '{ print $4 }' "$tmp/raw" | sort -g | tail -1)
raw_n=$(wc -l < "$tmp/raw")
raw_rps=$(rawcol 4 | median)
raw_rps=$(printf '%.1f' "$raw_rps")
model_rps=$(printf '%.1f' "$(rawcol 5 | median)")
raw_cpu_ms=$(printf '%.2f' "$raw_lat")

summary="LOAD_SUMMARY date=$(date -u +%Y-%m-%dT%H:%M:%SZ) workers=$workers size=$size head=$head_type head_input=${served_input:-none}"
summary+=" duration_s=$duration repeats=$repeats wrk_threads=$wrk_threads images=$n_images"
table=""
best_c=""; best_rps=0; best_ratio=0; bad_total=0; noisy_total=0; cpu_ratio=0
for c in $concurrency; do
  rps=$(col "$c" rps | median); p50=$(col "$c" p50_ms | median); p99=$(col "$c" p99_ms | median)
  rmin=$(allcol "$c" rps | sort -g | head -1); rmax=$(allcol "$c" rps | sort -g | tail -1)
  kept=$(col "$c" rps | wc -l); total=$(allcol "$c" rps | wc -l); noisy_total=$((noisy_total + total - kept))
  non2xx=$(sumcol "$c" non2xx); s503=$(sumcol "$c" s503); s503bad=$(sumcol "$c" s503_no_retry_after)
  sock=$(sumcol "$c" socket_errors); reqs=$(sumcol "$c" requests)
  dms=$(col "$c" daemon_ms_per_req | median); wcores=$(col "$c" wrk_cores | median)
  ocores=$(col "$c" other_cores | median)
  # shellcheck disable=SC2034 # tq, tt: read back through eval below
  tq=$(col "$c" t_queue | median) td=$(col "$c" t_decode | median) \
    ti=$(col "$c" t_inference | median) tt=$(col "$c" t_total | median)
  bad=$((non2xx - s503 + s503bad + sock)); bad_total=$((bad_total + bad))
  rref=$(col "$c" raw_rps_ref | median)
  ratio=$(col "$c" rps_ratio | median); ratio=$(printf '%.3f' "$ratio")
  mratio=$(col "$c" model_ratio | median); mratio=$(printf '%.3f' "$mratio")
  mref=$(col "$c" model_rps_ref | median)
  if awk -v a="$rps" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then
    best_c=$c; best_rps=$rps; best_ratio=$ratio; best_mratio=$mratio
    cpu_ratio=$(awk -v r="$raw_cpu_ms" -v d="$dms" 'BEGIN { printf "%.3f", r / d }')
  fi
  eval "tq_$c=\$tq td_$c=\$td ti_$c=\$ti tt_$c=\$tt dms_$c=\$dms"
  summary+=" c${c}_rps=$rps c${c}_p50_ms=$p50 c${c}_p99_ms=$p99 c${c}_non2xx=$non2xx c${c}_503=$s503"
  summary+=" c${c}_bad=$bad c${c}_ratio=$ratio c${c}_model_ratio=$mratio"
  table+=$(printf '| %d | %d of %d | %.1f (%.1f–%.1f) | %.1f | %.1f | %d of %d (%d × 503 + Retry-After) | %.2f | %.2f / %.2f | %.2f | %.1f | **%.2f** | %.1f | %.2f |' \
    "$c" "$kept" "$total" "$rps" "$rmin" "$rmax" "$p50" "$p99" "$non2xx" "$reqs" "$((s503 - s503bad))" "$dms" "$wcores" \
    "$ocores" "$(awk -v a="$td" -v b="$ti" 'BEGIN { print a + b }')" "$rref" "$ratio" "$mref" "$mratio")$'\n'
done
ratio=$best_ratio
pass=$(awk -v r="$ratio" -v t="$target" -v b="$bad_total" 'BEGIN { print (r >= t && b == 0) ? 1 : 0 }')
summary+=" raw_pass_ms=$raw_lat raw_ms_per_image=$raw_ms raw_rps=$raw_rps ratio=$ratio ratio_at_c=$best_c bad_non2xx=$bad_total"
summary+=" model_rps=$model_rps model_ratio=$best_mratio"
summary+=" cpu_ratio=$cpu_ratio noisy_runs_left_out=$noisy_total quiet_raw_benches=$raw_quiet/$raw_n"
summary+=" target=$target pass=$pass"

# ---- the section of docs/PERFORMANCE.md ----
section() {
  local cpu mem
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  mem=$(free -g 2>/dev/null | awk '/Mem:/ { print $2 }')
  echo "<!-- bench/load.sh:begin $kind (generated; the rest of this file is bench/perf_report.sh's) -->"
  echo "## Service under load: a \`$kind\` model"
  echo
  echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $cores cores ($cpu),"
  echo "${mem} GiB, $(uname -r), shared with other people's test runs (load average $loadavg0 before,"
  echo "$loadavg1 after, this run included; the *other* column is the rest of the machine's CPU"
  echo "during each run)."
  echo
  echo "- Service: \`build/devnetd --workers $workers --listen 127.0.0.1:0\` with $model_origin"
  echo "  (head \`$head_type\`${served_input:+, its DevNet head on the \`$served_input\`}${bank:+, memory bank of $bank patches}, input size $size)."
  echo "  wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }') on loopback, \`-t$wrk_threads\` (at most), \`--latency\`, ${duration} s per run,"
  echo "  POST /score with raw \`image/jpeg\` bodies rotating over $n_images ${img_dims:+$img_dims }images evenly"
  echo "  spaced over the test set (normal and defective; mean ${jpeg_kb} KB, made by \`pngtopnm | cjpeg"
  echo "  -quality 90 -optimize\`, Debian \`netpbm\` + \`libjpeg-turbo-progs\`); answers ~$resp_bytes bytes of JSON."
  echo "- Raw: \`devnet bench --size $size --threads $workers --iters $bench_iters\` (forward pass to the final"
  echo "  map on a synthetic input, $workers workers side by side): one pass $(printf '%.2f' "$raw_lat") ms, i.e."
  echo "  $workers × 1000 / $(printf '%.2f' "$raw_lat") = **$raw_rps images/s**; medians over $(
    [ "$raw_quiet" -gt 0 ] && echo "the $raw_quiet of $raw_n benches during which other processes used at most $noise_cores cores" ||
      echo "all $raw_n benches (none was quiet)"),"
  echo "  $(printf '%.1f' "$raw_min")–$(printf '%.1f' "$raw_max") images/s over all (the bench's own \`ms_per_image\`,"
  echo "  median round time / $workers, was $(printf '%.2f' "$raw_ms"))."
  echo "- Raw model: \`devnet bench --model MODEL --image BODY... --threads $workers --iters $bench_iters\` (the"
  echo "  served model's whole inference, resize, forward pass and scoring, on the same $n_images photos,"
  echo "  decoded beforehand): **$model_rps images/s** (median over the same benches). *service / raw"
  echo "  model* leaves out only what the service adds to the model: HTTP, the JPEG decode, JSON."
  echo "- Raw benches and wrk runs alternate (bench, run, bench, run, ..., bench); a run's ratio is its"
  echo "  req/s over the mean images/s of the two benches around it (*raw img/s around*), so that"
  echo "  background load slowing one slows its reference too. *service / raw* is the median of the"
  echo "  runs' ratios. Medians over the $repeats repeats, except runs during which other processes"
  echo "  used more than $noise_cores cores (*runs used*; the req/s range in brackets is over all runs);"
  echo "  non-2xx summed over all runs."
  echo
  echo "| concurrency | runs used | req/s | p50 ms | p99 ms | non-2xx | daemon CPU-ms/req | wrk / other cores | decode+inference ms | raw img/s around | service / raw | raw model img/s around | service / raw model |"
  echo "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$table"
  echo
  echo "**Service / raw forward pass: $(printf '%.2f' "$ratio")** (at concurrency $best_c, the highest throughput;"
  echo "target >= $target). Non-2xx other than 503 with Retry-After: $bad_total. $(
    [ "$pass" = 1 ] && echo "Target met." || echo "Target not met.") The CPU work alone"
  echo "bounds the ratio at $(printf '%.2f' "$cpu_ratio") there: $raw_cpu_ms CPU-ms per raw pass against $(printf '%.2f' "$(eval "echo \$dms_$best_c")") CPU-ms per"
  echo "request in the daemon. Service / raw model inference: $(printf '%.2f' "$best_mratio")."
  echo
  if [ "$head_type" = normality ]; then
    echo "The ratio compares whole requests with bare forward passes to the final map. For a model"
    echo "without a head (this one) the service's forward pass stops at the stride-16 map, all that"
    echo "the normality branch reads, so it does less backbone work than the raw pass; the section"
    echo "on a model with a DevNet head shows the whole pass."
  elif [ "$served_input" = patches ]; then
    echo "The ratio compares whole requests with bare forward passes to the final map. This model's"
    echo "DevNet head reads the patch inputs (\`--head-input patches\`), as its normality branch does,"
    echo "so the service's forward pass stops at the stride-16 map: it does less backbone work than"
    echo "the raw pass (the \`fusion\` section shows a model whose head reads the final map)."
  else
    echo "The ratio compares whole requests with bare forward passes to the final map. A model with"
    echo "a DevNet head (this one: \`$head_type\`) runs the whole pass, as the raw bench does."
  fi
  echo "Beyond its forward pass, a request costs: receiving and"
  echo "parsing the HTTP request (libmicrohttpd I/O threads), decoding the ${img_dims:-full-size} JPEG, resizing"
  echo "it to $size and normalising, the model's scoring (patch descriptors and a nearest-neighbour"
  echo "search in the memory bank$([ "$head_type" = normality ] || echo ", the DevNet head"); patch map, top patches, p-value), building and"
  echo "printing the JSON answer and sending it. wrk runs on the same $cores cores and takes its share"
  echo "(column *wrk*), as do other processes on a shared machine (column *other*); the raw bench"
  echo "has the cores to itself apart from the latter. *daemon CPU-ms/req* is the daemon's CPU time"
  echo "(all threads, /proc) per answered request, against $raw_cpu_ms CPU-ms per image for the raw"
  echo "pass. *decode+inference* is the median of the answers' mean \`timing_ms.decode + inference\`."
  echo "At concurrency 1 a single request is in flight, so one worker of $workers is busy: that row's"
  echo "ratio is bounded by 1/$workers, and its p50 compares with the raw single pass ($raw_cpu_ms ms)."
  echo
  echo "### Where the time goes"
  echo
  local c=$prof_c
  [ -n "$(eval "echo \${dms_$c:-}")" ] || c=$best_c
  printf "Answers' \`timing_ms\` at concurrency %s (medians of per-run means): queue %.2f ms,\n" "$c" "$(eval "echo \$tq_$c")"
  printf "decode %.2f ms, inference (resize, forward pass, scoring) %.2f ms, total %.2f ms.\n" \
    "$(eval "echo \$td_$c")" "$(eval "echo \$ti_$c")" "$(eval "echo \$tt_$c")"
  echo
  if [ -s "$tmp/profile" ]; then
    echo "Daemon CPU by component ($profile_note; flat profile by symbol), converted to ms"
    echo "with the median daemon CPU-ms/req at concurrency $c ($(printf '%.2f' "$(eval "echo \$dms_$c")") ms):"
    echo
    echo "| component | share of daemon CPU | CPU-ms per request |"
    echo "|---|---:|---:|"
    awk -F'\t' -v d="$(eval "echo \$dms_$c")" '{ k = $1; sub(/^[0-9] /, "", k); printf "| %s | %.1f%% | %.2f |\n", k, $2, $2 * d / 100 }' "$tmp/profile"
    echo
    awk -F'\t' -v d="$(eval "echo \$dms_$c")" -v r="$raw_cpu_ms" -v t="$target" '
      $1 ~ /^1 / { fwd = $2 * d / 100 } { all += $2 * d / 100 }
      END {
        printf "Raw forward pass for comparison: %.2f CPU-ms per image (one pass); the service'"'"'s forward\n", r
        printf "pass here: %.2f. Everything else costs %.2f CPU-ms per request. A ratio of %.2f needs at most\n", fwd, all - fwd, t
        printf "%.2f CPU-ms per request in all (%.2f/%.2f), i.e. %.2f %s.\n", r / t, r, t,
               (d > r / t ? d - r / t : r / t - d), (d > r / t ? "less than now" : "more than now would still meet it")
      }' "$tmp/profile"
  else
    echo "Profile $profile_note."
  fi
  echo "<!-- bench/load.sh:end $kind -->"
}

if [ "$write_doc" = 1 ]; then
  section > "$tmp/section.md"
  [ -f "$doc" ] || : > "$doc"
  if grep -qF "<!-- bench/load.sh:begin $kind " "$doc"; then
    awk -v f="$tmp/section.md" -v h="$kind" '
      index($0, "<!-- bench/load.sh:begin " h " ") == 1 { while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == "<!-- bench/load.sh:end " h " -->" { skip = 0; next }
      !skip' "$doc" > "$tmp/doc.md"
  else
    { cat "$doc"; [ -s "$doc" ] && echo; cat "$tmp/section.md"; } > "$tmp/doc.md"
  fi
  cat "$tmp/doc.md" > "$doc"
  echo "load: wrote the 'Service under load: a $kind model' section of $doc" >&2
fi
echo "$summary"
