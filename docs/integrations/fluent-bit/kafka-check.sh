#!/usr/bin/env bash
# Runs the Fluent Bit -> Kafka recipe of docs/integrations/kafka.md for real, with two eqlstream
# instances in one consumer group behind it, and checks that they give the alerts eqlstream gives
# on the same events from stdin.
#
#   FLUENT_BIT=/path/to/fluent-bit [TANSU=/path/to/tansu] docs/integrations/fluent-bit/kafka-check.sh [EVENTS]
#
# loadgen file -> Fluent Bit tail + parser + nest + kafka (Format raw, keyed by container.id) ->
# a 6-partition topic on Tansu -> two `eqlstream --input kafka://...?group=G` (3 partitions
# each). PASS when: every line arrived byte for byte (the multiset of pass-through lines equals
# the file's), the union of the two instances' alerts (by event.id) equals stdin's, and each
# instance found some (so a sequence's events were not split between them: they were keyed).
# Needs python3 (and Fluent Bit built with FLB_OUT_KAFKA and FLB_FILTER_NEST).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
FB=${FLUENT_BIT:?set FLUENT_BIT to a fluent-bit binary with the kafka output and nest filter}
EVENTS=${1:-30000}
. benches/lib.sh
. "$HERE/setup.sh"

PORT=$(free_port)
start_tansu "$PORT" "$DIR/tansu.log"
"$(tansu_path)" topic create --broker "tcp://127.0.0.1:$PORT" --partitions 6 events > /dev/null

(cd "$DIR" && cp "$HERE/parsers.conf" . && KAFKA_BROKERS=127.0.0.1:$PORT KAFKA_TOPIC=events \
  EVENTS_FILE="$DIR/events.ndjson" exec "$FB" -c "$HERE/kafka.conf" > "$DIR/fb.log" 2>&1) &
fb_pid=$!

addrs=()
pids=()
for i in 1 2; do
  "$EQ" --input "kafka://127.0.0.1:$PORT/events?group=fluent-bit-check" --metrics-address 127.0.0.1:0 \
    > "$DIR/member$i.ndjson" 2> "$DIR/member$i.err" &
  pids+=($!)
done
for i in 1 2; do
  addrs+=("$(metrics_addr "$DIR/member$i.err")")
done
# Wait until both have read every event (at most 300 s) and emptied their reorder buffers.
for _ in $(seq 1 3000); do
  n=$(( $(metric_sum "${addrs[0]}" eqlstream_kafka_consumed_events_total) + $(metric_sum "${addrs[1]}" eqlstream_kafka_consumed_events_total) ))
  [ "$n" -ge "$EVENTS" ] && break
  sleep 0.1
done
wait_drained "${addrs[@]}"
parts="$(metric_sum "${addrs[0]}" eqlstream_kafka_assigned_partitions)/$(metric_sum "${addrs[1]}" eqlstream_kafka_assigned_partitions)"
kill -TERM "$fb_pid" "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true

python3 - "$DIR" "$parts" <<'PY'
import json, sys, collections
d, parts = sys.argv[1], sys.argv[2]
def split(path):
    lines, ids = [], set()
    for raw in open(path, "rb"):
        try:
            v = json.loads(raw)
        except ValueError:
            v = None
        if isinstance(v, dict) and v.get("event", {}).get("module") == "eqlstream":
            ids.add(v["event"]["id"])
        else:
            lines.append(raw)
    return lines, ids
_, want = split(f"{d}/stdin.ndjson")
l1, a1 = split(f"{d}/member1.ndjson")
l2, a2 = split(f"{d}/member2.ndjson")
source = collections.Counter(open(f"{d}/events.ndjson", "rb"))
got = collections.Counter(l1 + l2)
same_lines = all(got[l] >= c for l, c in source.items()) and set(got) <= set(source)
ok = same_lines and (a1 | a2) == want and a1 and a2
print(("PASS" if ok else "FAIL") + f" Fluent Bit tail -> kafka (keyed by container.id) -> 2 eqlstream members "
      f"(partitions {parts}): {sum(source.values())} events, every line byte for byte: {same_lines}, "
      f"alerts {len(a1 | a2)}/{len(want)} identical to stdin ({len(a1)} + {len(a2)})")
sys.exit(0 if ok else 1)
PY
