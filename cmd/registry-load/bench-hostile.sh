#!/usr/bin/env bash
# bench-hostile.sh runs the hostile-client measurements of BENCHMARKS.md
# ("Hostile clients") against the runspec-registry binary, durable (the
# default file store, a fresh data directory), rate limits off, on
# loopback, with the load generator in its own process:
#
#   watchers  registration throughput alone, beside 2,000 event streams that
#             read and 2,000 blocking queries (200 on a tool the writes post),
#             and beside 1,000 event streams that never read; ROUNDS
#             alternating rounds of DURATION, ratios and medians
#   silent    100 connections that request a ~16 MB page and never read:
#             the server's RSS per connection, ROUNDS times, on a fresh
#             registry
#
#   cmd/registry-load/bench-hostile.sh
#   ROUNDS=5 DURATION=10s cmd/registry-load/bench-hostile.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
source scripts/bench-lib.sh
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(go version | cut -d' ' -f3), rounds $ROUNDS, duration $DURATION, load average $(cut -d' ' -f1-3 /proc/loadavg)"

serve watchers 9311 --data-dir "$work/data-watchers"
echo "## watchers: 32 writers (a registration and a tool post each), alone / beside watchers"
"$load" -url http://127.0.0.1:9311 -scenarios watchers -rounds "$ROUNDS" -duration "$DURATION" -pid "$pid_watchers" | grep -v '^# target'
kill "$pid_watchers"; wait "$pid_watchers" 2>/dev/null || true

echo "## silent: 100 connections that request GET /instances?limit=100000 and never read, a fresh registry each round"
: >"$work/silent"
for r in $(seq "$ROUNDS"); do
	serve silent 9312 --data-dir "$work/data-silent-$r"
	out=$("$load" -url http://127.0.0.1:9312 -scenarios silent -rounds 1 -pid "$pid_silent")
	echo "$out" | grep '^silent' | sed "s/^/round $r /"
	echo "$out" | sed -n 's/^# silent: median \(-*[0-9]*\) KiB.*/\1/p' >>"$work/silent"
	kill "$pid_silent"; wait "$pid_silent" 2>/dev/null || true
done
echo "median server RSS per connection that never reads: $(median <"$work/silent") KiB (target ≤ 256)"
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
