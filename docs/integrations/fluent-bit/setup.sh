# The common start of the Fluent Bit check scripts, sourced from the repository root with EVENTS
# set: a release build (EQ is its eqlstream), EVENTS loadgen events (seed 7, attack rate 0.003)
# in $DIR/events.ndjson, and what eqlstream makes of them from stdin in $DIR/stdin.ndjson. On exit
# the background jobs are stopped and $DIR removed.
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
cargo build --release --locked --bins >&2
EQ=target/release/eqlstream
target/release/eqlstream-loadgen --events "$EVENTS" --attack-rate 0.003 --seed 7 > "$DIR/events.ndjson" 2>/dev/null
"$EQ" --metrics-address off < "$DIR/events.ndjson" > "$DIR/stdin.ndjson" 2>/dev/null
