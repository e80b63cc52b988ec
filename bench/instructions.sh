#!/bin/bash
# Instructions per call of the SIP engine, counted by valgrind's callgrind:
# repeatable where CPU seconds on a shared machine are not, so two builds
# compare exactly (run it in each tree). Not a throughput figure.
# usage: bench/instructions.sh [FEW MANY]   (default 100 600 calls)
#
# trunkline (release build) runs under callgrind with bench/cps.sh's trunk
# but no plugin chain (the plugin pool reserves more address space than
# valgrind can map; hook costs are measured by the criterion benchmarks) on
# udp 127.0.0.1:46160; a SIPp UAS (../shared/bench/uas-answer.xml) on 46180
# and SIPp's built-in UAC on 46170 place FEW calls, then (a second run) MANY
# calls, at 20 calls/s. Prints the instructions of each run and
# (MANY_total - FEW_total) / (MANY - FEW): the cost of one call without
# start-up. Media is anchored (SDP rewritten, ports taken); MEDIA=passthrough
# leaves it alone (the figure before issue #13); RECORDS=0 keeps no call
# records (the figure before #14's records; with them the count includes
# the writer thread's work). Needs valgrind and
# sip-tester. Stops only what it started.
set -u
few=${1:-100} many=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kit=$(cd "$root/../shared/bench" && pwd)
cd "$root"
cargo build --quiet --release -p trunkline-router || exit 1

dir=$(mktemp -d /tmp/tlinstr.XXXXXX)
pids=()
finish() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap finish EXIT
mkdir "$dir/plugins"
cat >"$dir/trunkline.toml" <<TOML
[sip]
listen = ["udp://127.0.0.1:46160"]
domains = ["trunkline.test"]
[plugins]
dir = "plugins"
watch = false
max_live_instances = 1
prewarm = 0
[media]
port_min = 20000
port_max = 59999
threads = 1
[records]
enabled = $([ "${RECORDS:-1}" = 0 ] && echo false || echo true)
[[trunk]]
name = "bench"
numbers = ["+14155550100"]
media = "${MEDIA:-relay}"
[[trunk.origination]]
uri = "sip:127.0.0.1:46180"
TOML

# Instructions of one run of trunkline serving `calls` calls.
run() {
  local calls=$1 out="$dir/cg.$1"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$root/target/release/trunkline" run --config "$dir/trunkline.toml" \
    >"$dir/tl.out" 2>"$dir/tl.err" &
  local tl=$!; pids+=($tl)
  for _ in $(seq 600); do grep -q listening "$dir/tl.out" 2>/dev/null && break; sleep 0.1; done
  grep -q listening "$dir/tl.out" || { echo "trunkline did not start under valgrind: $(tail -3 "$dir/tl.err")" >&2; exit 1; }
  sipp -sf "$kit/uas-answer.xml" -i 127.0.0.1 -p 46180 -m "$calls" -nostdin -timeout 300s >/dev/null 2>&1 &
  local uas=$!; pids+=($uas)
  sleep 0.5
  sipp -sn uac 127.0.0.1:46160 -s +14155550100 -i 127.0.0.1 -p 46170 -r 20 -m "$calls" -d 200 -nostdin -timeout 300s \
    -trace_stat -stf "$dir/uac.csv" -fd 1 >/dev/null 2>&1
  local ok=$?
  wait "$uas" 2>/dev/null
  kill -INT "$tl"; wait "$tl" 2>/dev/null
  [ "$ok" = 0 ] || echo "note: SIPp reported failed calls in the run of $calls" >&2
  [ -n "${KEEP_CALLGRIND:-}" ] && cp "$out" "$KEEP_CALLGRIND.$1"
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
i_few=$(run "$few")
i_many=$(run "$many")
per_call=$(( (i_many - i_few) / (many - few) ))
echo "instructions calls=$few total=$i_few"
echo "instructions calls=$many total=$i_many"
echo "instructions_per_call=$per_call"
