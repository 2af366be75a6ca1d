#!/usr/bin/env bash
# Throughput of eqlstream with many rules (issue 14), against the seed rule alone measured in the
# same run, interleaved.
#
#   benches/rulesets.sh [EVENTS] [ROUNDS]      (defaults: 1000000 events, 5 rounds)
#
# Generates the stream once (eqlstream-loadgen --events EVENTS --attack-rate 0.001 --seed 42),
# then per round runs each row below in turn, output to /dev/null, metrics off:
#   seed_noprefilter   the seed rule (built in), --no-prefilter: the baseline of the ratios
#   seed               the seed rule, default settings (prefilter on)
#   prebuilt16[_nopf]  the 16 prebuilt rules of tests/data/rules, default / --no-prefilter
#   d4c66[_nopf]       the 66 Defend for Containers production rules (tests/data/production/cloud_defend)
#   prod1021[_nopf]    all 1,021 production rules (tests/data/production/{cloud_defend,other})
# and prints per row the median wall time, events/s, events/s relative to seed_noprefilter,
# CPU seconds (user + sys), the largest peak RSS, the prefilter's literals, the lines it skipped
# and whether it turned itself off, and the alerts. The lines end with the issue's acceptance
# ratios. Wall times are medians: this machine is shared and noisy; CPU seconds drift less.
#
# BASELINE_EQLSTREAM=PATH adds seed0_noprefilter and seed0: another eqlstream binary (say, a
# build of the commit before issue 14) run as the two seed rows, in the same rounds.
# Instruction counts (repeatable) are benches/instructions.sh's job.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
EVENTS=${1:-1000000}
ROUNDS=${2:-5}
DIR=${E2E_DIR:-target/e2e}
mkdir -p "$DIR"
FILE="$DIR/issue14-$EVENTS.ndjson"

cargo build --release --locked --bins >&2
BIN=target/release/eqlstream
loadgen_file "$FILE" --events "$EVENTS" --attack-rate 0.001 --seed 42
BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l < "$FILE")
P=tests/data/production

declare -A ARGS=(
  [seed_noprefilter]="--no-prefilter"
  [seed]=""
  [prebuilt16]="--rules tests/data/rules"
  [prebuilt16_nopf]="--rules tests/data/rules --no-prefilter"
  [d4c66]="--rules $P/cloud_defend"
  [d4c66_nopf]="--rules $P/cloud_defend --no-prefilter"
  [prod1021]="--rules $P/cloud_defend --rules $P/other"
  [prod1021_nopf]="--rules $P/cloud_defend --rules $P/other --no-prefilter"
)
declare -A BINS=()
ORDER=(seed_noprefilter seed prebuilt16 prebuilt16_nopf d4c66 d4c66_nopf prod1021 prod1021_nopf)
for name in "${ORDER[@]}"; do BINS[$name]=$BIN; done
if [ -n "${BASELINE_EQLSTREAM:-}" ]; then
  ARGS[seed0_noprefilter]="--no-prefilter"; BINS[seed0_noprefilter]=$BASELINE_EQLSTREAM
  ARGS[seed0]=""; BINS[seed0]=$BASELINE_EQLSTREAM
  ORDER+=(seed0_noprefilter seed0)
fi

RESULTS="$DIR/rulesets.tsv"
: > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  for name in "${ORDER[@]}"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M %U %S" -o "$DIR/time.txt" \
      "${BINS[$name]}" --metrics-address off ${ARGS[$name]} < "$FILE" > /dev/null 2> "$DIR/stderr.txt"
    read -r secs rss user sys < "$DIR/time.txt"
    literals=$(grep -o 'literals=[0-9]*' "$DIR/stderr.txt" | head -1 | cut -d= -f2 || true)
    skipped=$(grep -o 'skipped=[0-9]*' "$DIR/stderr.txt" | tail -1 | cut -d= -f2 || true)
    alerts=$(grep -o 'alerts=[0-9]*' "$DIR/stderr.txt" | tail -1 | cut -d= -f2 || true)
    off=$(grep -c 'Prefilter off' "$DIR/stderr.txt" || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$secs" "$rss" "$user" "$sys" \
      "${literals:--}" "${skipped:-0}" "${alerts:-0}" "$off" >> "$RESULTS"
    echo "round $r $name ${secs}s rss=${rss}KiB skipped=${skipped:-0} alerts=${alerts:-0}" >&2
  done
done

python3 - "$RESULTS" "$LINES" "$BYTES" "${ORDER[@]}" <<'PY'
import sys, statistics, collections
path, lines, size, order = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = collections.defaultdict(list)
for line in open(path):
    name, _, secs, kib, user, sys_, lits, skipped, alerts, off = line.rstrip("\n").split("\t")
    rows[name].append((float(secs), int(kib), float(user) + float(sys_), lits, int(skipped), int(alerts), int(off)))
n = len(next(iter(rows.values())))
print(f"input: {lines} lines, {size/1e6:.1f} MB, {size/lines:.0f} bytes/event; medians of {n} interleaved rounds")
hdr = f"{'rules':<18}{'median s':>9}{'events/s':>11}{'x seed nopf':>12}{'CPU s':>7}{'RSS MiB':>8}{'literals':>9}{'skipped':>9}{'pf off':>7}{'alerts':>7}"
print(hdr)
eps = {}
for name in order:
    r = rows[name]
    m = statistics.median(x[0] for x in r)
    eps[name] = lines / m
for name in order:
    r = rows[name]
    m = statistics.median(x[0] for x in r)
    cpu = statistics.median(x[2] for x in r)
    rss = max(x[1] for x in r) / 1024
    lits = r[0][3]
    skipped = int(statistics.median(x[4] for x in r))
    off = sum(x[6] for x in r)
    alerts = sorted({x[5] for x in r})
    print(f"{name:<18}{m:>9.3f}{eps[name]:>11,.0f}{eps[name]/eps['seed_noprefilter']:>12.2f}{cpu:>7.2f}{rss:>8.1f}"
          f"{lits:>9}{skipped:>9}{str(off)+'/'+str(len(r)):>7}{'/'.join(map(str, alerts)):>7}")
base = eps["seed_noprefilter"]
rss1021 = max(x[1] for x in rows["prod1021"]) / 1024
print(f"acceptance: prod1021/seed_noprefilter = {eps['prod1021']/base:.2f} (>= 0.5), peak RSS {rss1021:.1f} MiB (< 100); "
      f"d4c66/seed_noprefilter = {eps['d4c66']/base:.2f} (>= 0.8)")
if "seed0" in eps:
    print(f"against the baseline binary: seed/seed0 = {eps['seed']/eps['seed0']:.2f}  "
          f"seed_noprefilter/seed0_noprefilter = {base/eps['seed0_noprefilter']:.2f}")
PY
