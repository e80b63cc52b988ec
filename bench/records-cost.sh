#!/bin/bash
# What call records cost: CPU per call of bench/cps.sh with records on and
# off ([records] enabled), alternated PAIRS times at RATE calls/s (the
# trunkline side only: PEER=0), so that the drift of a shared machine falls
# on both alike. Prints every run, then the means and the cost in percent.
# usage: bench/records-cost.sh RATE CALLS PAIRS
set -u
rate=${1:?rate} calls=${2:?calls} pairs=${3:?pairs}
here=$(cd "$(dirname "$0")" && pwd)
on=() off=() failed=0
ms() { # CPU ms per successful call of one cps.sh line
  local line=$1 cpu succ
  cpu=$(echo "$line" | tr ' ' '\n' | grep '^cpu_s=' | cut -d= -f2)
  succ=$(echo "$line" | tr ' ' '\n' | grep '^successful=' | cut -d= -f2)
  [ -n "$cpu" ] && [ "${succ:-0}" -gt 0 ] && echo "scale=4; 1000 * $cpu / $succ" | bc
}
for i in $(seq "$pairs"); do
  for records in 0 1; do
    line=$(PEER=0 RECORDS=$records bash "$here/cps.sh" "$rate" "$calls" | grep '^peer=trunkline')
    echo "pair $i records=$records $line"
    f=$(echo "$line" | tr ' ' '\n' | grep '^failed=' | cut -d= -f2)
    [ "${f:-1}" = 0 ] || failed=$((failed + 1))
    v=$(ms "$line")
    [ -n "$v" ] || { echo "no figure in: $line" >&2; continue; }
    if [ "$records" = 1 ]; then on+=("$v"); else off+=("$v"); fi
  done
done
mean() { local IFS=+; echo "scale=4; ($*) / $#" | bc; }
m_on=$(mean "${on[@]}") m_off=$(mean "${off[@]}")
echo "records_cost rate=$rate pairs=$pairs off_ms=$m_off on_ms=$m_on cost_pct=$(echo "scale=1; 100 * ($m_on - $m_off) / $m_off" | bc) runs_with_failed_calls=$failed"
