#!/bin/bash
# RTP packets per second relayed, side by side with the rtpengine peer kit, in one invocation.
# usage: bench/rtp.sh PPS SECONDS [STREAMS]
#
# 1. trunkline's relay (release build of host/relay's `pps` example: the relay alone, STREAMS
#    one-way streams set up directly, RELAY_THREADS worker threads, default 1) on ports 43300-,
#    loaded by the kit's own load generator (../shared/bench/rtpengine/load.c: 172-byte RTP,
#    PPS packets/s in total spread over the streams, counted where they arrive).
#    Then SRTP->RTP: the same relay with every caller speaking SRTP (AES_CM_128_HMAC_SHA1_80, the
#    `pps` example's RELAY_SRTP=1), loaded by host/relay's `srtp_load` example (the kit's load,
#    each packet encrypted), the callees plain RTP: the relay decrypts and authenticates each
#    packet. Its CPU per packet is printed beside RTP->RTP's under the same load generator
#    (`srtp_load ... plain`; its pacing differs from load.c's, which moves the relay's figure).
#    (The kit's rtpengine is set up for plain RTP only, so these rows have no rtpengine figure.)
# 2. the kit: rtpengine (userspace, one thread) with the same PPS, SECONDS and STREAMS.
# 3. packets/s per core of each (received / seconds / cores used) and the ratio.
# 4. added one-way latency, p50, p99 and p99.9, at LAT_PPS packets/s (default 20000, below both
#    saturations) for SECONDS: host/relay's `latency` example (evenly paced packets from a
#    sleeping sender, each stamped just before sendto; arrival times from the kernel's receive
#    timestamps) through each relay, minus the same generator sending straight to the receiver.
#    The CPU time the hypervisor took from this VM during each run (steal, /proc/stat) is printed
#    beside it: a relay thread that is not running cannot forward. The rtpengine of this step is
#    started as the kit starts it (its flags and ng.py). trunkline runs twice: in user space, and
#    with kernel forwarding (RELAY_KERNEL=1 of the `pps` example).
# 5. CPU per relayed packet over the whole machine, at SYS_PPS packets/s (default 50000, which
#    rtpengine carries here without loss under this paced load; at 100000 it lost 34-66 % in two
#    of four runs, and a run with losses gets no per-packet figure): the same
#    streams driven by bench/rtp_pace.c (it sleeps between 1 ms ticks and its receiver blocks, so
#    the machine's busy time is the work done; busy = all CPUs' time minus their idle time, which
#    the kernel measures exactly), straight to the receivers, then through trunkline's relay in user
#    space, trunkline with kernel forwarding (`[media] kernel_forwarding`: a tc classifier, whose
#    work runs in the sender's and the kernel's context, where no per-process figure sees it), and
#    rtpengine. Each relay's cost is its busy time minus the direct run's; printed as us per
#    packet, packets/s per core of relay work, and the ratios to rtpengine. Kernel forwarding needs
#    root (CAP_BPF, CAP_NET_ADMIN) and clang at build time; without them that row says so.
# 6. with SWEEP="R1 R2 ..." (packets/s): both relays at each rate, delivered packets/s and CPU,
#    and each one's best packets/s per core without loss: the throughput comparison at
#    saturation, where per-core figures at a light load mostly count wake-ups.
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
cargo build --quiet --release -p trunkline-relay --example latency --example srtp_load || exit 1
latency="$root/target/release/examples/latency"
dir=$(mktemp -d /tmp/tlrtp.XXXXXX)
relay=
rtpe=
finish() { [ -n "$relay" ] && kill "$relay" 2>/dev/null; [ -n "$rtpe" ] && kill "$rtpe" 2>/dev/null; exec 3>&- 2>/dev/null; rm -rf "$dir"; }
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
mkfifo "$dir/in.plain"
"${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in.plain" >"$dir/calls.plain" 2>/dev/null &
relay=$!
exec 3>"$dir/in.plain"
for _ in $(seq 50); do [ "$(wc -l <"$dir/calls.plain")" -ge "$streams" ] && break; sleep 0.1; done
c0=$(cpu)
plain_out=$("$root/target/release/examples/srtp_load" "$pps" "$secs" plain <"$dir/calls.plain")
c1=$(cpu)
plain_pct=$(echo "scale=1; 100 * ($c1 - $c0) / $(getconf CLK_TCK) / $secs" | bc)
exec 3>&-
wait "$relay" 2>/dev/null; relay=
echo "peer=trunkline rtp->rtp (srtp_load plain) $plain_out cpu_pct=$plain_pct"
mkfifo "$dir/in.srtp"
RELAY_SRTP=1 "${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in.srtp" >"$dir/calls.srtp" 2>"$dir/relay.srtp.err" &
relay=$!
exec 3>"$dir/in.srtp"
for _ in $(seq 50); do [ "$(wc -l <"$dir/calls.srtp")" -ge "$streams" ] && break; sleep 0.1; done
c0=$(cpu)
srtp_out=$("$root/target/release/examples/srtp_load" "$pps" "$secs" <"$dir/calls.srtp")
c1=$(cpu)
srtp_pct=$(echo "scale=1; 100 * ($c1 - $c0) / $(getconf CLK_TCK) / $secs" | bc)
exec 3>&-
wait "$relay" 2>/dev/null; relay=
us() { echo "scale=2; $1 * 10000 / $pps" | bc; } # CPU % at $pps -> us per packet
echo "peer=trunkline srtp->rtp $srtp_out cpu_pct=$srtp_pct"
echo "  relay counters: $(cat "$dir/relay.srtp.err")"
echo "cpu_us_per_packet trunkline rtp->rtp=$(us "$tl_pct") (load.c) rtp->rtp=$(us "$plain_pct") srtp->rtp=$(us "$srtp_pct") (srtp_load)"
if [ "${PEER:-1}" = 0 ]; then exit 0; fi
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

# 4. Added latency at LAT_PPS.
lat_pps=${LAT_PPS:-20000}
field_of() { echo "$2" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
mkfifo "$dir/in2"
"${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in2" >"$dir/calls2.txt" 2>/dev/null &
relay=$!
exec 3>"$dir/in2"
for _ in $(seq 50); do [ "$(wc -l <"$dir/calls2.txt")" -ge "$streams" ] && break; sleep 0.1; done
steal() { awk '/^cpu /{print $9}' /proc/stat; }
stolen() { # ticks since $1 -> percent of both CPUs' time over $2 seconds
  echo "scale=1; 100 * ($(steal) - $1) / $(getconf CLK_TCK) / $2 / $(nproc)" | bc
}
floor=$("$latency" "$lat_pps" "$secs" direct <"$dir/calls2.txt")
s0=$(steal)
ours=$("$latency" "$lat_pps" "$secs" <"$dir/calls2.txt")
ours_steal=$(stolen "$s0" "$secs")
exec 3>&-; wait "$relay" 2>/dev/null; relay=
mkfifo "$dir/in2k"
RELAY_KERNEL=1 "${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in2k" >"$dir/calls2k.txt" 2>/dev/null &
relay=$!
exec 3>"$dir/in2k"
for _ in $(seq 50); do [ "$(wc -l <"$dir/calls2k.txt")" -ge "$streams" ] && break; sleep 0.1; done
s0=$(steal)
kern=$("$latency" "$lat_pps" "$secs" <"$dir/calls2k.txt")
kern_steal=$(stolen "$s0" "$secs")
exec 3>&-; wait "$relay" 2>/dev/null; relay=
rtpengine --foreground --log-stderr --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:42223 \
  --port-min=42300 --port-max=42999 --log-level=4 --num-threads=1 --no-fallback >"$dir/rtp.log" 2>&1 &
rtpe=$!
for _ in $(seq 30); do ss -lun | grep -q 127.0.0.1:42223 && break; sleep 0.1; done
python3 "$kit/ng.py" "$streams" 51000 >"$dir/calls3.txt" || { echo "ng setup failed"; exit 1; }
s0=$(steal)
theirs=$("$latency" "$lat_pps" "$secs" <"$dir/calls3.txt")
theirs_steal=$(stolen "$s0" "$secs")
kill "$rtpe" 2>/dev/null; rtpe=
added() { echo $(( $(field_of "$1" "$2") - $(field_of "$1" "$floor") )); }
echo "latency pps=$lat_pps floor(direct): $floor"
echo "latency trunkline: $ours steal_pct=$ours_steal"
echo "latency trunkline (kernel forwarding): $kern steal_pct=$kern_steal"
echo "latency rtpengine: $theirs steal_pct=$theirs_steal"
echo "added_latency_us trunkline p50=$(added p50_us "$ours") p99=$(added p99_us "$ours") p999=$(added p999_us "$ours")" \
  "trunkline_kernel p50=$(added p50_us "$kern") p99=$(added p99_us "$kern") p999=$(added p999_us "$kern")" \
  "rtpengine p50=$(added p50_us "$theirs") p99=$(added p99_us "$theirs") p999=$(added p999_us "$theirs")"

# 5. Whole-machine CPU per relayed packet.
sys_pps=${SYS_PPS:-50000}
gcc -O2 -pthread -o "$dir/pace" "$here/rtp_pace.c" || exit 1
idle() { awk '/^cpu /{print $5+$6}' /proc/stat; }
paced() { # calls file -> "busy=PCT (of one core) <generator's line>"
  local i0 t0 i1 t1 o
  i0=$(idle); t0=$(date +%s%N)
  o=$("$dir/pace" "$sys_pps" "$secs" <"$1")
  i1=$(idle); t1=$(date +%s%N)
  echo "busy=$(echo "scale=1; $(nproc) * 100 - ($i1 - $i0) * 100 * 1000000000 / ($(getconf CLK_TCK) * ($t1 - $t0))" | bc) $o"
}
relay_up() { # name, env assignment -> starts the relay on fifo $dir/in.NAME, calls in $dir/calls.NAME
  mkfifo "$dir/in.$1"
  env $2 "${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 \
    <"$dir/in.$1" >"$dir/calls.$1" 2>"$dir/err.$1" &
  relay=$!
  exec 3>"$dir/in.$1"
  for _ in $(seq 50); do [ "$(wc -l <"$dir/calls.$1")" -ge "$streams" ] && break; sleep 0.1; done
}
relay_down() { exec 3>&-; wait "$relay" 2>/dev/null; relay=; }
relay_up user RELAY_KERNEL=0
m_user=$(paced "$dir/calls.user")
relay_down
awk '{print $1, $3, $3}' "$dir/calls.user" >"$dir/calls.direct"
m_direct=$(paced "$dir/calls.direct")
relay_up kernel RELAY_KERNEL=1
m_kernel=$(paced "$dir/calls.kernel")
relay_down
kernel_note=$(grep -o 'kernel forwarding is off.*' "$dir/err.kernel" | head -1)
rtpengine --foreground --log-stderr --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:42223 \
  --port-min=42300 --port-max=42999 --log-level=4 --num-threads=1 --no-fallback >"$dir/rtp.log" 2>&1 &
rtpe=$!
for _ in $(seq 30); do ss -lun | grep -q 127.0.0.1:42223 && break; sleep 0.1; done
python3 "$kit/ng.py" "$streams" 51000 >"$dir/calls.rtpe" || { echo "ng setup failed"; exit 1; }
m_rtpe=$(paced "$dir/calls.rtpe")
kill "$rtpe" 2>/dev/null; wait "$rtpe" 2>/dev/null; rtpe=
cost() { # run's line -> "us_per_packet=U pps_per_core=P" of the relay's work (busy minus direct)
  local b d; b=$(field_of busy "$1"); d=$(field_of busy "$m_direct")
  if [ "$(echo "$(field_of loss_pct "$1") >= 0.1" | bc)" = 1 ]; then
    echo "relay_busy=n/a us_per_packet=n/a pps_per_core=n/a (packets lost: no per-packet figure)"
  elif [ "$(echo "$b - $d > 0.5" | bc)" = 1 ]; then
    echo "relay_busy=$(echo "scale=1; $b - $d" | bc) us_per_packet=$(echo "scale=2; ($b - $d) * 10000 / $sys_pps" | bc) pps_per_core=$(echo "scale=0; $sys_pps * 100 / ($b - $d)" | bc)"
  else
    echo "relay_busy=$(echo "scale=1; $b - $d" | bc) us_per_packet=0 pps_per_core=n/a"
  fi
}
echo "machine pps=$sys_pps (busy: % of one core over all $(nproc) CPUs)"
echo "  direct:             $m_direct"
echo "  trunkline (user):   $m_user -> $(cost "$m_user")"
echo "  trunkline (kernel): $m_kernel -> $(cost "$m_kernel")${kernel_note:+ [$kernel_note]}"
echo "  rtpengine:          $m_rtpe -> $(cost "$m_rtpe")"
ppc() { field_of pps_per_core "$(cost "$1")"; }
ratio() { case "$1$2" in *n/a*) echo n/a ;; *) echo "scale=2; $1 / $2" | bc ;; esac; }
echo "machine_pps_per_core trunkline_user=$(ppc "$m_user") trunkline_kernel=$(ppc "$m_kernel") rtpengine=$(ppc "$m_rtpe")" \
  "ratio_user=$(ratio "$(ppc "$m_user")" "$(ppc "$m_rtpe")") ratio_kernel=$(ratio "$(ppc "$m_kernel")" "$(ppc "$m_rtpe")")"

# 6. The sweep.
[ -n "${SWEEP:-}" ] || exit 0
echo "sweep (packets/s offered: delivered/s and CPU % of each)"
best_tl=0 best_re=0
for rate in $SWEEP; do
  mkfifo "$dir/in.$rate"
  "${RELAY_BIN:-$root/target/release/examples/pps}" "$streams" "$threads" 43300 51000 51200 <"$dir/in.$rate" >"$dir/calls.$rate" 2>/dev/null &
  relay=$!
  exec 3>"$dir/in.$rate"
  for _ in $(seq 50); do [ "$(wc -l <"$dir/calls.$rate")" -ge "$streams" ] && break; sleep 0.1; done
  c0=$(cpu)
  o=$("$dir/load" "$rate" "$secs" <"$dir/calls.$rate")
  c1=$(cpu)
  exec 3>&-; wait "$relay" 2>/dev/null; relay=
  t_pct=$(echo "scale=1; 100 * ($c1 - $c0) / $(getconf CLK_TCK) / $secs" | bc)
  r=$(bash "$kit/pps.sh" "$rate" "$secs" "$streams")
  t_rx=$(( $(field received "$o") / secs )) r_rx=$(( $(field received "$r") / secs ))
  echo "  offered=$rate trunkline=$t_rx/s cpu=$t_pct% loss=$(field loss_pct "$o")%" \
    "rtpengine=$r_rx/s cpu=$(field cpu_pct "$r")% loss=$(field loss_pct "$r")%"
  lossless() { [ "$(echo "$1 < 0.1" | bc)" = 1 ]; }
  if lossless "$(field loss_pct "$o")"; then
    v=$(per_core "$(field received "$o")" "$t_pct"); [ "$v" -gt "$best_tl" ] && best_tl=$v
  fi
  if lossless "$(field loss_pct "$r")"; then
    v=$(per_core "$(field received "$r")" "$(field cpu_pct "$r")"); [ "$v" -gt "$best_re" ] && best_re=$v
  fi
done
echo "best_lossless_pps_per_core trunkline=$best_tl rtpengine=$best_re ratio=$([ "$best_re" -gt 0 ] && echo "scale=2; $best_tl / $best_re" | bc || echo n/a)"
