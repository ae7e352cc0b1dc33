#!/usr/bin/env bash
# The P1–P5 table of BENCHMARKS.md: simulator (echo), voxgate and load generator each in their own
# process, loopback only; every run stops by itself. Each figure is run RUNS times (default 3) and
# the per-run JSON lines go to stdout; the median is taken by the caller (see BENCHMARKS.md).
# Usage: benches/ptable.sh [P1|P3|P3L|P4|all] [RUNS]   (needs: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-all}
RUNS=${2:-3}
BIN=target/release/voxgate
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

. benches/common.sh

start_pair() { # fresh simulator (echo) + voxgate for every run
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true
  RUST_LOG=warn $BIN simulate --listen 127.0.0.1:0 --echo > "$TMP/sim.out" 2>/dev/null &
  SIM=$(wait_addr "$TMP/sim.out" "simulator listening on")
  RUST_LOG=warn VOXGATE_UPSTREAM__KIND=openai VOXGATE_UPSTREAM__BASE_URL="http://$SIM/v1" OPENAI_API_KEY=sk-bench \
    VOXGATE_WEBRTC__SILENCE_TIMEOUT_SECS=120 $BIN serve --listen 127.0.0.1:0 > "$TMP/gw.out" 2>/dev/null &
  GW=$(wait_addr "$TMP/gw.out" "voxgate listening on")
}

pick() { # results.json → one summary line
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
a = r.get("added_latency_ms") or {}
print(json.dumps({"figure": sys.argv[1], "sessions": r["sessions"], "setup_p50_ms": r["setup_ms"]["p50"],
  "rtt_p99": r["rtt_ms"]["p99"], "direct_rtt_p99": (r.get("direct_rtt_ms") or {}).get("p99"),
  "added_rtt_p50": a.get("round_trip_p50"), "added_rtt_p99": a.get("round_trip_p99"),
  "added_per_direction_p99": a.get("per_direction_p99"), "frames": r["frames"],
  "cpu_pct": r["resources"]["steady_cpu_pct"], "cpu_pct_per_session": r["resources"]["steady_cpu_pct_per_session"],
  "rss_max_kb": r["resources"]["rss_max_kb"], "rss_per_session_kb": r["resources"]["rss_per_session_kb"],
  "gateway": r["gateway"], "errors": r["errors"]}))
PY
}

for i in $(seq "$RUNS"); do
  if [ "$WHICH" = P1 ] || [ "$WHICH" = all ]; then   # P1 + P2: 100 full-duplex WebRTC relay sessions
    start_pair
    $BIN loadtest --quiet --target "http://$GW" --direct "http://$SIM" --echo --transport webrtc \
      --sessions 100 --ramp 50 --duration 30 --speech-ms 600 --pause-ms 400 --out "$TMP/p1" > /dev/null || true
    pick P1 "$TMP/p1/results.json"
  fi
  if [ "$WHICH" = P3 ] || [ "$WHICH" = all ]; then   # P3: websocket sessions streaming audio
    for n in ${P3_SESSIONS:-200 400 2000}; do
      start_pair
      $BIN loadtest --quiet --target "http://$GW" --direct "http://$SIM" --echo --transport ws \
        --sessions "$n" --ramp 200 --duration 30 --out "$TMP/p3" > /dev/null || true
      pick "P3-$n" "$TMP/p3/results.json"
    done
  fi
  if [ "$WHICH" = P3L ] || [ "$WHICH" = all ]; then  # P3 with 100 ms frames: many sessions held
    for n in ${P3L_SESSIONS:-2000}; do
      start_pair
      $BIN loadtest --quiet --target "http://$GW" --direct "http://$SIM" --echo --transport ws \
        --sessions "$n" --ramp 200 --duration 30 --frame-ms 100 --out "$TMP/p3l" > /dev/null || true
      pick "P3-$n-100ms" "$TMP/p3l/results.json"
    done
  fi
  if [ "$WHICH" = P4 ] || [ "$WHICH" = all ]; then   # P4: offer → answer (light load) and setups/s (churn)
    start_pair
    $BIN loadtest --quiet --target "http://$GW" --transport webrtc --sessions 5 --ramp 50 \
      --session-secs 0.5 --duration 10 --out "$TMP/p4a" > /dev/null || true
    pick P4-latency "$TMP/p4a/results.json"
    start_pair
    $BIN loadtest --quiet --target "http://$GW" --transport webrtc --sessions 100 --ramp 500 \
      --session-secs 0.3 --duration 10 --out "$TMP/p4b" > /dev/null || true
    pick P4-rate "$TMP/p4b/results.json"
  fi
done
