#!/usr/bin/env bash
# Per-frame cost of each face: voxgate's voluntary context switches and CPU time per duplex audio
# frame, and its RSS per session, while `voxgate loadtest --echo` streams 20 ms frames both ways
# through N sessions (the simulator echoes in its own process). Loopback only; stops by itself.
# Usage: benches/wakeups.sh [rpc|ws|webrtc|all] [SESSIONS] [SECONDS] [RUNS]
#   BIN=path/to/voxgate to measure another build (default target/release/voxgate);
#   GW_WORKERS=N runs voxgate (only) with N tokio worker threads.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-all}
N=${2:-50}
SECS=${3:-20}
RUNS=${4:-3}
BIN=${BIN:-target/release/voxgate}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

. benches/common.sh

status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Context switches are counted per thread: sum over every thread of the process.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk -v k="$2:" '$1 == k {s += $2} END {print s + 0}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_face() {
  local face=$1
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true
  RUST_LOG=warn $BIN simulate --listen 127.0.0.1:0 --echo > "$TMP/sim.out" 2>/dev/null &
  SIM=$(wait_addr "$TMP/sim.out" "simulator listening on")
  RUST_LOG=warn VOXGATE_UPSTREAM__KIND=openai VOXGATE_UPSTREAM__BASE_URL="http://$SIM/v1" OPENAI_API_KEY=sk-bench \
    VOXGATE_WEBRTC__SILENCE_TIMEOUT_SECS=120 env ${GW_WORKERS:+TOKIO_WORKER_THREADS=$GW_WORKERS} \
    $BIN serve --listen 127.0.0.1:0 > "$TMP/gw.out" 2>/dev/null &
  local pid=$!
  GW=$(wait_addr "$TMP/gw.out" "voxgate listening on")
  local rss0; rss0=$(status "$pid" VmRSS)
  local c0 n0 t0
  c0=$(switches "$pid" voluntary_ctxt_switches); n0=$(switches "$pid" nonvoluntary_ctxt_switches); t0=$(ticks "$pid")
  # Continuous speech (no pauses), so every session carries 50 frames/s each way.
  $BIN loadtest --quiet --target "http://$GW" --echo --transport "$face" --sessions "$N" --ramp 100 \
    --duration "$SECS" --speech-ms 100000 --pause-ms 20 --out "$TMP/out" > /dev/null || true
  local c1 n1 t1
  c1=$(switches "$pid" voluntary_ctxt_switches); n1=$(switches "$pid" nonvoluntary_ctxt_switches); t1=$(ticks "$pid")
  python3 - "$face" "$N" "$c0" "$c1" "$n0" "$n1" "$t0" "$t1" "$(getconf CLK_TCK)" "$rss0" "$TMP/out/results.json" <<'PY'
import json, sys
face, n = sys.argv[1], int(sys.argv[2])
c0, c1, n0, n1, t0, t1, hz, rss0 = map(float, sys.argv[3:11])
r = json.load(open(sys.argv[11]))
g = r["gateway"]
frames = g.get("audio_frames_in", 0) + g.get("audio_frames_out", 0)
duplex = frames / 2 or float("nan")
cpu_us = (t1 - t0) / hz * 1e6
print(json.dumps({"face": face, "sessions": n, "established": r["sessions"]["established"],
  "frames_in": g.get("audio_frames_in"), "frames_out": g.get("audio_frames_out"),
  "voluntary_ctx_per_duplex_frame": round((c1 - c0) / duplex, 2),
  "nonvoluntary_ctx_per_duplex_frame": round((n1 - n0) / duplex, 3),
  "cpu_us_per_duplex_frame": round(cpu_us / duplex, 1),
  "rss_per_session_kb": r["resources"].get("rss_per_session_kb"),
  "rss_max_kb": r["resources"].get("rss_max_kb"), "rss_idle_kb": rss0,
  "rss_added_per_session_kb": round((r["resources"].get("rss_max_kb", 0) - rss0) / n, 1),
  "rtt_p50_ms": r["rtt_ms"]["p50"], "rtt_p99_ms": r["rtt_ms"]["p99"]}))
PY
}

for i in $(seq "$RUNS"); do
  for face in rpc ws webrtc; do
    if [ "$WHICH" = "$face" ] || [ "$WHICH" = all ]; then run_face "$face"; fi
  done
done
