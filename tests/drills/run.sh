#!/usr/bin/env bash
# Hardening drills (issue 13): reproduces each row of the review's table against the built
# binaries and prints PASS or FAIL per row, with what was measured. Not part of `cargo test`
# (it takes a few minutes and several GiB of I/O); run it on a quiet machine:
#
#   cargo build --release && cargo build        # row 4 needs the debug build's fault hook
#   tests/drills/run.sh [ROW...]                 # default: every row, 1 to 10
#
# Exit status: 0 when every row run passes, 1 otherwise. Needs python3 (sockets, timing).
set -uo pipefail
cd "$(dirname "$0")/../.."
REL=${EQLSTREAM:-target/release/eqlstream}
DBG=target/debug/eqlstream
for b in "$REL"; do
  [ -x "$b" ] || { echo "missing $b: cargo build --release" >&2; exit 2; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/eqlstream-drills.XXXXXX")
trap 'pkill -P $$ 2>/dev/null; rm -rf "$TMP"' EXIT
SEED=tests/data/cloud_defend/seed_rule_cases.ndjson
FAILED=0
ROWS=("$@")
[ ${#ROWS[@]} -eq 0 ] && ROWS=(1 2 3 4 5 6 7 8 9 10)

result() { # row, PASS|FAIL, detail
  printf 'row %-2s %s  %s\n' "$1" "$2" "$3"
  [ "$2" = PASS ] || FAILED=1
}

# Peak RSS (KiB) of a command, from /proc (VmHWM) polled until it exits; prints "code peak".
peak_of() {
  "$@" &
  local pid=$! peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.05
  done
  wait "$pid"
  echo "$? $peak"
}

row1() { # A creation event with 300 x 300 distinct join-key values among normal lines.
  python3 - "$SEED" > "$TMP/r1.ndjson" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = json.loads(lines[0])
ev["container"]["id"] = ["c%04d" % i for i in range(300)]
ev["user"]["id"] = ["u%04d" % i for i in range(300)]
out = lines[:30] + [json.dumps(ev, separators=(",", ":"))] + lines[30:]
print("\n".join(out))
EOF
  local t0 t1 o
  t0=$(date +%s%N)
  o=$("$REL" --metrics-address off < "$TMP/r1.ndjson" 2>"$TMP/r1.err" | grep -c '"kind":"alert"')
  t1=$(date +%s%N)
  local ms=$(( (t1 - t0) / 1000000 ))
  if [ "$o" = 6 ] && [ "$ms" -lt 1000 ]; then result 1 PASS "300x300 key arrays: whole run ${ms} ms, 6 alerts"
  else result 1 FAIL "300x300 key arrays: whole run ${ms} ms, $o alerts"; fi
}

row2() { # A completed sequence whose events carry a field nested 1,000 levels deep.
  python3 - "$SEED" > "$TMP/r2.ndjson" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
deep = '"deep":' + "[" * 1000 + "]" * 1000 + ","
print("\n".join(l.replace('{"@timestamp"', '{' + deep + '"@timestamp"', 1) if i < 3 else l for i, l in enumerate(lines)))
EOF
  local n
  n=$("$REL" --metrics-address off < "$TMP/r2.ndjson" 2>"$TMP/r2.err" | grep -c '"kind":"alert"')
  if [ "$n" = 6 ]; then result 2 PASS "1000-deep field in a sequence's events: 6 of 6 alerts"
  else result 2 FAIL "1000-deep field: $n of 6 alerts; $(grep -m1 -i error "$TMP/r2.err")"; fi
}

row3() { # SIGTERM while a 1,496-byte line is half read.
  python3 - "$REL" "$SEED" <<'EOF' > "$TMP/r3.out"
import subprocess, sys, time
rel, seed = sys.argv[1], sys.argv[2]
line = open(seed, "rb").readline()
p = subprocess.Popen([rel, "--metrics-address", "off", "--shutdown-timeout", "2s"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdin.write(line + line[:490]); p.stdin.flush()
time.sleep(0.5)
p.terminate()
p.wait(timeout=20)          # stdin stays open: no end of input
out = p.stdout.read()
bad = [l for l in out.split(b"\n") if l and l + b"\n" != line]
print("exit=%d lines=%d cut=%d" % (p.returncode, out.count(b"\n"), len(bad)))
EOF
  if grep -q "exit=0 lines=1 cut=0" "$TMP/r3.out"; then result 3 PASS "SIGTERM mid-line: $(cat "$TMP/r3.out")"
  else result 3 FAIL "SIGTERM mid-line: $(cat "$TMP/r3.out")"; fi
}

row4() { # A panic in the sequencer (debug build's fault hook).
  if [ ! -x "$DBG" ]; then result 4 FAIL "needs $DBG (cargo build)"; return; fi
  local code
  EQLSTREAM_DEBUG_PANIC=sequencer "$DBG" --metrics-address off --batch-size 4 < "$SEED" > "$TMP/r4.out" 2> "$TMP/r4.err"
  code=$?
  if [ "$code" = 70 ] && grep -q "panicked" "$TMP/r4.err"; then
    result 4 PASS "sequencer panic: exit $code, $(wc -l < "$TMP/r4.out") of 67 lines written, cause on stderr"
  else result 4 FAIL "sequencer panic: exit $code"; fi
}

row5() { # 5,000,000 matching events with one timestamp, streamed through a FIFO.
  mkfifo "$TMP/r5.fifo"
  python3 - "$SEED" 5000000 > "$TMP/r5.fifo" <<'EOF' &
import sys
line = open(sys.argv[1]).readline()
block = line * 1000
for _ in range(int(sys.argv[2]) // 1000):
    sys.stdout.write(block)
EOF
  local r
  r=$(peak_of sh -c "exec \"$REL\" --metrics-address off < \"$TMP/r5.fifo\" > /dev/null 2>\"$TMP/r5.err\"")
  wait
  local peak=${r#* }
  if [ "$peak" -lt 262144 ]; then result 5 PASS "5M events, one timestamp: peak RSS $((peak / 1024)) MiB (max_buffered_events 1000000), $(grep -o 'lines=[0-9]*' "$TMP/r5.err")"
  else result 5 FAIL "5M events, one timestamp: peak RSS $((peak / 1024)) MiB"; fi
}

row6() { # A second instance on the same Unix socket path; mode under umask 000.
  local sock="$TMP/in.sock" code mode
  (umask 000; exec "$REL" --metrics-address off --input "unix://$sock" > "$TMP/r6.out" 2> "$TMP/r6.err") &
  local first=$!
  for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
  mode=$(stat -c %a "$sock")
  timeout 10 "$REL" --metrics-address off --input "unix://$sock" < /dev/null > /dev/null 2> "$TMP/r6b.err"
  code=$?
  python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{\"a\":1}\n'); s.close()" "$sock"
  sleep 0.5
  kill -TERM "$first"; wait "$first"
  if [ "$code" = 78 ] && [ "$mode" = 600 ] && grep -q '{"a":1}' "$TMP/r6.out"; then
    result 6 PASS "second instance exit $code, first still serving, socket mode $mode"
  else result 6 FAIL "second instance exit $code, socket mode $mode, first got: $(head -c 40 "$TMP/r6.out")"; fi
}

row7() { # --max-connections 4, four idle connections, a fifth client.
  "$REL" --metrics-address off --input tcp://127.0.0.1:0 --max-connections 4 --connection-idle-timeout 2s \
    > "$TMP/r7.out" 2> "$TMP/r7.err" &
  local pid=$! addr=
  for _ in $(seq 1 100); do addr=$(sed -n 's/^eqlstream: listening on tcp:\/\///p' "$TMP/r7.err"); [ -n "$addr" ] && break; sleep 0.05; done
  local secs
  secs=$(python3 - "$addr" "$TMP/r7.out" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
idle = [socket.create_connection((host, int(port))) for _ in range(4)]
time.sleep(0.2)
t0 = time.time()
s = socket.create_connection((host, int(port)))
s.sendall(b'{"fifth":1}\n')
while time.time() - t0 < 20:
    if b"fifth" in open(sys.argv[2], "rb").read():
        print("%.1f" % (time.time() - t0)); break
    time.sleep(0.05)
else:
    print("never")
EOF
)
  kill -TERM "$pid"; wait "$pid"
  if [ "$secs" != never ]; then result 7 PASS "four idle connections: the fifth client read after ${secs} s (connection_idle_timeout 2s)"
  else result 7 FAIL "four idle connections: the fifth client was never read"; fi
}

row8() { # A 1 GiB line without a newline over TCP.
  "$REL" --metrics-address off --input tcp://127.0.0.1:0 > /dev/null 2> "$TMP/r8.err" &
  local pid=$! addr=
  for _ in $(seq 1 100); do addr=$(sed -n 's/^eqlstream: listening on tcp:\/\///p' "$TMP/r8.err"); [ -n "$addr" ] && break; sleep 0.05; done
  python3 - "$addr" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
block = b"x" * (1 << 20)
for _ in range(1024):
    s.sendall(block)
s.close()
EOF
  sleep 1
  local peak
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid"
  if [ "$peak" -lt 102400 ]; then result 8 PASS "1 GiB line over TCP: peak RSS $((peak / 1024)) MiB"
  else result 8 FAIL "1 GiB line over TCP: peak RSS $((peak / 1024)) MiB"; fi
}

row9() { # A 20 KB rule file full of errors.
  python3 - > "$TMP/bad.toml" <<'EOF'
q = " or ".join("process.name = 'x%d'" % i for i in range(800))
print('[metadata]\ncreation_date = "2024/01/01"\n[rule]\nrule_id = "x"\nname = "x"\ntype = "eql"\nlanguage = "eql"\nquery = """\nprocess where ' + q + '\n"""')
EOF
  "$REL" validate "$TMP/bad.toml" > /dev/null 2> "$TMP/r9.err"
  local code=$? bytes
  bytes=$(wc -c < "$TMP/r9.err")
  if [ "$code" = 65 ] && [ "$bytes" -lt 65536 ]; then result 9 PASS "$(wc -c < "$TMP/bad.toml")-byte bad rule: $bytes bytes of stderr, exit $code"
  else result 9 FAIL "$(wc -c < "$TMP/bad.toml")-byte bad rule: $bytes bytes of stderr, exit $code"; fi
}

row10() { # 16 idle connections to the metrics port, then a scrape.
  "$REL" --metrics-address 127.0.0.1:0 < /dev/zero > /dev/null 2> "$TMP/r10.err" &
  local pid=$! addr=
  for _ in $(seq 1 100); do addr=$(sed -n 's/^eqlstream: metrics on http:\/\/\(.*\)\/metrics/\1/p' "$TMP/r10.err"); [ -n "$addr" ] && break; sleep 0.05; done
  local secs
  secs=$(python3 - "$addr" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
idle = [socket.create_connection((host, int(port))) for _ in range(16)]
time.sleep(0.2)
t0 = time.time()
s = socket.create_connection((host, int(port)))
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
data = b""
s.settimeout(10)
while True:
    try:
        d = s.recv(65536)
    except Exception:
        break
    if not d:
        break
    data += d
print("%.3f %s" % (time.time() - t0, "ok" if b"eqlstream_received_events_total" in data else "no-metrics"))
EOF
)
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  local t=${secs% *}
  if [ "${secs#* }" = ok ] && awk -v t="$t" 'BEGIN { exit !(t < 1.0) }'; then result 10 PASS "16 idle metrics connections: scrape answered in ${t} s"
  else result 10 FAIL "16 idle metrics connections: scrape ${secs}"; fi
}

for r in "${ROWS[@]}"; do "row$r"; done
exit $FAILED
