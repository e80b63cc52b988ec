#!/bin/bash
# Calls per second, side by side with the Kamailio peer kit, in one invocation.
# usage: bench/cps.sh RATE CALLS [native|lua]
#
# 1. trunkline (release build, the four first-party plugins on every call)
#    on udp 127.0.0.1:46060, a SIPp UAS (../shared/bench/uas-answer.xml) on
#    46080, SIPp's built-in UAC on 46070 sending CALLS calls of 200 ms at
#    RATE calls/s to +14155550100. Prints one line in the kit's format, and
#    where the plugin instances were made (admin GET /instances, on 46090).
# 2. the Kamailio kit (../shared/bench/kamailio/cps.sh MODE RATE CALLS).
# 3. the ratio of CPU per successful call, trunkline / Kamailio, and whether
#    each had zero failed calls.
# PLUGINS=0 runs trunkline with no plugin (a baseline of the SIP engine alone);
# PREWARM=N sets [plugins] prewarm (instances prepared ahead; 0: none).
# MEDIA=passthrough runs the trunk without media anchoring (the figure before issue #13).
# RECORDS=0 runs without call records ([records] enabled = false; the figure before #14's records);
# TRACE_MESSAGES=N caps each record's SIP trace; THREADS=1 prints each thread's CPU and page faults;
# PEER=0 skips step 2 and 3 (trunkline against itself: bench/ab.sh);
# NUMBERS=N adds N numbers to the trunk through numbers_file (issue #15: the routing table at scale);
# RECORDS_PATH puts the call records store elsewhere (e.g. on /dev/shm);
# KV=embedded adds the call-frequency plugin on every call (3 kv calls: 2 incr, 1 get-many; limits
# too high to refuse), its kv in the router; KV=redis the same with [store] redis_url on a
# redis-server started here (port 46379; its CPU is printed as redis_cpu_s).
# Needs: sip-tester, kamailio (+ kamailio-lua-modules for lua), bc. Stops only
# what it started. Ports 45060-45080 and 46060-46090 must be free.
set -u
rate=${1:?rate} calls=${2:?calls} mode=${3:-native}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kit=$(cd "$root/../shared/bench" && pwd)
cd "$root"
plugins=(e164-guard diversion-guard customer-routing dr-twiml-fallback)
cargo build --quiet --release -p trunkline-router || exit 1
cargo build --quiet --target wasm32-wasip2 --profile plugin --target-dir target/wasm $(printf -- '-p %s ' "${plugins[@]}" call-frequency) || exit 1

dir=$(mktemp -d /tmp/tlcps.XXXXXX)
pids=()
finish() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap finish EXIT
mkdir "$dir/plugins"
for p in "${plugins[@]}"; do cp "target/wasm/wasm32-wasip2/plugin/${p//-/_}.wasm" "$dir/plugins/$p.wasm"; done
chain='[{ name = "e164-guard" }, { name = "diversion-guard", config = { origination_domain = "trunkline.test" } }, { name = "customer-routing" }, { name = "dr-twiml-fallback" }]'
[ "${PLUGINS:-1}" = 0 ] && chain='[]'
store=""
if [ -n "${KV:-}" ]; then
  cp target/wasm/wasm32-wasip2/plugin/call_frequency.wasm "$dir/plugins/call-frequency.wasm"
  big=1000000000
  chain="${chain%]}, { name = \"call-frequency\", config = { directions = [\"origination\"], per_day = $big, per_month = $big, per_rolling_days = $big } }]"
  chain="${chain/\[, /[}"
  if [ "$KV" = redis ]; then
    redis-server --port 46379 --bind 127.0.0.1 --save "" --appendonly no >"$dir/redis.out" 2>&1 &
    redis=$!; pids+=($redis)
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/46379) 2>/dev/null && break; sleep 0.05; done
    store=$'[store]\nredis_url = "redis://127.0.0.1:46379/"'
  fi
fi
numbers_line=""
if [ "${NUMBERS:-0}" -gt 0 ]; then
  # NUMBERS more numbers for the trunk from numbers_file (100 distinct labels); the dialed one stays in the TOML list.
  awk -v n="$NUMBERS" 'BEGIN { print "number,trunk,label"; for (i = 1; i <= n; i++) printf "+1%010d,bench,Line %d\n", 2000000000 + i, i % 100 }' >"$dir/numbers.csv"
  numbers_line='numbers_file = "numbers.csv"'
fi
cat >"$dir/trunkline.toml" <<TOML
$numbers_line
[sip]
listen = ["udp://127.0.0.1:46060"]
domains = ["trunkline.test"]
[plugins]
dir = "plugins"
watch = false
max_live_instances = 4000
prewarm = ${PREWARM:-8}
[admin]
listen = "127.0.0.1:46090"
# SIPp's UAC is one source: the per-source INVITE flood limit (default
# 2000/s) would refuse the excess above it and measure the limit, not the router.
[limits]
invites_per_second = 1000000
invite_burst = 1000000
[records]
enabled = $([ "${RECORDS:-1}" = 0 ] && echo false || echo true)
trace_messages = ${TRACE_MESSAGES:-64}
path = "${RECORDS_PATH:-trunkline.db}"
# Media is anchored on every call (SDP rewritten, two port pairs taken and
# bound): a short rest keeps the range and the open sockets within limits
# at thousands of 200 ms calls per second. MEDIA=passthrough: not anchored.
[media]
port_min = 20000
port_max = 59999
port_rest_ms = 500
$store
[[trunk]]
name = "bench"
numbers = ["+14155550100"]
plugins = $chain
media = "${MEDIA:-relay}"
[[trunk.origination]]
uri = "sip:127.0.0.1:46080"
TOML
s0=$(date +%s.%N)
"$root/target/release/trunkline" run --config "$dir/trunkline.toml" >"$dir/tl.out" 2>"$dir/tl.err" &
tl=$!; pids+=($tl)
for _ in $(seq 600); do grep -q listening "$dir/tl.out" 2>/dev/null && break; sleep 0.05; done
grep -q listening "$dir/tl.out" || { echo "trunkline did not start: $(tail -3 "$dir/tl.err")"; exit 1; }
# Start-up time (to "listening") and resident memory once started: the cost of NUMBERS.
echo "startup numbers=$((${NUMBERS:-0} + 1)) seconds=$(echo "$(date +%s.%N) - $s0" | bc | cut -c1-5) rss_mb=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' /proc/$tl/status)"
sipp -sf "$kit/uas-answer.xml" -i 127.0.0.1 -p 46080 -nostdin -timeout $((calls / rate + 60))s >"$dir/uas.out" 2>&1 &
pids+=($!)
sleep 0.3
cpu() { awk '{print $14+$15}' /proc/${1:-$tl}/stat 2>/dev/null || echo 0; }
c0=$(cpu); t0=$(date +%s.%N)
[ "${KV:-}" = redis ] && r0=$(cpu "$redis")
sipp -sn uac 127.0.0.1:46060 -s +14155550100 -i 127.0.0.1 -p 46070 -r "$rate" -m "$calls" -d 200 -nostdin \
     -timeout $((calls / rate + 30))s -trace_stat -stf "$dir/uac.csv" -fd 1 >"$dir/uac.out" 2>&1
c1=$(cpu); t1=$(date +%s.%N)
[ "${KV:-}" = redis ] && r1=$(cpu "$redis")
if [ -n "${THREADS:-}" ]; then
  # CPU (user and system clock ticks) and minor page faults of each of trunkline's threads, by name.
  for t in /proc/$tl/task/*; do echo "$(cat "$t/comm") $(awk '{print $14, $15, $10}' "$t/stat")"; done |
    awk '{u[$1]+=$2; s[$1]+=$3; f[$1]+=$4} END {for (k in u) printf "thread %s user=%d sys=%d minflt=%d\n", k, u[k], s[k], f[k]}' | sort
fi
hz=$(getconf CLK_TCK)
hdr=$(head -1 "$dir/uac.csv"); last=$(tail -1 "$dir/uac.csv")
col() { echo "$hdr" | tr ';' '\n' | grep -n -x "$1" | cut -d: -f1; }
succ=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
fail=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
retr=$(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")
cpu_s=$(echo "scale=2; ($c1 - $c0) / $hz" | bc)
pct=$(echo "scale=1; 100 * ($c1 - $c0) / $hz / ($t1 - $t0)" | bc)
rtt=$(echo "$last" | cut -d';' -f"$(col ResponseTime1\(C\))" 2>/dev/null)
kv=""
[ -n "${KV:-}" ] && kv=" kv=$KV"
[ "${KV:-}" = redis ] && kv="$kv redis_cpu_s=$(echo "scale=2; ($r1 - $r0) / $hz" | bc)"
echo "peer=trunkline$([ "${PLUGINS:-1}" = 0 ] && echo -noplugins)$([ "${MEDIA:-relay}" = passthrough ] && echo -passthrough)$([ "${RECORDS:-1}" = 0 ] && echo -norecords) rate=$rate calls=$calls successful=$succ failed=$fail retransmissions=$retr cpu_s=$cpu_s cpu_pct=$pct${rtt:+ response_time=$rtt}$kv"
# Where the plugin instances were made (engine thread while idle, background thread, call path).
command -v curl >/dev/null && echo "instances $(curl -s --max-time 5 http://127.0.0.1:46090/instances)"
plugin_failures=$(grep -c "plugin .* ran past\|trapped\|quarantined" "$dir/tl.err" || true)
[ "$plugin_failures" = 0 ] || echo "note: $plugin_failures plugin failure log lines (see deadlines in docs/plugin-runtime.md)"
finish; pids=(); trap - EXIT
[ "${PEER:-1}" = 0 ] && exit 0

kam=$(bash "$kit/kamailio/cps.sh" "$mode" "$rate" "$calls")
echo "$kam"
field() { echo "$2" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
k_succ=$(field successful "$kam"); k_fail=$(field failed "$kam"); k_cpu=$(field cpu_s "$kam")
if [ -n "$k_succ" ] && [ "${k_succ:-0}" -gt 0 ] && [ "${succ:-0}" -gt 0 ] && [ "$(echo "$k_cpu > 0" | bc)" = 1 ]; then
  ratio=$(echo "scale=2; ($cpu_s * $k_succ) / ($k_cpu * $succ)" | bc)
  tl_ms=$(echo "scale=3; 1000 * $cpu_s / $succ" | bc); k_ms=$(echo "scale=3; 1000 * $k_cpu / $k_succ" | bc)
  echo "cpu_per_call trunkline=${tl_ms}ms kamailio-$mode=${k_ms}ms ratio=$ratio zero_failed: trunkline=$([ "$fail" = 0 ] && echo yes || echo no) kamailio=$([ "$k_fail" = 0 ] && echo yes || echo no)"
else
  echo "ratio: not computable (a run had no successful call or no measurable CPU)"
fi
