#!/usr/bin/env bash
# Recall and precision when the load generator's stream arrives over several TCP connections at
# once (split by container.id, each connection in order, connections interleaved as the kernel
# and the scheduler please), default eqlstream settings.
#
#   benches/connections.sh [EVENTS] [CONNECTIONS...]      (defaults: 1000000, 2 4 8)
#
# For each N: eqlstream --input tcp://127.0.0.1:PORT > out; eqlstream-loadgen --events EVENTS
# --attack-rate 0.001 --decoy-rate 0.001 --disorder 1500 --seed 11 --connections N -o tcp://...
# --truth T; once every line is out, SIGTERM; eqlstream-loadgen score --truth T --alerts out.
# EQLSTREAM=PATH runs another eqlstream binary (e.g. an older build, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
shift || true
CONNS=("$@")
[ ${#CONNS[@]} -eq 0 ] && CONNS=(2 4 8)
BIN=target/release
if [ ! -x "$BIN/eqlstream" ] || [ ! -x "$BIN/eqlstream-loadgen" ]; then
  cargo build --release --locked --bin eqlstream --bin eqlstream-loadgen >&2
fi
EQL=${EQLSTREAM:-$BIN/eqlstream}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/eqlstream-conns.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
for n in "${CONNS[@]}"; do
  rm -f "$TMP/err" "$TMP/out"
  "$EQL" --input tcp://127.0.0.1:0 --metrics-address off > "$TMP/out" 2> "$TMP/err" &
  PID=$!
  addr=
  for _ in $(seq 1 200); do
    addr=$(sed -n 's/^eqlstream: listening on tcp:\/\///p' "$TMP/err" 2>/dev/null | head -1)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "eqlstream did not start: $(cat "$TMP/err")" >&2; exit 1; }
  echo "+ $BIN/eqlstream-loadgen --events $EVENTS --attack-rate 0.001 --decoy-rate 0.001 --disorder 1500 --seed 11 --connections $n -o tcp://$addr --truth T"
  "$BIN/eqlstream-loadgen" --events "$EVENTS" --attack-rate 0.001 --decoy-rate 0.001 --disorder 1500 --seed 11 \
    --connections "$n" -o "tcp://$addr" --truth "$TMP/truth" || { cat "$TMP/err" >&2; exit 1; }
  # Every line is out when the output stops growing (the loadgen has closed its connections).
  prev=-1
  while true; do
    sleep 1
    size=$(stat -c %s "$TMP/out")
    [ "$size" = "$prev" ] && break
    prev=$size
  done
  kill -TERM "$PID"
  wait "$PID" || true
  PID=
  echo "connections=$n $(grep '^eqlstream: lines=' "$TMP/err")"
  "$BIN/eqlstream-loadgen" score --truth "$TMP/truth" --alerts "$TMP/out" | grep -E "^(truth|alert|recall|precision)" || true
done
