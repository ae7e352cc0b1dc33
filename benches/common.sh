# Shared by the load scripts in benches/: read the address a freshly started process prints.
wait_addr() { # file, line prefix → the address at the end of that line (10 s at most)
  for _ in $(seq 100); do
    if grep -q "$2" "$1" 2>/dev/null; then grep "$2" "$1" | head -1 | awk '{print $NF}'; return; fi
    sleep 0.1
  done
  echo "no address in $1" >&2; exit 1
}
