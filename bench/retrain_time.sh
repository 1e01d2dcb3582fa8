#!/bin/bash
# The service's retraining time at the size the budget is set for (issue 7: 30 s on 2
# cores for ~1000 normal images and 10 anomalies): devnetd trains a first model on a
# dataset's train/good (features extracted once, into the data dir's cache), then gets 10
# labelled anomalies as feedback; the job that follows is timed.
#
# Usage: bench/retrain_time.sh [--masks] [-- DEVNETD ARGS...]
#   default  ../shared/data/elpv (1131 normals), anomalies as raw PNG bodies (elpv has no
#            masks)
#   --masks  ../shared/data/magnetic_tile (714 normals), two anomalies of each defect class
#            sent as JSON with their pixel masks, so the job also trains the defect
#            classifier
#   DEVNETD ARGS, e.g. --set retrain_head_input=final, go to the daemon.
# Prints the first job's log line and the second job.
set -u
cd "$(dirname "$0")/.."
SHARED=${DEVNET_SHARED:-../shared}
MASKS=0
[ "${1:-}" = "--masks" ] && MASKS=1 && shift
[ "${1:-}" = "--" ] && shift
DATA=$SHARED/data/elpv
[ $MASKS = 1 ] && DATA=$SHARED/data/magnetic_tile
D=$(mktemp -d /tmp/retrain-time-XXXXXX)
trap 'kill $pid 2>/dev/null; rm -rf "$D"' EXIT
build/devnetd --listen 127.0.0.1:18555 --data-dir $D/data --train-data $DATA --set retrain_debounce_ms=500 "$@" 2>$D/log &
pid=$!
until curl -sf localhost:18555/readyz >/dev/null; do sleep 1; done
echo "first model: $(grep retrain_done $D/log | cut -c1-200)"

job_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["retrain"]["job_id"])'; }

# One anomaly with its mask as a JSON feedback body (written to a file: images are large).
json_with_mask() {
  python3 - "$1" "$2" >$D/body.json <<'EOF'
import base64, json, sys
read = lambda p: base64.b64encode(open(p, "rb").read()).decode()
json.dump({"image": read(sys.argv[1]), "label": "anomaly", "mask": read(sys.argv[2])}, sys.stdout)
EOF
  curl -s -H 'Content-Type: application/json' --data-binary @$D/body.json localhost:18555/feedback
}

job=""
if [ $MASKS = 1 ]; then
  for cls in blowhole break crack fray uneven; do
    for f in $(ls $DATA/test/$cls/*.jpg | head -2); do
      stem=$(basename "${f%.*}")
      job=$(json_with_mask "$f" "$DATA/ground_truth/$cls/${stem}_mask.png" | job_of)
    done
  done
else
  for f in $(ls $DATA/test/mono/*.png | head -5) $(ls $DATA/test/poly/*.png | head -5); do
    job=$(curl -s -H 'Content-Type: image/png' --data-binary @$f 'localhost:18555/feedback?label=anomaly' | job_of)
  done
fi
while :; do s=$(curl -s localhost:18555/jobs/$job); case "$s" in *'"status":"succeeded"'*|*'"status":"failed"'*) echo "$s"; break;; esac; sleep 1; done
kill $pid; wait $pid
pid=
