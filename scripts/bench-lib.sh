# bench-lib.sh is sourced by the bench scripts: a work directory removed at
# exit with every process started, the two binaries, serve, ratio, median.

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/runspec-registry" ./cmd/runspec-registry
go build -o "$work/registry-load" ./cmd/registry-load
load="$work/registry-load"

serve() { # name port args...: starts a registry, records its pid as pid_NAME
	local name=$1 port=$2
	shift 2
	"$work/runspec-registry" --host 127.0.0.1 --port "$port" --rate-limit-write 0 --rate-limit-heartbeat 0 \
		--log-level warn "$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	eval "pid_${name//-/_}=$!"
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/health" >/dev/null && return
		sleep 0.1
	done
	echo "$name did not start"; cat "$work/$name.log"; exit 1
}

ratio() { sed -n 's/.* \([0-9.]*\)× main\/compare.*/\1/p'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
