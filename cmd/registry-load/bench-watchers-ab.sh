#!/usr/bin/env bash
# bench-watchers-ab.sh compares two revisions of the registry on the
# watchers phase of bench-hostile.sh, side by side: PAIRS one-round runs of
# each, alternating (A, B, A, B, ...), each on a fresh durable registry,
# all with this tree's load generator. Each line gives the writes alone,
# the writes beside 2,000 reading event streams and 2,000 blocking
# queries, their ratio, and the CPU of each process. It uses the ports
# from 9601 on.
#
#   cmd/registry-load/bench-watchers-ab.sh REV_A REV_B [PAIRS]
#   DURATION=10s cmd/registry-load/bench-watchers-ab.sh main~3 main 5
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
[ $# -ge 2 ] || { echo "usage: $0 REV_A REV_B [PAIRS]" >&2; exit 2; }
revs=("$1" "$2")
pairs=${3:-3}
duration=${DURATION:-8s}

work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	for x in a b; do [ -d "$work/$x" ] && git worktree remove --force "$work/$x"; done
	rm -rf "$work"
}
trap cleanup EXIT
for i in 0 1; do
	x=$([ $i = 0 ] && echo a || echo b)
	git worktree add -q --detach "$work/$x" "${revs[$i]}"
	(cd "$work/$x" && go build -o "$work/registry-$x" ./cmd/runspec-registry)
done
go build -o "$work/registry-load" ./cmd/registry-load
echo "# $(date -u +%Y-%m-%dT%H:%MZ) A=${revs[0]} ($(git rev-parse --short "${revs[0]}")) B=${revs[1]} ($(git rev-parse --short "${revs[1]}")), $pairs pairs of $duration, load average $(cut -d' ' -f1-3 /proc/loadavg)"

port=9600
for p in $(seq "$pairs"); do
	for x in a b; do
		port=$((port + 1))
		"$work/registry-$x" --host 127.0.0.1 --port "$port" --rate-limit-write 0 --rate-limit-heartbeat 0 \
			--log-level warn --data-dir "$work/data-$x-$p" >"$work/$x.log" 2>&1 &
		pid=$!
		up=
		for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && up=1 && break; sleep 0.1; done
		if [ -z "$up" ]; then
			echo "the registry of $x did not start on port $port:" >&2
			cat "$work/$x.log" >&2
			exit 1
		fi
		out=$("$work/registry-load" -url "http://127.0.0.1:$port" -scenarios watchers -watch-phases alone,readers \
			-rounds 1 -duration "$duration" -pid "$pid" 2>&1) || true
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
		alone=$(grep -E '^watch-alone' <<<"$out" | grep -oE '[0-9]+ req/s' || true)
		readers=$(grep -E '^watch-readers' <<<"$out" | grep -oE '[0-9]+ req/s +p50 [0-9.]+[µm]?s' || true)
		ratio=$(grep -oE '[0-9.]+× alone' <<<"$out" || true)
		cpu=$(grep 'watch-readers:' <<<"$out" | grep -oE 'server [0-9.]+ cores.*' || true)
		if [ -z "$ratio" ]; then
			echo "$(tr a-b A-B <<<"$x"): no result; registry-load said:" >&2
			echo "$out" >&2
			exit 1
		fi
		echo "$(tr a-b A-B <<<"$x") alone $alone; readers $readers; $ratio | $cpu"
	done
done
