#!/usr/bin/env bash
# Alert latency of eqlstream under real-time load, end to end and as eqlstream's metrics see it.
#
#   benches/latency.sh [SECONDS] [RATE]      (defaults: 30 s, 20000 events/s)
#
# Run 1 (stdin):
#   eqlstream-loadgen --realtime --rate RATE --duration SECONDS --drain DRAIN --attack-rate 0.001 --truth T \
#     | eqlstream --metrics-address 127.0.0.1:P1 \
#     | eqlstream-loadgen latency --truth T --metrics http://127.0.0.1:P1/metrics
# Run 2 (TCP, 4 connections):
#   eqlstream --input tcp://127.0.0.1:P2 --metrics-address 127.0.0.1:P3 > FIFO      (started first)
#   eqlstream-loadgen latency --truth T2 --metrics http://127.0.0.1:P3/metrics < FIFO
#   eqlstream-loadgen --realtime ... --connections 4 -o tcp://127.0.0.1:P2         (once P2 listens)
#   then, LINGER seconds after the loadgen is done (the latency tool scrapes once a second, so it
#   has its last scrape), SIGTERM to eqlstream: it drains and exits, the latency tool sees EOF.
#
# Each run prints the latency tool's report: recall, precision, the measured latency (alert read
# by the tool - write of the line completing the sequence by the loadgen) p50/p90/p99/max, and
# p50/p99 of eqlstream_alert_latency_seconds / eqlstream_alert_buffering_seconds computed from the
# buckets as histogram_quantile does. Scenarios started in the last 10 s complete after SECONDS,
# and --drain (DRAIN, default 4s: more than eqlstream's 2 s max_out_of_orderness plus a scrape)
# keeps background traffic going afterwards, so every alert is released by the watermark, not by
# the end of the input: a run lasts about SECONDS + 12 s + DRAIN.
#
# Environment: DRAIN (default 4s), LINGER (default 2, seconds), SEED (default 1),
# EQLSTREAM_ARGS (extra eqlstream flags). Exit status 1 if a run's recall or precision is not
# 100 % (both runs are made either way).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_ARG=${1:-30}
RATE=${2:-20000}
DRAIN=${DRAIN:-4s}
LINGER=${LINGER:-2}
SEED=${SEED:-1}
read -r -a EXTRA <<< "${EQLSTREAM_ARGS:-}"
BIN=target/release
if [ ! -x "$BIN/eqlstream" ] || [ ! -x "$BIN/eqlstream-loadgen" ]; then
  echo "building release binaries" >&2
  cargo build --release --locked --bin eqlstream --bin eqlstream-loadgen >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eqlstream-latency.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show() { printf '+ %s\n' "$*"; }

# A TCP port nobody uses on this machine (no socket in any state in /proc/net/tcp{,6}).
port_in_use() {
  local hex
  hex=$(printf ':%04X ' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2" "}' | grep -qi -- "$hex"
}
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}
# Waits until something listens on 127.0.0.1:PORT (state 0A in /proc/net/tcp), or PID dies.
wait_listen() {
  local port=$1 pid=$2 hex
  hex=$(printf ':%04X' "$port")
  for _ in $(seq 1 200); do
    if awk -v h="$hex" '$4 == "0A" && toupper($2) ~ h"$"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q .; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "eqlstream exited before listening" >&2; return 1; }
    sleep 0.05
  done
  echo "nothing listens on port $port after 10 s" >&2
  return 1
}

GEN=("$BIN/eqlstream-loadgen" --realtime --rate "$RATE" --duration "${SECONDS_ARG}s" --drain "$DRAIN"
  --attack-rate 0.001 --seed "$SEED" --stats)
STATUS=0

echo "== run 1: stdin, ${SECONDS_ARG}s at ${RATE} events/s"
P1=$(free_port)
CMD_GEN=("${GEN[@]}" --truth "$TMP/t1.jsonl")
CMD_EQ=("$BIN/eqlstream" --metrics-address "127.0.0.1:$P1" "${EXTRA[@]}")
CMD_LAT=("$BIN/eqlstream-loadgen" latency --truth "$TMP/t1.jsonl" --metrics "http://127.0.0.1:$P1/metrics")
show "${CMD_GEN[*]} 2>gen1.err | ${CMD_EQ[*]} 2>eq1.err | ${CMD_LAT[*]}"
set +e
"${CMD_GEN[@]}" 2>"$TMP/gen1.err" | "${CMD_EQ[@]}" 2>"$TMP/eq1.err" | "${CMD_LAT[@]}"
ST=("${PIPESTATUS[@]}")
set -e
grep -h -E '^(events=|realtime:)' "$TMP/gen1.err" | sed 's/^/loadgen: /' || true
grep -h -E '^eqlstream: lines=' "$TMP/eq1.err" || true
echo "exit statuses: loadgen=${ST[0]} eqlstream=${ST[1]} latency=${ST[2]}"
if [ "${ST[0]}" != 0 ] || [ "${ST[1]}" != 0 ]; then
  cat "$TMP/gen1.err" "$TMP/eq1.err" >&2
  STATUS=1
fi
[ "${ST[2]}" = 0 ] || STATUS=1

echo
echo "== run 2: TCP, 4 connections, ${SECONDS_ARG}s at ${RATE} events/s"
P2=$(free_port)
P3=$(free_port)
while [ "$P3" = "$P2" ]; do P3=$(free_port); done
mkfifo "$TMP/out2"
CMD_LAT=("$BIN/eqlstream-loadgen" latency --truth "$TMP/t2.jsonl" --metrics "http://127.0.0.1:$P3/metrics")
CMD_EQ=("$BIN/eqlstream" --input "tcp://127.0.0.1:$P2" --metrics-address "127.0.0.1:$P3" "${EXTRA[@]}")
CMD_GEN=("${GEN[@]}" --truth "$TMP/t2.jsonl" --connections 4 -o "tcp://127.0.0.1:$P2")
show "${CMD_LAT[*]} < out2 &"
"${CMD_LAT[@]}" < "$TMP/out2" > "$TMP/report2" &
LAT=$!
PIDS+=("$LAT")
show "${CMD_EQ[*]} > out2 2>eq2.err &"
"${CMD_EQ[@]}" > "$TMP/out2" 2>"$TMP/eq2.err" &
EQ=$!
PIDS+=("$EQ")
wait_listen "$P2" "$EQ"
show "${CMD_GEN[*]} 2>gen2.err"
set +e
"${CMD_GEN[@]}" 2>"$TMP/gen2.err"
GEN_ST=$?
set -e
show "sleep $LINGER; kill -TERM $EQ"
sleep "$LINGER"
kill -TERM "$EQ" 2>/dev/null || true
set +e
EQ_ST=0
for _ in $(seq 1 300); do
  kill -0 "$EQ" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$EQ" 2>/dev/null; then
  echo "eqlstream still running 30 s after SIGTERM: killing it" >&2
  kill -KILL "$EQ" 2>/dev/null
fi
wait "$EQ"
EQ_ST=$?
wait "$LAT"
LAT_ST=$?
set -e
PIDS=()
cat "$TMP/report2"
grep -h -E '^(events=|realtime:)' "$TMP/gen2.err" | sed 's/^/loadgen: /' || true
grep -h -E '^eqlstream: lines=' "$TMP/eq2.err" || true
echo "exit statuses: loadgen=$GEN_ST eqlstream=$EQ_ST latency=$LAT_ST"
if [ "$GEN_ST" != 0 ] || [ "$EQ_ST" != 0 ]; then
  cat "$TMP/gen2.err" "$TMP/eq2.err" >&2
  STATUS=1
fi
[ "$LAT_ST" = 0 ] || STATUS=1
exit "$STATUS"
