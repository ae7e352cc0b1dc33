#!/usr/bin/env bash
# v2 vs v3 through the embedded simulator: same loadtest, the upstream version the only change.
set -u
B="$(cd "$(dirname "$0")/.." && pwd)/target/release/voxgate"   # cargo build --release first
for v in v2 v3; do
  VOXGATE_UPSTREAM__VERSION=$v $B serve --listen 127.0.0.1:0 > /tmp/serve_$v.out 2>/tmp/serve_$v.err &
  pid=$!
  for i in $(seq 1 50); do grep -q "listening on" /tmp/serve_$v.out && break; sleep 0.2; done
  addr=$(grep -o "listening on .*" /tmp/serve_$v.out | awk '{print $3}')
  $B loadtest --target http://$addr --transport rpc --sessions 50 --duration 20 --out "${OUT:-/tmp}/lt_$v" > /tmp/lt_$v.txt 2>&1
  kill $pid; wait $pid 2>/dev/null
  echo "== $v"; tail -30 /tmp/lt_$v.txt
done
