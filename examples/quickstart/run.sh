#!/usr/bin/env bash
# Quickstart: build the router and the first-party plugins, then
#  1. live: start `trunkline run` (live.toml) with a SIPp PBX, place real SIP
#     calls from a SIPp carrier (answered after failover with audio both ways
#     through the router's media relay, rejected by a plugin), and print each
#     call's hooks, route, media and outcome; then list the call records
#     (`trunkline calls`), draw the answered call's SIP ladder, and say
#     where the console, the API and the metrics are;
#  2. offline: route more scenarios through trunkline.toml with
#     `trunkline simulate` (same plugins and routing algorithm, simulated
#     targets), covering what the live engine does not do yet (TwiML).
# Stops everything it started. Needs sipp (Debian: sip-tester) for part 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

if ! command -v sipp >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing SIPp (Debian package sip-tester) for the live calls"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "== installing the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi
echo "== building the first-party plugins (wasm32-wasip2) and the router"
plugins=(e164-guard diversion-guard customer-routing dr-twiml-fallback)
cargo build --quiet --target wasm32-wasip2 --profile plugin --target-dir target/wasm $(printf -- '-p %s ' "${plugins[@]}")
cargo build --quiet -p trunkline-router
mkdir -p "$here/plugins"
for p in "${plugins[@]}"; do
  cp "target/wasm/wasm32-wasip2/plugin/${p//-/_}.wasm" "$here/plugins/$p.wasm"
done
trunkline="$root/target/debug/trunkline"
cfg="$here/trunkline.toml"

live() {
  if ! command -v sipp >/dev/null 2>&1; then
    echo "== (live calls skipped: sipp is not installed; install the Debian package sip-tester)"
    return
  fi
  echo
  echo "== LIVE: trunkline run + SIPp PBX on 127.0.0.1:5080 + SIPp carrier"
  local out=$here/live.out pids=()
  (cd "$here" && exec "$trunkline" run --config live.toml --print-calls >"$out" 2>"$here/live.err") &
  pids+=($!)
  # The PBX echoes the RTP it gets (from its media port 6100).
  sipp -sn uas -i 127.0.0.1 -p 5080 -mp 6100 -rtp_echo -m 1 -nostdin -timeout 30s >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  echo "-- 1 call to +14155550100 (priority-5 target silent: failover to the PBX) with 9 s of audio:"
  echo "   the carrier plays G.711 and DTMF (SIPp uac_pcap, media port 6000), the PBX echoes it back;"
  echo "   each side sees only the router's media address, which relays every packet"
  local media; media=$(mktemp -d)
  ln -s /usr/share/sip-tester "$media/pcap" # the pcap files SIPp's uac_pcap scenario plays
  (cd "$media" && sipp -sn uac_pcap 127.0.0.1:5060 -s +14155550100 -i 127.0.0.1 -p 5070 -mp 6000 -m 1 \
    -nostdin -timeout 30s >/dev/null 2>&1) \
    && echo "   SIPp carrier: call succeeded" || echo "   SIPp carrier: call failed"
  rm -rf "$media"
  echo "-- 1 call to +14155550199 (trunk 'strict': e164-guard rejects caller 'sipp')"
  sipp -sn uac 127.0.0.1:5060 -s +14155550199 -i 127.0.0.1 -p 5071 -m 1 -nostdin -timeout 10s >/dev/null 2>&1 \
    || echo "   SIPp carrier: call rejected, as expected"
  sleep 0.5
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  cat "$out"
  echo
  echo "== call records (the router's store, $here/trunkline.db): trunkline calls --config live.toml"
  (cd "$here" && "$trunkline" calls --config live.toml --limit 5)
  local first; first=$(cd "$here" && "$trunkline" calls --config live.toml --outcome answered --format csv --limit 1 | sed -n 2p | cut -d, -f1)
  if [ -n "$first" ]; then
    echo
    echo "== the answered call as a SIP ladder: trunkline calls --config live.toml show $first"
    (cd "$here" && "$trunkline" calls --config live.toml show "$first")
  fi
  echo
  echo "== where to look next: run the router again and open its console in a browser"
  echo "   (cd examples/quickstart && ../../target/debug/trunkline run --config live.toml)"
  echo "   console: http://127.0.0.1:5090/   API: http://127.0.0.1:5090/openapi.json   metrics: http://127.0.0.1:5090/metrics"
  echo "   records: (cd examples/quickstart && ../../target/debug/trunkline calls --config live.toml --since 1h)"
}
live

echo
echo "== OFFLINE: trunkline simulate"
"$trunkline" check --config "$cfg"
scenario() {
  local title=$1; shift
  echo
  echo "== $title"
  "$trunkline" simulate --config "$cfg" --seed 7 "$@"
}
scenario "1. answered by the primary PBX" --request "$here/calls/invite.sip"
scenario "2. primary answers 503: failover to the priority-20 backup (X-Route copied from its URI)" \
  --request "$here/calls/invite.sip" --answer 5080=503
scenario "3. rejected by a plugin: e164-guard refuses an anonymous caller" --request "$here/calls/invite-anonymous.sip"
scenario "4. customer-routing sends a VIP caller to its own group" --request "$here/calls/invite-vip.sip"
scenario "5. 486 Busy Here from the PBX is final: no failover" --request "$here/calls/invite.sip" --answer 5080=486
scenario "6. every target fails: dr-twiml-fallback names the disaster-recovery URL" \
  --request "$here/calls/invite.sip" --answer 5080=503 --answer 5081=408
scenario "7. a number no trunk owns" --request "$here/calls/invite-unknown-number.sip"
echo
echo "== audit log ($here/audit.jsonl), last entries"
tail -n 4 "$here/audit.jsonl"
