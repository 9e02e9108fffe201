#!/usr/bin/env bash
# bench-metrics.sh measures what Prometheus metrics cost a heartbeat over
# HTTP: two registries of the same build, in memory, one with metrics on
# (the default) and scraped every second, one with --metrics=false, on
# loopback, with the load generator cmd/registry-load. Each round runs the
# heartbeat scenario against both (-compare), the order alternating from
# round to round, and prints the throughput ratio (on/off). On a shared
# machine throughput moves with the other work; the server's CPU time per
# heartbeat moves much less, so each round also gives that of the -compare
# server (which the load generator does not register the fleet on: its CPU
# over the run is its heartbeats, plus the scrapes when it is the one with
# metrics). It prints the medians.
#
#   scripts/bench-metrics.sh
#   ROUNDS=20 DURATION=8s AGENTS=2000 PORTS="9411 9412" scripts/bench-metrics.sh
#
# Every process stops by itself; nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-8s}
AGENTS=${AGENTS:-2000}
read -r on_port off_port <<<"${PORTS:-9411 9412}"
for p in "$on_port" "$off_port"; do
	# bench-lib's serve waits for /health: a registry someone else runs on
	# the port would be measured instead of ours.
	if curl -s -o /dev/null "http://127.0.0.1:$p/"; then
		echo "port $p is in use: set PORTS"; exit 1
	fi
done
source scripts/bench-lib.sh
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(go version | cut -d' ' -f3), $AGENTS agents, rounds $ROUNDS, duration $DURATION"

serve on "$on_port" --in-memory
serve off "$off_port" --in-memory --metrics=false
on=http://127.0.0.1:$on_port
off=http://127.0.0.1:$off_port
curl -sf "$on/metrics" | grep -q '^runspec_registry_instances' || { echo "no metrics on $on"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$off/metrics")" = 404 ] || { echo "metrics on $off"; exit 1; }

# Prometheus, scraping every second (15 s is usual).
(while sleep 1; do curl -sf -o /dev/null "$on/metrics" || true; done) &
pids+=($!)

: >"$work/ratios"
: >"$work/cpu-on"
: >"$work/cpu-off"
# The fleet on both: the load generator registers it on -url only.
"$load" -url "$on" -agents "$AGENTS" -scenarios register -duration 1s >/dev/null
"$load" -url "$off" -agents "$AGENTS" -scenarios register -duration 1s >/dev/null
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		main=$on cmp=$off cmp_name=off cmp_pid=$pid_off
	else
		main=$off cmp=$on cmp_name=on cmp_pid=$pid_on
	fi
	before=$(cpu "$cmp_pid")
	out=$("$load" -url "$main" -compare "$cmp" -agents "$AGENTS" -scenarios heartbeat -duration "$DURATION" -json)
	after=$(cpu "$cmp_pid")
	x=$(echo "$out" | ratio)
	[ "$main" = "$on" ] || x=$(echo "$x" | awk '{printf "%.3f", 1 / $1}')
	n=$(echo "$out" | grep '"scenario":"heartbeat@compare"' | grep -o '"requests":[0-9]*' | cut -d: -f2)
	us=$(awk -v b="$before" -v a="$after" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", (a - b) / hz * 1e6 / n}')
	echo "$out" | grep -E '^heartbeat' | sed "s/^/round $r: /"
	echo "round $r: throughput metrics on / off = $x; server CPU of $cmp_name: $us µs per heartbeat"
	echo "$x" >>"$work/ratios"
	echo "$us" >>"$work/cpu-$cmp_name"
done
echo "series per scrape: $(curl -sf "$on/metrics" | grep -c '^[a-z]')"
echo "median heartbeat throughput, metrics on (scraped every 1 s) / --metrics=false: $(median <"$work/ratios") over $ROUNDS rounds ($(sort -n "$work/ratios" | tr '\n' ' '))"
con=$(median <"$work/cpu-on") coff=$(median <"$work/cpu-off")
echo "median server CPU per heartbeat: metrics on $con µs ($(sort -n "$work/cpu-on" | tr '\n' ' ')), off $coff µs ($(sort -n "$work/cpu-off" | tr '\n' ' ')); on / off = $(awk -v a="$con" -v b="$coff" 'BEGIN {printf "%.3f", a / b}')"
