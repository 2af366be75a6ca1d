#!/usr/bin/env bash
# End-to-end throughput of eqlstream against baselines measured in the same run, interleaved.
#
#   benches/e2e.sh [EVENTS] [ROUNDS]      (defaults: 1000000 events, 5 rounds)
#
# Generates a fixed file once with eqlstream-loadgen (seed 42), then per round runs, in turn:
#   (a) cat FILE > /dev/null
#   (b) examples/baseline split: line split + write, no parsing
#   (c) examples/baseline parse: simd-json parse of every line on all cores, no detection
#   (d) eqlstream --no-prefilter, seed rule, output to /dev/null
#   (e) eqlstream --prefilter, seed rule, output to /dev/null
# and, on QUIET = the lines of FILE without the action values `creation`, `exec` and `deletion`
# (a stream where no line can match a stage of the seed rule):
#   (f) examples/baseline parse          (g) eqlstream --prefilter
# and prints the median wall time, events/s, MB/s and CPU seconds (user + sys) of each, peak RSS,
# and the ratios d/b, d/c, e/c, g/f. Wall times are medians: this machine is shared and noisy
# (10-25 % drift between rounds); CPU seconds drift less.
#
# BASELINE_EQLSTREAM=PATH adds (d0) and (e0): another eqlstream binary (say, a build of the
# previous commit) run as (d) and (e), interleaved in the same rounds, to measure a change.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
ROUNDS=${2:-5}
DIR=${E2E_DIR:-target/e2e}
mkdir -p "$DIR"
FILE="$DIR/events-$EVENTS.ndjson"

cargo build --release --locked --bins --examples >&2
BIN=target/release
if [ ! -s "$FILE" ]; then
  echo "generating $FILE" >&2
  "$BIN/eqlstream-loadgen" --events "$EVENTS" --attack-rate 0.001 --decoy-rate 0.001 --seed 42 > "$FILE.tmp"
  mv "$FILE.tmp" "$FILE"
fi
QUIET="$DIR/quiet-$EVENTS.ndjson"
if [ ! -s "$QUIET" ]; then
  grep -v -E '"(creation|exec|deletion)"' "$FILE" > "$QUIET.tmp" || true
  mv "$QUIET.tmp" "$QUIET"
fi
BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l < "$FILE")
QBYTES=$(stat -c %s "$QUIET")
QLINES=$(wc -l < "$QUIET")

declare -A CMDS=(
  [a_cat]="cat $FILE > /dev/null"
  [b_split]="$BIN/examples/baseline split < $FILE > /dev/null"
  [c_parse]="$BIN/examples/baseline parse < $FILE"
  [d_eqlstream_noprefilter]="$BIN/eqlstream --metrics-address off --no-prefilter < $FILE > /dev/null"
  [e_eqlstream]="$BIN/eqlstream --metrics-address off --prefilter < $FILE > /dev/null"
  [f_quiet_parse]="$BIN/examples/baseline parse < $QUIET"
  [g_quiet_eqlstream]="$BIN/eqlstream --metrics-address off --prefilter < $QUIET > /dev/null"
)
ORDER=(a_cat b_split c_parse d_eqlstream_noprefilter e_eqlstream f_quiet_parse g_quiet_eqlstream)
if [ -n "${BASELINE_EQLSTREAM:-}" ]; then
  CMDS[d0_baseline_noprefilter]="$BASELINE_EQLSTREAM --metrics-address off --no-prefilter < $FILE > /dev/null"
  CMDS[e0_baseline]="$BASELINE_EQLSTREAM --metrics-address off --prefilter < $FILE > /dev/null"
  ORDER+=(d0_baseline_noprefilter e0_baseline)
fi
RESULTS="$DIR/results.tsv"
: > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  for name in "${ORDER[@]}"; do
    /usr/bin/time -f "%e %M %U %S" -o "$DIR/time.txt" bash -c "${CMDS[$name]}" 2>/dev/null
    read -r secs rss user sys < "$DIR/time.txt"
    cpu=$(python3 -c "print(round($user + $sys, 2))")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$secs" "$rss" "$cpu" >> "$RESULTS"
    echo "round $r $name ${secs}s cpu=${cpu}s rss=${rss}KiB" >&2
  done
done

python3 - "$RESULTS" "$LINES" "$BYTES" "$QLINES" "$QBYTES" <<'PY'
import sys, statistics, collections
path, lines, size, qlines, qsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t = collections.defaultdict(list); rss = collections.defaultdict(list); cpu = collections.defaultdict(list)
for row in open(path):
    name, _, secs, kib, cpus = row.split()
    t[name].append(float(secs)); rss[name].append(int(kib)); cpu[name].append(float(cpus))
print(f"input: {lines} lines, {size/1e6:.1f} MB, {size/lines:.0f} bytes/event; medians of {len(next(iter(t.values())))} rounds")
print(f"quiet input (f, g): {qlines} lines, {qsize/1e6:.1f} MB, {qsize/max(qlines,1):.0f} bytes/event")
print(f"{'variant':<28}{'median s':>10}{'events/s':>14}{'MB/s':>10}{'CPU s':>8}{'peak RSS MiB':>14}")
eps = {}
for name in sorted(t):
    n, b = (qlines, qsize) if name.startswith(('f_', 'g_')) else (lines, size)
    m = statistics.median(t[name]); eps[name] = n / m if m > 0 else float('inf')
    print(f"{name:<28}{m:>10.3f}{eps[name]:>14,.0f}{b/1e6/m if m>0 else 0:>10.0f}{statistics.median(cpu[name]):>8.2f}{max(rss[name])/1024:>14.1f}")
d, e = eps.get('d_eqlstream_noprefilter'), eps.get('e_eqlstream')
b, c = eps.get('b_split'), eps.get('c_parse')
f, g = eps.get('f_quiet_parse'), eps.get('g_quiet_eqlstream')
print(f"ratios: d/b = {d/b:.2f}  d/c = {d/c:.2f}  e/c = {e/c:.2f}  g/f = {g/f:.2f}")
if 'e0_baseline' in eps:
    print(f"against the baseline binary: d/d0 = {d/eps['d0_baseline_noprefilter']:.2f}  e/e0 = {e/eps['e0_baseline']:.2f}")
PY
