#!/usr/bin/env bash
# Runs the Fluent Bit recipes of docs/integrations.md for real, and checks that they give the
# alerts eqlstream gives on the same events read from stdin.
#
#   FLUENT_BIT=/path/to/fluent-bit docs/integrations/fluent-bit/check.sh [EVENTS]
#
# 1. in front: loadgen file -> Fluent Bit tail (Parser json) -> tcp json_lines -> eqlstream
#    --input tcp://; the alerts' ids (deterministic: rule and events) must equal those of stdin;
# 2. behind: eqlstream < file | Fluent Bit stdin -> grep event.module eqlstream -> stdout: the records
#    out must be exactly eqlstream's alerts.
# Prints PASS/FAIL per recipe; exits 1 if one fails. Needs python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
FB=${FLUENT_BIT:?set FLUENT_BIT to a fluent-bit binary}
EVENTS=${1:-30000}
. "$HERE/setup.sh"

alert_ids() { # FILE: the sorted event.id of its alerts
  python3 -c '
import json, sys
ids = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    e = d.get("event") if isinstance(d, dict) else None
    if isinstance(e, dict) and e.get("kind") == "alert":
        ids.append(e["id"])
print("\n".join(sorted(ids)))' "$1"
}
alert_ids "$DIR/stdin.ndjson" > "$DIR/stdin.ids"
want=$(wc -l < "$DIR/stdin.ids")
status=0

# 1. In front.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$EQ" --metrics-address off --input "tcp://127.0.0.1:$PORT" > "$DIR/front.ndjson" 2> "$DIR/front.err" &
eq_pid=$!
for _ in $(seq 1 100); do grep -q "Listening\|listening" "$DIR/front.err" 2>/dev/null && break; sleep 0.1; done
(cd "$DIR" && EVENTS_FILE="$DIR/events.ndjson" EQLSTREAM_PORT=$PORT exec "$FB" -c "$HERE/front.conf" > "$DIR/fb-front.log" 2>&1) &
fb_pid=$!
# Wait until every event went through (at most 120 s), then stop Fluent Bit and drain eqlstream.
for _ in $(seq 1 1200); do
  n=$(grep -c -v '"kind":"alert"' "$DIR/front.ndjson" || true)
  [ "$n" -ge "$EVENTS" ] && break
  sleep 0.1
done
sleep 1.5
kill -TERM "$fb_pid" 2>/dev/null || true
wait "$fb_pid" 2>/dev/null || true
kill -TERM "$eq_pid"
wait "$eq_pid" || true
alert_ids "$DIR/front.ndjson" > "$DIR/front.ids"
events_out=$(grep -c -v '"kind":"alert"' "$DIR/front.ndjson" || true)
if diff -q "$DIR/stdin.ids" "$DIR/front.ids" >/dev/null; then
  echo "PASS in front: Fluent Bit tail -> tcp -> eqlstream: $events_out events, $want/$want alerts identical to stdin"
else
  echo "FAIL in front: $events_out events; alerts stdin=$want tcp=$(wc -l < "$DIR/front.ids")"
  diff "$DIR/stdin.ids" "$DIR/front.ids" | head -5
  grep -i "warn\|late" "$DIR/front.err" | head -5
  status=1
fi

# 2. Behind.
"$EQ" --metrics-address off < "$DIR/events.ndjson" 2>/dev/null \
  | "$FB" -c "$HERE/behind.conf" 2> "$DIR/fb-behind.log" > "$DIR/behind.ndjson" || true
alert_ids "$DIR/behind.ndjson" > "$DIR/behind.ids"
records=$(grep -c . "$DIR/behind.ndjson" || true)
if diff -q "$DIR/stdin.ids" "$DIR/behind.ids" >/dev/null && [ "$records" -eq "$want" ]; then
  echo "PASS behind: eqlstream | Fluent Bit grep module=eqlstream: $records records, exactly the $want alerts"
else
  echo "FAIL behind: $records records, $(wc -l < "$DIR/behind.ids") alerts of $want"
  status=1
fi
exit $status
