#!/bin/bash
# Two settings of bench/cps.sh compared in one run: CPU per call with
# environment A and with environment B, alternated PAIRS times at RATE
# calls/s (the trunkline side only: PEER=0), so that the drift of a shared
# machine falls on both alike. Prints every run, then each pair's
# difference, the means and B's cost over A in percent, and the median of
# the pairs' differences.
# usage: bench/ab.sh RATE CALLS PAIRS 'A-ASSIGNMENTS' 'B-ASSIGNMENTS'
#   bench/ab.sh 2000 20000 10 'RECORDS=0' 'RECORDS=1'       what call records cost (#14)
#   bench/ab.sh 2000 20000 5 'NUMBERS=0' 'NUMBERS=1000000'  a million numbers (#15)
set -u
rate=${1:?rate} calls=${2:?calls} pairs=${3:?pairs} a=${4:?A} b=${5:?B}
here=$(cd "$(dirname "$0")" && pwd)
declare -A sum=([A]=0 [B]=0) n=([A]=0 [B]=0) per_call=([A]= [B]=)
pair_pct=()
failed=0
field() { echo "$2" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
for i in $(seq "$pairs"); do
  for side in A B; do
    if [ "$side" = A ]; then assign=$a; else assign=$b; fi
    line=$(env PEER=0 $assign bash "$here/cps.sh" "$rate" "$calls" | grep -E '^(peer=trunkline|startup)' | tr '\n' ' ')
    echo "pair $i $side ($assign) $line"
    cpu=$(field cpu_s "$line") succ=$(field successful "$line") f=$(field failed "$line")
    [ "${f:-1}" = 0 ] || failed=$((failed + 1))
    if [ -n "$cpu" ] && [ "${succ:-0}" -gt 0 ]; then
      per_call[$side]=$(echo "1000 * $cpu / $succ" | bc -l)
      sum[$side]=$(echo "${sum[$side]} + ${per_call[$side]}" | bc -l); n[$side]=$((n[$side] + 1))
    else
      per_call[$side]=
      echo "no figure in that run" >&2
    fi
  done
  if [ -n "${per_call[A]}" ] && [ -n "${per_call[B]}" ]; then
    pair_pct+=("$(echo "scale=2; 100 * (${per_call[B]} - ${per_call[A]}) / ${per_call[A]}" | bc -l)")
  fi
done
[ "${n[A]}" -gt 0 ] && [ "${n[B]}" -gt 0 ] || { echo "ab: no figures"; exit 1; }
m_a=$(echo "scale=4; ${sum[A]} / ${n[A]}" | bc -l) m_b=$(echo "scale=4; ${sum[B]} / ${n[B]}" | bc -l)
# The median of the pairs' own differences: a pair hit by the machine's
# slow spells on one side only moves it less than it moves the means.
median=$(printf '%s\n' "${pair_pct[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "pairs_b_over_a_pct=$(echo "${pair_pct[*]}" | tr ' ' ',')"
echo "ab rate=$rate pairs=$pairs A=($a) ms_per_call=$m_a B=($b) ms_per_call=$m_b b_over_a_pct=$(echo "scale=1; 100 * ($m_b - $m_a) / $m_a" | bc -l) median_pair_pct=$median runs_with_failed_calls=$failed"
