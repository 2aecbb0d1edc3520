#!/usr/bin/env bash
# make demo: a local Binance simulator, a collector into ./data for DURATION seconds,
# then the run summary and a sample query. Needs no internet.
set -euo pipefail
duration=${1:-30}; market=${2:-spot}; symbols=${3:-BTCUSDT,ETHUSDT}; store=${4:-./data}
bin=.venv/bin
mkdir -p "$store" logs
sim_out=$(mktemp)
"$bin/hundi" simulate binance --market "$market" --symbols "$symbols" --port 0 --seed 7 >"$sim_out" 2>logs/simulator.log &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -f "$sim_out"' EXIT
for _ in $(seq 1 100); do grep -q '^rest_url=' "$sim_out" && break; sleep 0.1; done
ws_url=$(sed -n 's/^ws_url=//p' "$sim_out" | head -1)
rest_url=$(sed -n 's/^rest_url=//p' "$sim_out" | head -1)
[ -n "$ws_url" ] || { echo "simulator did not start; see logs/simulator.log" >&2; exit 1; }
echo "simulator: $ws_url  $rest_url"
"$bin/hundi" collect binance --market "$market" --symbols "$symbols" \
  --channels trades,bbo,ticker,book,candles \
  --endpoint "$ws_url" --rest-endpoint "$rest_url" \
  --store "$store" --duration "$duration" --summary-json "$store/demo-summary.json"
first=${symbols%%,*}
base=${first%USDT}
suffix=""; [ "$market" = usdm ] && suffix="-PERP"
echo
echo "Sample query: hundi query --store $store --exchange binance --symbol $base-USDT$suffix --channel trades"
"$bin/hundi" query --store "$store" --exchange binance --symbol "$base-USDT$suffix" --channel trades --limit 10
