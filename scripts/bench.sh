#!/usr/bin/env bash
# bench.sh runs the measurements of BENCHMARKS.md side by side in one run:
# the trivial net/http handler, the registry in memory and the durable
# registry, on loopback, with the load generator cmd/registry-load. Ratios
# come from alternating rounds; the script prints each round and the medians.
#
#   scripts/bench.sh                 # 2,000 agents, then 20,000 and 100,000
#   ROUNDS=5 DURATION=10s scripts/bench.sh
#
# Every server and load stops by itself; nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
SKIP_LARGE=${SKIP_LARGE:-}
source scripts/bench-lib.sh
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(go version | cut -d' ' -f3), rounds $ROUNDS, duration $DURATION"

"$load" -trivial 127.0.0.1:9200 >"$work/trivial.log" 2>&1 &
pids+=($!)
serve memory 9201 --in-memory
serve durable 9202 --data-dir "$work/data"
sleep 0.5


echo "## 2,000 agents x 20 tools: registration (32 clients), then $ROUNDS rounds of heartbeats (64 clients)"
"$load" -url http://127.0.0.1:9201 -scenarios register -duration "$DURATION" | grep -E '^register'
"$load" -url http://127.0.0.1:9202 -scenarios register -duration "$DURATION" | grep -E '^register' | sed 's/^/durable /'
: >"$work/mem_vs_trivial"
: >"$work/durable_vs_mem"
for r in $(seq "$ROUNDS"); do
	out=$("$load" -url http://127.0.0.1:9201 -compare http://127.0.0.1:9200 -scenarios heartbeat -duration "$DURATION")
	echo "$out" | grep -E '^heartbeat' | sed "s/^/round $r memory vs trivial: /"
	echo "$out" | ratio >>"$work/mem_vs_trivial"
	out=$("$load" -url http://127.0.0.1:9202 -compare http://127.0.0.1:9201 -scenarios heartbeat -duration "$DURATION")
	echo "$out" | grep -E '^heartbeat' | sed "s/^/round $r durable vs memory: /"
	echo "$out" | ratio >>"$work/durable_vs_mem"
done
echo "median heartbeat ratio, registry (memory) / trivial handler: $(median <"$work/mem_vs_trivial")"
echo "median heartbeat ratio, durable / memory: $(median <"$work/durable_vs_mem")"

echo "## 2,000 agents: lookups (32 clients), listings, mixed (64 clients, 10% lookups)"
"$load" -url http://127.0.0.1:9201 -scenarios heartbeat,lookup,list,mixed -duration "$DURATION" -pid "$pid_memory" | grep -vE '^#'

[ -n "$SKIP_LARGE" ] && exit 0
for agents in 20000 100000; do
	kill "$pid_memory"
	serve memory 9201 --in-memory
	echo "## $agents agents x 20 tools (memory): registration, heartbeats, lookups, listings, mixed; server memory"
	"$load" -url http://127.0.0.1:9201 -agents "$agents" -scenarios register,heartbeat,lookup,list,mixed \
		-duration "$DURATION" -pid "$pid_memory" | grep -vE '^#'
	for i in 1 2 3 4 5; do
		curl -s -o /dev/null -w "curl GET /tools: %{time_total}s %{size_download} bytes\n" http://127.0.0.1:9201/tools
	done
	grep -E 'VmHWM|VmRSS' "/proc/$pid_memory/status"
done
