#!/bin/bash
# The service's retraining time at the size the budget is set for (issue 7: 30 s on 2
# cores for ~1000 normal images and 10 anomalies): devnetd trains a first model on
# ../shared/data/elpv (1131 normals; features extracted once, into the data dir's cache),
# then gets 10 labelled anomalies as feedback; the job that follows is timed.
# Usage: bench/retrain_time.sh   (prints the first job's log line and the second job)
set -u
cd "$(dirname "$0")/.."
SHARED=${DEVNET_SHARED:-../shared}
D=$(mktemp -d /tmp/retrain-time-XXXXXX)
trap 'kill $pid 2>/dev/null; rm -rf "$D"' EXIT
build/devnetd --listen 127.0.0.1:18555 --data-dir $D/data --train-data $SHARED/data/elpv --set retrain_debounce_ms=500 2>$D/log &
pid=$!
until curl -sf localhost:18555/readyz >/dev/null; do sleep 1; done
echo "first model: $(grep retrain_done $D/log | cut -c1-200)"
job=""
for f in $(ls $SHARED/data/elpv/test/mono/*.png | head -5) $(ls $SHARED/data/elpv/test/poly/*.png | head -5); do
  job=$(curl -s -H 'Content-Type: image/png' --data-binary @$f 'localhost:18555/feedback?label=anomaly' | python3 -c 'import json,sys; print(json.load(sys.stdin)["retrain"]["job_id"])')
done
while :; do s=$(curl -s localhost:18555/jobs/$job); case "$s" in *'"status":"succeeded"'*|*'"status":"failed"'*) echo "$s"; break;; esac; sleep 1; done
kill $pid; wait $pid
pid=
