#!/bin/bash
# Memory per call in progress: trunkline (release, no plugin) holding CALLS calls of 60 s, with media
# anchored (default) or MEDIA=passthrough. Prints the router's RSS before and with the calls up, and
# the difference per call.
# usage: bench/call_memory.sh [CALLS]     Needs: sip-tester. Ports 47060-47080 and 20000-59999 free.
set -u
calls=${1:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$(cd "$root/../shared/bench" && pwd)
cd "$root"
cargo build --quiet --release -p trunkline-router || exit 1
dir=$(mktemp -d /tmp/tlmem.XXXXXX)
pids=()
finish() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.5; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap finish EXIT
mkdir "$dir/plugins"
cat >"$dir/trunkline.toml" <<TOML
[sip]
listen = ["udp://127.0.0.1:47060"]
[plugins]
dir = "plugins"
watch = false
[media]
port_min = 20000
port_max = 59999
[[trunk]]
name = "mem"
numbers = ["+14155550100"]
media = "${MEDIA:-relay}"
[[trunk.origination]]
uri = "sip:127.0.0.1:47080"
TOML
"$root/target/release/trunkline" run --config "$dir/trunkline.toml" >"$dir/tl.out" 2>"$dir/tl.err" &
tl=$!; pids+=($tl)
for _ in $(seq 100); do grep -q listening "$dir/tl.out" 2>/dev/null && break; sleep 0.1; done
sipp -sf "$kit/uas-answer.xml" -i 127.0.0.1 -p 47080 -nostdin -timeout 120s >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' /proc/$tl/status; }
r0=$(rss)
sipp -sn uac 127.0.0.1:47060 -s +14155550100 -i 127.0.0.1 -p 47070 -r 500 -m "$calls" -d 60000 -nostdin \
  -timeout 120s >/dev/null 2>&1 &
pids+=($!)
sleep $((calls / 500 + 5))
r1=$(rss)
echo "media=${MEDIA:-relay} calls=$calls rss_before_kib=$r0 rss_with_calls_kib=$r1 per_call_kib=$(echo "scale=1; ($r1 - $r0) / $calls" | bc)"
