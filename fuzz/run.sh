#!/usr/bin/env bash
# Fuzz the SIP message parser (with the stream framer, the transaction
# layer and what reads a message further), the digest credential parser
# the SDP reader/rewriter (and SDES crypto lines), the SRTP receive
# path, the WAV reader of `<Play>` and the call records' trace scanner,
# redaction, filters and ladder for a bounded time each, from the committed
# seeds plus the RFC 4475 torture messages. Fails on any panic.
#   fuzz/run.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
# cargo fuzz needs nightly flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP (no second toolchain to install).
export RUSTC_BOOTSTRAP=1
torture=../../shared/testdata/rfc4475
for target in sip_message digest sdp srtp wav records; do
  mkdir -p "corpus/$target"
  if [ "$target" = sip_message ] && [ -d "$torture" ]; then
    cp "$torture"/*.dat "corpus/$target/"
  fi
  echo "== fuzz $target for ${secs} s"
  log=$(mktemp)
  status=0
  cargo fuzz run --release --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units)|panicked|SUMMARY' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz $target failed (exit $status); crash inputs, if any, are in fuzz/artifacts/$target" >&2
    exit 1
  fi
  rm -f "$log"
done
