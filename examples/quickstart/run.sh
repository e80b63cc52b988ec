#!/usr/bin/env bash
# Quickstart: build the router and the first-party plugins, then route a
# handful of calls to +14155550100 through examples/quickstart/trunkline.toml
# and print, for each call, the hooks that ran with their decisions, the
# route taken and the outcome.
#
# The calls are routed offline (`trunkline simulate`): real plugins, the
# reference priority/weight/failover algorithm, and targets whose answers
# are given per scenario. The live SIP engine uses the same steps.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

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
