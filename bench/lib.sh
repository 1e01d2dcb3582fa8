# Shared steps of bench/load.sh and bench/soak.sh (sourced; they set -euo pipefail, cd to
# the project root and define die). Each script owns its temporary folder ($tmp), its
# daemon ($dpid) and its wrk job ($jpid); bench_cleanup stops and removes them.

# bench_stop_pid PID: TERM, up to 10 s, then KILL; only for processes the script started.
bench_stop_pid() {
  local p=$1 i
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bench_stop_pid "${jpid:-}"
  bench_stop_pid "${dpid:-}"
  rm -rf "$tmp"
  exit "$rc"
}

bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_jpegs DATA N: N JPEG bodies evenly spaced over DATA/test (normal and defective),
# converted from the PNGs by `pngtopnm | cjpeg -quality 90 -optimize` into $tmp; sets the
# array jpegs and n_images (N, or fewer when the test set is smaller).
bench_jpegs() {
  local data=$1 i src
  local -a pngs
  n_images=$2
  mapfile -t pngs < <(find "$data/test" -name '*.png' | LC_ALL=C sort)
  [ ${#pngs[@]} -gt 0 ] || die "no PNGs under $data/test"
  [ "$n_images" -le ${#pngs[@]} ] || n_images=${#pngs[@]}
  jpegs=()
  for i in $(seq 0 $((n_images - 1))); do
    src=${pngs[$((i * ${#pngs[@]} / n_images))]}
    pngtopnm "$src" 2>/dev/null | cjpeg -quality 90 -optimize > "$tmp/img$i.jpg" || die "cannot convert $src"
    jpegs+=("$tmp/img$i.jpg")
  done
}

# bench_model DATA SHOTS [HEAD_INPUT]: the model the daemon will serve. SHOTS 0: it trains
# its first model from DATA at start; otherwise `devnet train --shots SHOTS --seed 1
# --head-input HEAD_INPUT` (default final) trains one with a DevNet head into
# $tmp/model.safetensors first. Sets model_args (devnetd arguments) and model_origin (a
# phrase for the report).
bench_model() {
  local data=$1 shots=$2 input=${3:-final} flag=""
  model_args=(--train-data "$data")
  model_origin="its first model trained at start from \`$data\`"
  [ "$shots" -gt 0 ] || return 0
  [ "$input" = final ] || flag=" --head-input $input"
  # shellcheck disable=SC2086 # flag is empty or two words
  DEVNET_BACKBONE=build/backbone.safetensors "$devnet" train --data "$data" --shots "$shots" --seed 1 $flag \
    -o "$tmp/model.safetensors" > "$tmp/train.out" 2>&1 || { cat "$tmp/train.out" >&2; die "devnet train failed"; }
  model_args=(--model "$tmp/model.safetensors")
  model_origin="a model trained by \`devnet train --data $data --shots $shots --seed 1$flag\`"
}

# bench_start_devnetd ARGS...: devnetd on a free loopback port with its data in $tmp/data,
# its log in $tmp/devnetd.log; waits (300 s: it may train its first model) until /readyz
# answers 200. Sets dpid and port.
bench_start_devnetd() {
  local i
  "$devnetd" --listen 127.0.0.1:0 --data-dir "$tmp/data" "$@" >/dev/null 2>"$tmp/devnetd.log" &
  dpid=$!
  port=""
  for i in $(seq 1 3000); do
    kill -0 "$dpid" 2>/dev/null || { tail -5 "$tmp/devnetd.log" >&2; die "devnetd exited"; }
    [ -n "$port" ] || port=$(grep -o '"event":"listening","port":[0-9]*' "$tmp/devnetd.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  tail -5 "$tmp/devnetd.log" >&2
  die "devnetd not ready after 300 s"
}
