#!/bin/bash
# RTP packets per second relayed, side by side with the rtpengine peer kit, in one invocation.
# usage: bench/rtp.sh PPS SECONDS [STREAMS]
#
# 1. trunkline's relay (release build of host/relay's `pps` example: the relay alone, STREAMS
#    one-way streams set up directly, RELAY_THREADS worker threads, default 1) on ports 43300-,
#    loaded by the kit's own load generator (../shared/bench/rtpengine/load.c: 172-byte RTP,
#    PPS packets/s in total spread over the streams, counted where they arrive).
# 2. the kit: rtpengine (userspace, one thread) with the same PPS, SECONDS and STREAMS.
# 3. packets/s per core of each (received / seconds / cores used) and the ratio.
# RELAY_BIN=PATH runs another build of the `pps` example (A/B of a relay change); PEER=0 skips rtpengine.
# Needs: rtpengine, gcc, bc. Stops only what it started. Ports 42223, 42300-42999, 43300-44999
# and 51000-51400 must be free.
set -u
pps=${1:?pps} secs=${2:?seconds} streams=${3:-100}
threads=${RELAY_THREADS:-1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kit=$(cd "$root/../shared/bench/rtpengine" && pwd)
cd "$root"
[ -n "${RELAY_BIN:-}" ] || cargo build --quiet --release -p trunkline-relay --example pps || exit 1
dir=$(mktemp -d /tmp/tlrtp.XXXXXX)
relay=
finish() { [ -n "$relay" ] && kill "$relay" 2>/dev/null; exec 3>&- 2>/dev/null; rm -rf "$dir"; }
trap finish EXIT
gcc -O2 -o "$dir/load" "$kit/load.c" || exit 1
mkfifo "$dir/in"
"${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in" >"$dir/calls.txt" 2>"$dir/relay.err" &
relay=$!
exec 3>"$dir/in"
for _ in $(seq 50); do [ "$(wc -l <"$dir/calls.txt")" -ge "$streams" ] && break; sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$relay/stat; }
c0=$(cpu)
out=$("$dir/load" "$pps" "$secs" <"$dir/calls.txt")
c1=$(cpu)
tl_pct=$(echo "scale=1; 100 * ($c1 - $c0) / $(getconf CLK_TCK) / $secs" | bc)
echo "peer=trunkline threads=$threads $out cpu_pct=$tl_pct"
exec 3>&-
wait "$relay" 2>/dev/null; relay=
echo "  relay counters: $(cat "$dir/relay.err")"
[ "${PEER:-1}" = 0 ] && exit 0
rp=$(bash "$kit/pps.sh" "$pps" "$secs" "$streams")
echo "$rp"
field() { echo "$2" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
per_core() { # received, cpu_pct -> packets/s per core
  [ "$(echo "${2:-0} > 0" | bc)" = 1 ] && echo "scale=0; $1 / $secs * 100 / $2" | bc || echo 0
}
tl=$(per_core "$(field received "$out")" "$tl_pct")
re=$(per_core "$(field received "$rp")" "$(field cpu_pct "$rp")")
ratio=$([ "$re" -gt 0 ] && echo "scale=2; $tl / $re" | bc || echo "n/a")
echo "pps_per_core trunkline=$tl rtpengine=$re ratio=$ratio loss_pct trunkline=$(field loss_pct "$out") rtpengine=$(field loss_pct "$rp")"
