#!/usr/bin/env bash
# Instructions per line (callgrind, repeatable to within about 1 %) of eqlstream on the first
# LINES lines of the issue-14 stream, for the rule sets of benches/rulesets.sh.
#
#   benches/instructions.sh [LINES]            (default: 50000)
#
# BASELINE_EQLSTREAM=PATH measures the seed rows of that binary too. Every thread is counted
# (reader, decode workers, sequencer, partitions, writer) and rule loading is included: with many
# rules it weighs on 50,000 lines (see the `startup` column: the same binary and rules on one line).
# Each row takes a minute or more under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
LINES=${1:-50000}
DIR=${E2E_DIR:-target/e2e}
mkdir -p "$DIR/callgrind"
STREAM="$DIR/issue14-1000000.ndjson"
cargo build --release --locked --bins >&2
BIN=target/release/eqlstream
loadgen_file "$STREAM" --events 1000000 --attack-rate 0.001 --seed 42
head -n "$LINES" "$STREAM" > "$DIR/first-$LINES.ndjson"
head -n 1 "$STREAM" > "$DIR/first-1.ndjson"
P=tests/data/production

count() { # NAME BIN INPUT ARGS...
  local name=$1 bin=$2 input=$3; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind/$name.out" \
    "$bin" --metrics-address off "$@" < "$input" > /dev/null 2> "$DIR/callgrind/$name.err"
  grep -o 'Collected : [0-9]*' "$DIR/callgrind/$name.err" | grep -o '[0-9]*'
}

row() { # NAME BIN ARGS...
  local name=$1 bin=$2; shift 2
  local total startup
  total=$(count "$name" "$bin" "$DIR/first-$LINES.ndjson" "$@")
  startup=$(count "$name-startup" "$bin" "$DIR/first-1.ndjson" "$@")
  python3 -c "import sys; t,s,n=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]); print(f'{sys.argv[4]:<22}{t:>16,}{t/n:>12,.0f}{s:>16,}{(t-s)/n:>14,.0f}')" \
    "$total" "$startup" "$LINES" "$name"
}

printf '%-22s%16s%12s%16s%14s\n' rows instructions "per line" startup "per line -st"
if [ -n "${BASELINE_EQLSTREAM:-}" ]; then
  row seed0_noprefilter "$BASELINE_EQLSTREAM" --no-prefilter
  row seed0 "$BASELINE_EQLSTREAM"
fi
row seed_noprefilter "$BIN" --no-prefilter
row seed "$BIN"
row prebuilt16_nopf "$BIN" --rules tests/data/rules --no-prefilter
row d4c66_nopf "$BIN" --rules "$P/cloud_defend" --no-prefilter
row d4c66 "$BIN" --rules "$P/cloud_defend"
row prod1021 "$BIN" --rules "$P/cloud_defend" --rules "$P/other"
