#!/usr/bin/env bash
# ferry through `ferry relay` against direct: SIZE_MB (default 1024) of random
# bytes, encrypted, receiver --no-fsync, RUNS (default 3) alternating runs of
# each on loopback; prints each run's seconds (the sender's summary) and MB/s.
# Run after `npm run build`: bash bench/relay-ferry.sh [SIZE_MB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
F=dist/ferry.mjs
size_mb=${1:-1024}
runs=${2:-3}
work=$(mktemp -d)
trap 'kill "${relay:-}" 2>/dev/null; rm -rf "$work"' EXIT
head -c $((size_mb * 1048576)) /dev/urandom > "$work/big.bin"

# The value of "key" in the first JSON line of FILE that has it, waiting up to 10 s for it.
field() {
  for _ in $(seq 100); do
    v=$(grep -o "\"$2\":\"\\?[^\",}]*" "$1" 2>/dev/null | head -1 | sed 's/.*:"\?//') || true
    [ -n "$v" ] && { echo "$v"; return; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; exit 1
}

node $F relay --host 127.0.0.1 --port 0 --json > "$work/relay.log" 2>&1 &
relay=$!
at=127.0.0.1:$(field "$work/relay.log" port)
for i in $(seq "$runs"); do
  for mode in direct relay; do
    dst=$(mktemp -d "$work/dst.XXXX")
    if [ $mode = direct ]; then
      node $F receive --host 127.0.0.1 --port 0 --once --no-fsync --no-announce --dir "$dst" --json > "$work/rx.log" 2>&1 &
      rx=$!
      way=(--to "127.0.0.1:$(field "$work/rx.log" port)")
    else
      node $F receive --relay "$at" --once --no-fsync --dir "$dst" --json > "$work/rx.log" 2>&1 &
      rx=$!
      way=(--relay "$at")
    fi
    code=$(field "$work/rx.log" code)
    FERRY_CODE=$code node $F send "$work/big.bin" "${way[@]}" --json > "$work/tx.log" 2>&1
    wait $rx
    secs=$(grep '"summary"' "$work/tx.log" | grep -o '"seconds":[0-9.]*' | cut -d: -f2)
    echo "$mode run $i: $secs s, $(node -e "console.log(Math.round($size_mb * 1.048576 / $secs))") MB/s"
    rm -rf "$dst"
  done
done
