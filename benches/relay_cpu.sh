#!/usr/bin/env bash
# Whole-session relay cost: N concurrent full-duplex WebRTC calls (aiortc callers looping speech,
# the simulator in echo mode in its own process so every caller also hears audio continuously),
# voxgate's CPU time read from /proc while they run. Loopback only; stops by itself.
# Usage: benches/relay_cpu.sh [N] [SECONDS]   (needs: cargo build --release; pip aiortc)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
SECS=${2:-20}
BIN=target/release/voxgate
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

. benches/common.sh

RUST_LOG=warn $BIN simulate --listen 127.0.0.1:0 --echo > "$TMP/sim.out" 2>/dev/null &
SIM=$(wait_addr "$TMP/sim.out" "simulator listening on")
RUST_LOG=warn VOXGATE_UPSTREAM__KIND=openai VOXGATE_UPSTREAM__BASE_URL="http://$SIM/v1" OPENAI_API_KEY=sk-bench \
  VOXGATE_WEBRTC__SILENCE_TIMEOUT_SECS=120 $BIN serve --listen 127.0.0.1:0 > "$TMP/gw.out" 2>/dev/null &
GW_PID=$!
GW=$(wait_addr "$TMP/gw.out" "voxgate listening on")

python3 - "$TMP/speech.wav" <<'PY'
import math, struct, sys, wave
rate = 48000
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    frames = bytearray()
    for i in range(rate * 3):
        t = i / rate
        env = abs(math.sin(t * 6 * 2 * math.pi)) * 0.6 + 0.4
        v = sum(math.sin(t * 180 * h * 2 * math.pi) / h for h in range(1, 6)) * env * 9000 if t < 2.4 else 0
        frames += struct.pack("<h", int(v))
    w.writeframes(bytes(frames))
PY

ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
HZ=$(getconf CLK_TCK)
python3 e2e/clients/relay_load.py --base "http://$GW" --wav "$TMP/speech.wav" --n "$N" --seconds "$SECS" > "$TMP/load.json" &
LOAD=$!
sleep 3   # let the calls connect before measuring
T0=$(ticks); W0=$(date +%s.%N)
if [ -n "${PERF_OUT:-}" ]; then perf record -F 499 -g -p "$GW_PID" -o "$PERF_OUT" -- sleep $((SECS - 5)) >/dev/null 2>&1; else sleep $((SECS - 5)); fi
T1=$(ticks); W1=$(date +%s.%N)
wait $LOAD
python3 - "$T0" "$T1" "$W0" "$W1" "$HZ" "$N" "$TMP/load.json" <<'PY'
import json, sys
t0, t1, w0, w1, hz, n = map(float, sys.argv[1:7])
load = json.load(open(sys.argv[7]))
cpu = (t1 - t0) / hz
wall = w1 - w0
per = cpu / wall / load["calls"] if load["calls"] else float("nan")
print(json.dumps({"calls": load["calls"], "errors": load["errors"], "frames_received": load["frames_received"],
                  "gateway_cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                  "core_fraction_per_session": round(per, 4)}))
PY
