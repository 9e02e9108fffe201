#!/usr/bin/env bash
# bench-etcd.sh measures the registry on etcd against the registry in
# memory, side by side in one run, on loopback: registrations, then
# alternating rounds of heartbeats through one etcd replica (-compare with
# the in-memory registry), with the default keep-alive batching per lease
# and with one keep-alive per heartbeat. It prints each round and the
# medians. It needs an etcd binary (Debian: apt-get install etcd-server).
#
#   scripts/bench-etcd.sh
#   ROUNDS=5 DURATION=10s AGENTS=20000 scripts/bench-etcd.sh
#
# Every process stops by itself; nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8s}
AGENTS=${AGENTS:-2000}
ETCD=${ETCD_BIN:-$(command -v etcd || true)}
[ -n "$ETCD" ] || { echo "no etcd binary: apt-get install etcd-server, or set ETCD_BIN"; exit 1; }
source scripts/bench-lib.sh
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(go version | cut -d' ' -f3), $("$ETCD" --version | head -1), $AGENTS agents, rounds $ROUNDS, duration $DURATION"

"$ETCD" --data-dir "$work/etcd" --log-level warn \
	--listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
	--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
	--initial-cluster default=http://127.0.0.1:23800 \
	--auto-compaction-mode periodic --auto-compaction-retention 10m >"$work/etcd.log" 2>&1 &
pids+=($!)

sleep 1
# A long heartbeat interval (lease TTL 30 min): registry-load registers the
# whole fleet again before each round, which takes minutes on etcd at 20,000
# agents, and the first leases must not expire meanwhile. Heartbeat batching
# does not depend on it (its window is 1 s either way).
etcd=(--heartbeat-interval 600s --store etcd --etcd-endpoints http://127.0.0.1:23790)
serve memory 9301 --in-memory --heartbeat-interval 600s
serve etcd 9302 "${etcd[@]}" --etcd-prefix /batched/
serve etcd-each 9303 "${etcd[@]}" --etcd-prefix /each/ --etcd-keepalive-window=-1ns


echo "## registration (32 clients): memory, then etcd"
for port in 9301 9302 9303; do
	"$load" -url http://127.0.0.1:$port -agents "$AGENTS" -scenarios register -duration "$DURATION" | grep -E '^register' | sed "s/^/:$port /"
done
: >"$work/batched"
: >"$work/each"
for r in $(seq "$ROUNDS"); do
	out=$("$load" -url http://127.0.0.1:9302 -agents "$AGENTS" -compare http://127.0.0.1:9301 -scenarios heartbeat -duration "$DURATION" 2>/dev/null)
	echo "$out" | grep -E '^heartbeat' | sed "s/^/round $r etcd (batched per lease) vs memory: /"
	echo "$out" | ratio >>"$work/batched"
	out=$("$load" -url http://127.0.0.1:9303 -agents "$AGENTS" -compare http://127.0.0.1:9301 -scenarios heartbeat -duration "$DURATION" 2>/dev/null)
	echo "$out" | grep -E '^heartbeat' | sed "s/^/round $r etcd (a keep-alive per heartbeat) vs memory: /"
	echo "$out" | ratio >>"$work/each"
done
echo "median heartbeat ratio, etcd (batched per lease) / memory: $(median <"$work/batched")"
echo "median heartbeat ratio, etcd (a keep-alive per heartbeat) / memory: $(median <"$work/each")"

echo "## lookups and mixed load through the etcd replica (reads never reach etcd)"
"$load" -url http://127.0.0.1:9302 -agents "$AGENTS" -scenarios lookup,mixed -duration "$DURATION" 2>/dev/null | grep -vE '^#'
