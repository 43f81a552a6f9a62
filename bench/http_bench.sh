#!/usr/bin/env bash
# Requests/s and p50/p99 latency of `quilt serve` under wrk at 64 connections:
# GET /v1/models, and 1-token completions on the demo model. Prints a markdown table.
# usage: bench/http_bench.sh [BUILD_DIR] [DURATION]   (needs wrk and curl)
set -euo pipefail
build=${1:-build}
duration=${2:-15s}
here=$(cd "$(dirname "$0")/.." && pwd)
data=$(mktemp -d)
port=18089
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT

QUILT_ADMIN_KEY=bench-admin "$here/$build/quilt" serve --data-dir "$data/db" --port $port > "$data/log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.1; done

admin=(-H "Authorization: Bearer bench-admin" -H "Content-Type: application/json")
tenant=$(curl -sf "${admin[@]}" -d '{"name":"bench"}' "http://127.0.0.1:$port/admin/v1/tenants" | sed 's/.*"id":"\([^"]*\)".*/\1/')
key=$(curl -sf "${admin[@]}" -X POST "http://127.0.0.1:$port/admin/v1/tenants/$tenant/keys" | sed 's/.*"key":"\([^"]*\)".*/\1/')
model=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/models" | sed 's/.*"data":\[{"created":0,"id":"\([^"]*\)".*/\1/')

cat > "$data/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"model":"$model","prompt":"The quick brown fox","max_tokens":1,"temperature":0}'
LUA

row() {  # name, wrk output
  local rps p50 p99
  rps=$(grep "Requests/sec" <<< "$2" | awk '{print $2}')
  p50=$(grep -E "^ +50%" <<< "$2" | awk '{print $2}')
  p99=$(grep -E "^ +99%" <<< "$2" | awk '{print $2}')
  errors=$(grep "Non-2xx" <<< "$2" | awk '{print $NF}' || true)
  echo "| $1 | 64 | $rps | $p50 | $p99 | ${errors:-0} |"
}
echo "| request | connections | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
out=$(wrk -t2 -c64 -d"$duration" --latency -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/models")
row "GET /v1/models" "$out"
out=$(wrk -t2 -c64 -d"$duration" --latency -s "$data/post.lua" "http://127.0.0.1:$port/v1/completions")
row "POST /v1/completions (1 token)" "$out"
