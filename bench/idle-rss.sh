#!/usr/bin/env bash
# bench/idle-rss.sh: idle memory of `gatehouse serve --dev` (SQLite, the
# local user, TLS on 127.0.0.1:5556) for one or more builds, runs
# interleaved (a, b, a, b, ...). Each run starts in a fresh dev dir, waits
# for http://127.0.0.1:5558/healthz/ready, then reads VmRSS (and Rss and
# Anonymous from smaps_rollup) 2 s later. MB are 1024 kB, as in
# bench/refresh.sh.
#
#   bench/idle-rss.sh RUNS BINARY...
#   bench/idle-rss.sh 3 /tmp/gatehouse-main /tmp/gatehouse-branch
set -euo pipefail
runs=$1
shift
printf 'run\tbinary\tVmRSS MB\tRss kB\tAnonymous kB\tfile-backed kB\n'
for r in $(seq 1 "$runs"); do
	for bin in "$@"; do
		dir=$(mktemp -d /tmp/idle-rss.XXXXXX)
		"$bin" serve --dev --dev-dir "$dir" >"$dir/log" 2>&1 &
		pid=$!
		for _ in $(seq 1 600); do
			curl -fsS --max-time 1 http://127.0.0.1:5558/healthz/ready >/dev/null 2>&1 && break
			kill -0 "$pid" 2>/dev/null || { echo "$bin exited:" >&2; tail "$dir/log" >&2; exit 1; }
			sleep 0.1
		done
		sleep 2
		vm=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
		rss=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")
		anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup")
		printf '%s\t%s\t%.1f\t%s\t%s\t%s\n' "$r" "$bin" "$(echo "$vm / 1024" | bc -l)" "$rss" "$anon" "$((rss - anon))"
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		rm -rf "$dir"
	done
done
