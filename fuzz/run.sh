#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 120), one after the other, and prints the
# executions and findings of each. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); python3 extracts the seed queries.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Seeds are regenerated on every run into fuzz/seeds/TARGET (read-only input) from tests/data,
# config/rules, tests/golden/parse and /work/shared/data (when present); what the fuzzer learns
# accumulates in fuzz/corpus/TARGET; findings go to fuzz/artifacts/TARGET (crash-*, timeout-*,
# oom-*, leak-*). Reproduce one with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/FILE`,
# then make it a regression test in the main crate. Exit status: 0 when no target found anything.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ=$PWD
REPO=$(cd .. && pwd)
SHARED=${EQLSTREAM_SHARED_DATA:-/work/shared/data}
SECONDS_PER_TARGET=${1:-120}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(eql_front_end rule_toml line_path)

# --- seeds ---------------------------------------------------------------------------------
rm -rf seeds && mkdir -p seeds/eql_front_end seeds/rule_toml seeds/line_path
rule_dirs=("$REPO/config/rules" "$REPO/tests/data/rules" "$REPO/tests/golden/parse")
[ -d "$SHARED/rules" ] && rule_dirs+=("$SHARED/rules")
n=0
while IFS= read -r -d '' f; do
  n=$((n + 1)); cp "$f" "seeds/rule_toml/$n.toml"
done < <(find "${rule_dirs[@]}" -name '*.toml' -print0)
# Realistic events with attack sequences, near misses and hostile lines, when the load
# generator builds (the main crate's debug build).
(cd "$REPO" && cargo run --quiet --bin eqlstream-loadgen -- --events 300 --attack-rate 0.05 \
  --decoy-rate 0.05 --invalid-rate 0.05 --seed 7) >loadgen.ndjson 2>/dev/null || true
python3 - "$REPO" "$SHARED" <<'PY'
import json, os, sys, tomllib, glob
repo, shared = sys.argv[1], sys.argv[2]
out = "seeds/eql_front_end"
queries = []
for p in [f"{repo}/tests/data/rules/eql_production_queries.jsonl", f"{shared}/rules/eql_production_queries.jsonl"]:
    if os.path.exists(p):
        for line in open(p, encoding="utf-8"):
            try:
                queries.append(json.loads(line)["query"])
            except (ValueError, KeyError):
                pass
for p in glob.glob("seeds/rule_toml/*.toml"):
    try:
        q = tomllib.load(open(p, "rb")).get("rule", {}).get("query")
        if isinstance(q, str):
            queries.append(q)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
for i, q in enumerate(dict.fromkeys(queries)):
    open(f"{out}/{i}.eql", "w", encoding="utf-8").write(q)
# Lines: each event alone, and runs of consecutive lines (sequences need several).
lines = []
for p in [f"{repo}/tests/data/cloud_defend/seed_rule_cases.ndjson", f"{shared}/cloud_defend/seed_rule_cases.ndjson",
          "loadgen.ndjson"]:
    if os.path.exists(p):
        lines += open(p, "rb").read().splitlines()
for p in [f"{shared}/cloud_defend/integrations_pkg/alerts_sample_event.json"]:
    if os.path.exists(p):
        lines.append(json.dumps(json.load(open(p)), separators=(",", ":")).encode())
lines = list(dict.fromkeys(lines))
for i, l in enumerate(lines):
    open(f"seeds/line_path/{i}.ndjson", "wb").write(l + b"\n")
for i in range(0, len(lines), 3):
    open(f"seeds/line_path/run{i}.ndjson", "wb").write(b"\n".join(lines[i:i + 3]) + b"\n")
PY
rm -f loadgen.ndjson
for t in "${TARGETS[@]}"; do
  echo "seeds: $t $(ls "seeds/$t" | wc -l) files"
done

# --- runs ----------------------------------------------------------------------------------
declare -A MAXLEN=([eql_front_end]=4096 [rule_toml]=32768 [line_path]=16384)
declare -A DICT=([eql_front_end]=dict/eql.dict [rule_toml]=dict/json.dict [line_path]=dict/json.dict)
cd "$REPO"
cargo +nightly fuzz build >/dev/null
status=0
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$FUZZ/corpus/$t" "$FUZZ/artifacts/$t"
  before=$(ls "$FUZZ/artifacts/$t" | wc -l)
  log="$FUZZ/artifacts/$t.log"
  set +e
  cargo +nightly fuzz run "$t" "$FUZZ/corpus/$t" "$FUZZ/seeds/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len="${MAXLEN[$t]}" \
    -dict="$FUZZ/${DICT[$t]}" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  corpus=$(ls "$FUZZ/corpus/$t" | wc -l)
  after=$(ls "$FUZZ/artifacts/$t" | wc -l)
  findings=$((after - before))
  line="$t: ${execs:-?} executions in ${SECONDS_PER_TARGET}s, coverage ${cov:-?}, corpus $corpus, findings $findings (exit $rc)"
  if [ "$findings" -gt 0 ] || [ "$rc" -ne 0 ]; then
    status=1
    line="$line; see $log and $FUZZ/artifacts/$t/"
  fi
  echo "$line"
  summary+=("$line")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
