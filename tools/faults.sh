#!/usr/bin/env bash
# Fault injection: SIGKILL of devnetd at random moments during POST /feedback traffic and
# background retraining, then a restart on the same data dir, over N rounds. Checks after
# every kill:
#   a. every feedback answered 202 is in the store under its label, readable, and its
#      sha256 is its feedback_id (the stored file is byte-identical to the body sent);
#   b. every visible feedback file is whole (a 64-hex name equal to its sha256), and the
#      temporary files a kill leaves (hidden ".tmp.*") are gone once the daemon restarted;
#   c. data_dir/models holds at least one model and the newest one loads
#      (`devnet score --model NEWEST IMAGE --json` exits 0);
# and after every restart that /readyz answers 200 within --ready-timeout seconds.
# Prints one parseable line on stdout and exits 1 if any check failed:
#
#   FAULTS_SUMMARY rounds=50 acknowledged=... lost=0 unreadable=0 bad_hash=0 temp_left=0
#     rounds_without_loadable_model=0 kills_during_retrain=K ready_median_s=X ready_max_s=Y
#     model_versions=V ... pass=0|1
#
# Usage (from anywhere; run after `make build/devnetd build/devnet backbone`):
#   tools/faults.sh [--rounds N] [--seed S] [--keep] [--data FOLDER]
#                   [--min-delay S] [--max-delay S] [--pause-ms MS] [--anomaly-pct P]
#                   [--settle-pct P] [--ready-timeout S] [-- EXTRA DEVNETD ARGS...]
#   --rounds N         kill/restart rounds (default 50)
#   --seed S           seeds the kill delays, labels, images and pauses (default 1)
#   --keep             keep the temporary folder (data dir, logs, ledger); it is also kept
#                      when a check fails
#   --data FOLDER      MVTec-layout folder: the first 60 images of train/good train the
#                      first model, the PNGs of test/*/ are the feedback bodies (default
#                      ${DEVNET_SHARED:-../shared}/data/mvtec_bottle, relative to the
#                      project root; a --data given relative is taken from the current dir)
#   --min-delay S, --max-delay S
#                      the kill comes a uniform random time after the round's traffic
#                      starts (default 0.3 and 6 seconds)
#   --pause-ms MS      the feedback client waits a uniform random 0..MS ms between posts
#                      (default 300), so that the retrain debounce (200 ms) sometimes
#                      elapses during traffic and retrains start while feedback arrives
#   --anomaly-pct P    share of feedback labelled anomaly (default 60)
#   --settle-pct P     share of rounds (seeded) in which the traffic stops at the random
#                      delay and the kill waits until the retraining it triggered has ended
#                      (retrain_done or retrain_failed, at most 45 s) and then comes a
#                      random 0..1 s later: kills of an idle daemon right after a swap
#                      (default 10; the other rounds kill during traffic)
#   --ready-timeout S  a restart must answer /readyz 200 within S seconds (default 30; the
#                      first start, which trains the first model, gets 300)
# Needs: curl, sha256sum, build/devnetd, build/devnet, build/backbone.safetensors, the data.
#
# Method: the daemon runs with `--workers 2 --set retrain_debounce_ms=200 --set
# retrain_max_fpr=1 --set retrain_min_recall=0` (every retrained model passes the swap
# gate, so new versions are really published; a retrain on the growing store also has to
# fit in retrain_budget_s, 30 s). `--anomaly-pct 3 --settle-pct 20` makes retrains short
# and swaps frequent, so that more kills land around a publish. Each round one client posts
# raw PNG bodies (a test image plus a unique trailer after IEND, so every body has a new
# sha256) with random labels (60 % anomaly) and appends "id label round" to the ledger only
# after a complete 202 answer whose feedback_id is the sha256 of the body sent; anything
# else (connection refused or reset by the kill) is not acknowledged and not checked. A
# kill is counted as "during a retrain" when the killed daemon's log has a retrain_start
# with no retrain_done or retrain_failed after it (the stage reached is reported).
set -euo pipefail
export LC_ALL=C
caller_pwd=$PWD
cd "$(dirname "$0")/.."

rounds=50
seed=1
keep=0
data=${DEVNET_SHARED:-../shared}/data/mvtec_bottle
min_delay=0.3
max_delay=6
pause_ms=300
anomaly_pct=60
settle_pct=10
settle_max_s=45
ready_timeout=30
first_ready_timeout=300
train_images=60
devnetd=build/devnetd
devnet=build/devnet
backbone=build/backbone.safetensors

usage() { sed -n '/^# Usage/,/^# Needs/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "faults: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --rounds|--seed|--data|--min-delay|--max-delay|--pause-ms|--anomaly-pct|--settle-pct|--ready-timeout)
      [ $# -ge 2 ] || { echo "faults: $1 needs a value" >&2; usage; } ;;
  esac
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --data) case $2 in /*) data=$2 ;; *) data=$caller_pwd/$2 ;; esac; shift 2 ;;
    --min-delay) min_delay=$2; shift 2 ;;
    --max-delay) max_delay=$2; shift 2 ;;
    --pause-ms) pause_ms=$2; shift 2 ;;
    --anomaly-pct) anomaly_pct=$2; shift 2 ;;
    --settle-pct) settle_pct=$2; shift 2 ;;
    --ready-timeout) ready_timeout=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "faults: unknown argument '$1'" >&2; usage ;;
  esac
done
extra_args=("$@")

is_uint() { case $1 in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_num() { awk -v x="$1" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]*)?$/) }'; }
is_count() { is_uint "$1" && [ "$1" -ge 1 ]; }
is_count "$rounds" || die "--rounds '$rounds' is not a whole number >= 1"
is_uint "$seed" || die "--seed '$seed' is not a whole number"
is_uint "$pause_ms" || die "--pause-ms '$pause_ms' is not a whole number"
is_pct() { is_uint "$1" && [ "$1" -le 100 ]; }
is_pct "$anomaly_pct" || die "--anomaly-pct '$anomaly_pct' is not a whole number 0..100"
is_pct "$settle_pct" || die "--settle-pct '$settle_pct' is not a whole number 0..100"
is_count "$ready_timeout" || die "--ready-timeout '$ready_timeout' is not a whole number >= 1"
is_num "$min_delay" || die "--min-delay '$min_delay' is not a number of seconds"
is_num "$max_delay" || die "--max-delay '$max_delay' is not a number of seconds"
min_ms=$(awk -v x="$min_delay" 'BEGIN { printf "%d", x * 1000 }')
max_ms=$(awk -v x="$max_delay" 'BEGIN { printf "%d", x * 1000 }')
[ "$max_ms" -ge "$min_ms" ] || die "--max-delay is below --min-delay"

# ---- prerequisites ----
missing=()
for t in curl sha256sum awk find xargs; do command -v "$t" >/dev/null || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: apt-get install curl coreutils gawk findutils"
[ -x "$devnetd" ] || die "$devnetd missing (make build/devnetd)"
[ -x "$devnet" ] || die "$devnet missing (make build/devnet)"
[ -f "$backbone" ] || die "$backbone missing (make backbone)"
if [ ! -d "$data/train/good" ] || [ ! -d "$data/test" ]; then
  die "$data is not an MVTec-layout folder (train/good, test/*); set --data or DEVNET_SHARED"
fi
data=$(cd "$data" && pwd -P) # the training links must not be relative
mapfile -t train_src < <(find "$data/train/good" -maxdepth 1 -name '*.png' | sort | head -n "$train_images")
[ ${#train_src[@]} -ge 10 ] || die "fewer than 10 PNGs in $data/train/good"
mapfile -t pngs < <(find "$data/test" -mindepth 2 -maxdepth 2 -name '*.png' | sort)
[ ${#pngs[@]} -gt 0 ] || die "no PNGs in $data/test/*/"

# ---- the run's folder and cleanup ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/devnet-faults.XXXXXX")
ddir=$tmp/data        # the daemon's data dir, the same for every start
ledger=$tmp/ledger    # "feedback_id label round", one line per 202
dpid=""               # the daemon
cpid=""               # the feedback client
failed=0
stop_pid() { # pid signal: the signal, up to 10 s, then KILL; only processes this script started
  local p=$1 sig=$2 _
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill "-$sig" "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
}
stop_client() {
  [ -n "$cpid" ] || return 0
  : > "$tmp/stop"
  local _
  for _ in $(seq 1 200); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$cpid" 2>/dev/null; then # its curl, then the client itself
    pkill -TERM -P "$cpid" 2>/dev/null || true
    stop_pid "$cpid" TERM
  fi
  wait "$cpid" 2>/dev/null || true
  cpid=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_client
  stop_pid "$dpid" TERM
  if [ "$keep" = 1 ] || { [ "$failed" = 1 ] && [ -d "$tmp" ]; }; then
    echo "faults: kept $tmp (data dir $ddir, logs $tmp/logs, ledger $ledger)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$tmp/train" "$tmp/logs" "$tmp/bodies"
for f in "${train_src[@]}"; do ln -s "$f" "$tmp/train/"; done
: > "$ledger"
: > "$tmp/unacked"
: > "$tmp/rounds"
: > "$tmp/kills"

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# ---- the daemon ----
starts=0
port=""
log=""
# start_daemon TIMEOUT_S: starts devnetd on ddir, waits for /readyz 200; sets dpid, port,
# log, ready_s, ready_version. Returns 1 when not ready in time or the daemon died.
start_daemon() {
  local timeout=$1 t0 code deadline body
  starts=$((starts + 1))
  log=$(printf '%s/logs/devnetd.%03d.log' "$tmp" "$starts")
  port=""
  ready_s=""
  ready_version=""
  : > "$log" # before the daemon opens it: the loop below reads it at once
  t0=$(now)
  "$devnetd" --listen 127.0.0.1:0 --data-dir "$ddir" --train-data "$tmp/train" \
    --backbone "$backbone" --workers 2 --set retrain_debounce_ms=200 \
    --set retrain_max_fpr=1 --set retrain_min_recall=0 \
    ${extra_args[@]+"${extra_args[@]}"} >/dev/null 2>"$log" &
  dpid=$!
  deadline=$(awk -v a="$t0" -v t="$timeout" 'BEGIN { printf "%.3f", a + t }')
  while :; do
    if ! kill -0 "$dpid" 2>/dev/null; then
      wait "$dpid" 2>/dev/null || true
      echo "faults: devnetd (start $starts) exited before it was ready; its log ends:" >&2
      tail -n 5 "$log" >&2
      dpid=""
      return 1
    fi
    [ -n "$port" ] || port=$(grep -o '"event":"listening","port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ -n "$port" ]; then
      body=$(curl -s --max-time 2 -w ' %{http_code}' "http://127.0.0.1:$port/readyz" || true)
      code=${body##* }
      if [ "$code" = 200 ]; then
        ready_s=$(since "$t0")
        ready_version=$(printf '%s' "$body" | grep -o '"model_version":[0-9]*' | grep -o '[0-9]*$' || true)
        return 0
      fi
    fi
    if awk -v d="$deadline" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n > d) }'; then
      ready_s=$(since "$t0")
      echo "faults: devnetd (start $starts) not ready after $ready_s s; its log ends:" >&2
      tail -n 5 "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# ---- the feedback client (runs in the background) ----
# Posts until $tmp/stop exists. A ledger line is written only after a whole 202 answer.
client() {
  local round=$1 n=0 png label body sum sha code id resp
  resp=$tmp/resp.$round
  RANDOM=$((seed * 100003 + round)) # a subshell's $RANDOM is reseeded by bash: seed it again
  body=$tmp/bodies/body.png
  while [ ! -e "$tmp/stop" ]; do
    n=$((n + 1))
    png=${pngs[$((RANDOM % ${#pngs[@]}))]}
    if [ $((RANDOM % 100)) -lt "$anomaly_pct" ]; then label=anomaly; else label=normal; fi
    # The PNG, then a trailer after its IEND chunk (decoders stop at IEND): new bytes, new id.
    { cat "$png"; printf 'devnet-faults seed=%s round=%s n=%s t=%s\n' "$seed" "$round" "$n" "$EPOCHREALTIME"; } > "$body"
    sum=$(sha256sum "$body")
    sha=${sum%% *}
    rm -f "$resp"
    code=$(curl -s -o "$resp" -w '%{http_code}' --max-time 15 -H 'Content-Type: image/png' \
      --data-binary "@$body" "http://127.0.0.1:$port/feedback?label=$label" 2>/dev/null) || true
    if [ "$code" = 202 ]; then
      id=$(grep -o '"feedback_id":"[0-9a-f]*"' "$resp" | cut -d'"' -f4 || true)
      grep -q '"duplicate":false' "$resp" || echo "$round duplicate $sha" >> "$tmp/odd_answers"
      [ "$id" = "$sha" ] || echo "$round bad_id sent=$sha answered=$id" >> "$tmp/odd_answers"
      echo "${id:-$sha} $label $round" >> "$ledger"
    else
      echo "$round ${code:-000}" >> "$tmp/unacked"
    fi
    [ "$pause_ms" -eq 0 ] || sleep "$(awk -v r=$((RANDOM % (pause_ms + 1))) 'BEGIN { printf "%.3f", r / 1000 }')"
  done
}

# ---- checks ----
lost=0 unreadable=0 bad_hash=0 wrong_label=0 visible_bad=0 temp_left=0 temp_after_kill_rounds=0
no_model_rounds=0 kills_retrain=0 restarts_failed=0 served_older=0 settle_rounds=0
probe=${pngs[0]}

# check_store ROUND: (a) and (b) on the store as the kill left it; prints "a b c" counts
# of this round's new problems to the rounds table through globals.
check_store() {
  local round=$1 sums=$tmp/sums paths=$tmp/paths r_lost=0 r_unread=0 r_hash=0 r_wrong=0 r_vis=0
  local id label rnd p other
  awk -v d="$ddir/feedback" '{ print d "/" $2 "/" $1 ".png" }' "$ledger" > "$paths"
  : > "$sums"
  [ ! -s "$paths" ] || xargs -d '\n' -a "$paths" sha256sum -- > "$sums" 2>/dev/null || true
  # ledger entries whose file gave no sum (absent or unreadable), or a wrong one
  awk -v d="$ddir/feedback" 'NR == FNR { h[substr($0, 67)] = $1; next }
    { p = d "/" $2 "/" $1 ".png"; if (!(p in h)) print "missing", $1, $2, $3; else if (h[p] != $1) print "hash", $1, $2, $3 }' \
    "$sums" "$ledger" > "$tmp/problems"
  while read -r kind id label rnd; do
    p=$ddir/feedback/$label/$id.png
    if [ "$kind" = hash ]; then
      r_hash=$((r_hash + 1)); echo "faults: round $round: $p (acknowledged in round $rnd) has sha256 $(sha256sum "$p" | cut -c1-16)..., not its id" >&2
    elif [ -e "$p" ]; then
      r_unread=$((r_unread + 1)); echo "faults: round $round: $p (acknowledged in round $rnd) is not readable" >&2
    else
      if [ "$label" = anomaly ]; then other=normal; else other=anomaly; fi
      if [ -e "$ddir/feedback/$other/$id.png" ]; then
        r_wrong=$((r_wrong + 1)); echo "faults: round $round: $id (acknowledged as $label in round $rnd) is under $other" >&2
      fi
      r_lost=$((r_lost + 1)); echo "faults: round $round: LOST $p (acknowledged in round $rnd)" >&2
    fi
  done < "$tmp/problems"
  # (b) every visible file of the label folders is an image name whose sha256 is its name
  find "$ddir/feedback/anomaly" "$ddir/feedback/normal" -mindepth 1 -maxdepth 1 ! -name '.*' > "$tmp/visible" 2>/dev/null || true
  : > "$tmp/vsums"
  [ ! -s "$tmp/visible" ] || xargs -d '\n' -a "$tmp/visible" sha256sum -- > "$tmp/vsums" 2>/dev/null || true
  r_vis=$(awk 'NR == FNR { h[substr($0, 67)] = $1; next }
    { n = split($0, a, "/"); name = a[n]
      if (length(name) != 68 || name !~ /^[0-9a-f]+\.(png|jpg)$/ || !($0 in h) || h[$0] != substr(name, 1, 64)) { bad++; print "faults: visible file not whole or not an image name: " $0 > "/dev/stderr" } }
    END { print bad + 0 }' "$tmp/vsums" "$tmp/visible")
  lost=$((lost + r_lost)); unreadable=$((unreadable + r_unread)); bad_hash=$((bad_hash + r_hash))
  wrong_label=$((wrong_label + r_wrong)); visible_bad=$((visible_bad + r_vis))
  round_store_bad=$((r_lost + r_unread + r_hash + r_vis))
  round_visible=$(wc -l < "$tmp/visible")
}

count_feedback_tmp() { find "$ddir/feedback" -name '.tmp.*' 2>/dev/null | wc -l; }
count_other_tmp() { # hidden publish files and *.tmp.* files elsewhere in the data dir
  find "$ddir" -path "$ddir/feedback" -prune -o \( -name '.publish.*' -o -name '*.tmp.*' \) -print 2>/dev/null | wc -l
}

# check_models ROUND: (c); sets newest_version ("" when none) and model_ok (1/0)
check_models() {
  local round=$1 newest
  newest=$(find "$ddir/models" -maxdepth 1 -name 'model-*.safetensors' 2>/dev/null | sort | tail -n 1)
  newest_version=""
  model_ok=0
  if [ -z "$newest" ]; then
    echo "faults: round $round: no model in $ddir/models" >&2
    return
  fi
  newest_version=$(basename "$newest" .safetensors)
  newest_version=$((10#${newest_version#model-}))
  if "$devnet" score --model "$newest" --backbone "$backbone" --json "$probe" > "$tmp/score.out" 2> "$tmp/score.err"; then
    model_ok=1
  else
    echo "faults: round $round: the newest model $newest does not load:" >&2
    cat "$tmp/score.err" >&2
  fi
}

# kill_state LOG: "retrain STAGE" when the log's last retrain job had not finished, else "idle"
kill_state() {
  awk '/"event":"retrain_start"/ { r = 1; st = "started" }
       /"event":"retrain_progress"/ { if (match($0, /"message":"job-[0-9]*: [^(]*/)) { st = substr($0, RSTART + 23, RLENGTH - 23); sub(/ +$/, "", st); gsub(/ /, "_", st) } }
       /"event":"retrain_(done|failed)"/ { r = 0 }
       END { print r ? "retrain " st : "idle -" }' "$1"
}

# settle_wait LOG: stops the traffic, then waits until the retraining it triggered has
# ended (the log idle on two looks 0.3 s apart, the debounce long past), at most
# settle_max_s seconds
settle_wait() {
  local log=$1 t0 idle=0 state _
  stop_client
  t0=$(now)
  sleep 0.5
  while [ "$idle" -lt 2 ]; do
    read -r state _ < <(kill_state "$log")
    if [ "$state" = idle ]; then idle=$((idle + 1)); else idle=0; fi
    awk -v a="$t0" -v n="$EPOCHREALTIME" -v m="$settle_max_s" 'BEGIN { exit !(n - a > m) }' && break
    sleep 0.3
  done
}

# ---- the rounds ----
t_start=$(now)
echo "faults: $rounds rounds, seed $seed, kill after ${min_delay}..${max_delay} s of traffic; folder $tmp" >&2
RANDOM=$seed
start_daemon "$first_ready_timeout" || { failed=1; die "the first start failed (see $log)"; }
first_ready_s=$ready_s
echo "faults: first start ready in $first_ready_s s (first model trained, version $ready_version)" >&2
: > "$tmp/ready_times"
rounds_done=0
for round in $(seq 1 "$rounds"); do
  delay_ms=$((min_ms + ((RANDOM << 15) | RANDOM) % (max_ms - min_ms + 1))) # not in a subshell: seeded
  mode=traffic
  if [ $((RANDOM % 100)) -lt "$settle_pct" ]; then mode=settle; fi
  settle_ms=$((RANDOM % 1001))
  acked0=$(wc -l < "$ledger")
  rm -f "$tmp/stop"
  client "$round" &
  cpid=$!
  sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
  if [ "$mode" = settle ]; then
    settle_wait "$log"
    sleep "$(awk -v m="$settle_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
  fi
  kill -KILL "$dpid" 2>/dev/null || true
  wait "$dpid" 2>/dev/null || true
  killed_log=$log
  dpid=""
  stop_client
  read -r state stage < <(kill_state "$killed_log")
  [ "$state" = idle ] || kills_retrain=$((kills_retrain + 1))
  [ "$mode" = traffic ] || settle_rounds=$((settle_rounds + 1))
  echo "$mode $state $stage" >> "$tmp/kills"
  acked=$(($(wc -l < "$ledger") - acked0))

  check_store "$round"
  tmp_after_kill=$(count_feedback_tmp)
  [ "$tmp_after_kill" -eq 0 ] || temp_after_kill_rounds=$((temp_after_kill_rounds + 1))
  check_models "$round"
  [ "$model_ok" = 1 ] || no_model_rounds=$((no_model_rounds + 1))

  # restart on the same data dir: it must be ready in time, clean the temporary files
  # the kill left, and serve the newest version (or a newer one it published meanwhile)
  restarted=1
  if ! start_daemon "$ready_timeout"; then
    restarted=0
    restarts_failed=$((restarts_failed + 1))
    failed=1
  fi
  echo "$ready_s" >> "$tmp/ready_times"
  r_temp_left=$(count_feedback_tmp)
  temp_left=$((temp_left + r_temp_left))
  if [ "$restarted" = 1 ] && [ -n "$newest_version" ] && [ -n "$ready_version" ] && [ "$ready_version" -lt "$newest_version" ]; then
    served_older=$((served_older + 1))
    echo "faults: round $round: restarted daemon serves version $ready_version, the newest on disk is $newest_version" >&2
  fi
  printf 'round %d mode=%s delay_ms=%d acked=%d visible=%d kill=%s stage=%s tmp_after_kill=%d newest_model=%s loads=%d ready_s=%s served=%s temp_left=%d problems=%d\n' \
    "$round" "$mode" "$delay_ms" "$acked" "$round_visible" "$state" "$stage" "$tmp_after_kill" "${newest_version:-none}" \
    "$model_ok" "${ready_s:-?}" "${ready_version:-?}" "$r_temp_left" "$round_store_bad" | tee -a "$tmp/rounds" >&2
  rounds_done=$round
  [ "$restarted" = 1 ] || break
done

# ---- the end: a full check of the ledger once more, a clean stop, the logs ----
final_stop_rc=""
if [ -n "$dpid" ]; then
  kill -TERM "$dpid" 2>/dev/null || true
  final_stop_rc=0
  wait "$dpid" 2>/dev/null || final_stop_rc=$?
  dpid=""
fi
check_store final
versions=$(find "$ddir/models" -maxdepth 1 -name 'model-*.safetensors*' 2>/dev/null | sed 's/.*model-0*\([0-9]*\)\.safetensors.*/\1/' | sort -n | tail -n 1)
other_tmp=$(count_other_tmp)
acknowledged=$(wc -l < "$ledger")
unacked=$(wc -l < "$tmp/unacked")
unacked_codes=$(awk '{ c[$2]++ } END { for (k in c) printf "%s%s:%d", n++ ? "," : "", k, c[k] }' "$tmp/unacked")
odd_answers=$( [ -e "$tmp/odd_answers" ] && wc -l < "$tmp/odd_answers" || echo 0)
read -r ready_median ready_max < <(sort -n "$tmp/ready_times" | awk '$1 != "" { v[n++] = $1 }
  END { if (!n) { print "nan nan"; exit } m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; printf "%.3f %.3f\n", m, v[n - 1] }')
# warnings and errors the daemons logged, by event (the 503s of /readyz before a model is
# live and other request lines aside)
cat "$tmp"/logs/devnetd.*.log | awk '/"level":"(warn|error|fatal)"/ && !/"event":"(request|not_ready)"/ {
    if (match($0, /"level":"[a-z]*","event":"[a-z_]*"/)) c[substr($0, RSTART, RLENGTH)]++ }
  END { for (k in c) print c[k], k }' | sort -rn > "$tmp/warnings"
sanitizer=$(cat "$tmp"/logs/devnetd.*.log | grep -c -e 'Sanitizer' -e 'runtime error' || true)
retrain_failed=$(cat "$tmp"/logs/devnetd.*.log | grep -c '"event":"retrain_failed"' || true)
retrain_done=$(cat "$tmp"/logs/devnetd.*.log | grep -c '"event":"retrain_done"' || true)
if [ -s "$tmp/kills" ]; then
  echo "faults: kills by round mode, daemon state and retrain stage reached (count):" >&2
  sort "$tmp/kills" | uniq -c | sort -rn | sed 's/^/  /' >&2
fi
if [ -s "$tmp/warnings" ]; then
  echo "faults: warnings and errors in the daemon logs (count, level, event):" >&2
  sed 's/^/  /' "$tmp/warnings" >&2
  # their messages, job ids and request ids aside (a retrain cancelled by the final SIGTERM
  # is expected)
  cat "$tmp"/logs/devnetd.*.log | awk '/"level":"(warn|error|fatal)"/ && !/"event":"(request|not_ready)"/' |
    sed -n 's/.*"event":"\([a-z_]*\)".*"message":"\(.*\)"}$/\1: \2/p' |
    sed 's/job-[0-9]*/job-N/g; s/[0-9a-f]\{64\}/SHA/g; s/\.tmp\.[0-9]*/.tmp.PID/g' | sort | uniq -c | sort -rn | head -n 20 |
    sed 's/^/    /' >&2
fi
elapsed=$(since "$t_start")

pass=1
[ "$lost" -eq 0 ] && [ "$unreadable" -eq 0 ] && [ "$bad_hash" -eq 0 ] && [ "$visible_bad" -eq 0 ] &&
  [ "$temp_left" -eq 0 ] && [ "$no_model_rounds" -eq 0 ] && [ "$restarts_failed" -eq 0 ] &&
  [ "$odd_answers" -eq 0 ] && [ "$sanitizer" -eq 0 ] && [ "$rounds_done" -eq "$rounds" ] &&
  [ "${final_stop_rc:-1}" = 0 ] || pass=0
[ "$pass" = 1 ] || failed=1
echo "FAULTS_SUMMARY rounds=$rounds_done acknowledged=$acknowledged lost=$lost unreadable=$unreadable" \
  "bad_hash=$bad_hash temp_left=$temp_left rounds_without_loadable_model=$no_model_rounds" \
  "kills_during_retrain=$kills_retrain settle_rounds=$settle_rounds ready_median_s=$ready_median ready_max_s=$ready_max" \
  "model_versions=${versions:-0} wrong_label=$wrong_label visible_bad=$visible_bad odd_answers=$odd_answers" \
  "unacknowledged=$unacked${unacked_codes:+ unacknowledged_codes=$unacked_codes}" \
  "kills_mid_write=$temp_after_kill_rounds other_tmp_left=$other_tmp served_older=$served_older" \
  "restarts_failed=$restarts_failed retrains_done=$retrain_done retrains_failed=$retrain_failed" \
  "sanitizer_reports=$sanitizer final_stop_rc=${final_stop_rc:-none} first_ready_s=$first_ready_s" \
  "seed=$seed elapsed_s=$elapsed pass=$pass"
[ "$pass" = 1 ] || exit 1
