#!/usr/bin/env bash
# plugin-warm.sh: the kubectl plugin's warm path, whole process, as kubectl
# runs it. Builds, as releases are built (CGO_ENABLED=0, -trimpath,
# -ldflags "-s -w"):
#   - a hello-world Go program that only prints a fixed ExecCredential;
#   - kubectl-gatehouse as released (make build, tools/release): one file,
#     the front end with the plain plugin embedded (-tags embedengine);
#   - the plain build, what `go install .../cmd/kubectl-gatehouse` builds
#     (here with the release flags, to compare like with like);
#   - with KUBELOGIN_SRC=/path/to/kubelogin (its public source, checked out
#     outside this repository), kubelogin, built the same way.
# It writes one cache entry for the seed article's arguments (kubelogin's
# file name and format, read by all of them) and times warm get-token side
# by side with hyperfine; then 8 concurrent warm runs of each; then
# `version`, a run that the one-file build hands to its engine.
#
#   bench/plugin-warm.sh                  # RUNS=500 in ROUNDS=5 by default
#   RUNS=1000 ROUNDS=10 KUBELOGIN_SRC=/tmp/kubelogin bench/plugin-warm.sh
#
# Needs: go, hyperfine (apt-get install -y hyperfine), python3 (reads
# hyperfine's JSON).
set -euo pipefail

RUNS=${RUNS:-500}
WARMUP=${WARMUP:-50}
CONC_RUNS=${CONC_RUNS:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export CGO_ENABLED=0
build() { go build -trimpath -ldflags="-s -w" "$@"; }

echo "building into $work" >&2
# The one-file build: the plain build first, embedded through -overlay (as
# tools/release does; the source tree is not written).
(cd "$repo" && build -o "$work/plain/kubectl-gatehouse" ./cmd/kubectl-gatehouse)
printf '{"Replace":{"%s":"%s"}}' "$repo/cmd/kubectl-gatehouse/engine.bin" "$work/plain/kubectl-gatehouse" > "$work/overlay.json"
(cd "$repo" && build -tags embedengine -overlay "$work/overlay.json" -o "$work/kubectl-gatehouse" ./cmd/kubectl-gatehouse)

mkdir -p "$work/hello"
cat > "$work/hello/main.go" <<'GO'
package main

import "os"

func main() {
	os.Stdout.WriteString(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false},"status":{"expirationTimestamp":"2100-01-01T00:00:00Z","token":"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6IngiLCJhdWQiOiJrdWJlcm5ldGVzIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln"}}` + "\n")
}
GO
printf 'module hello\n\ngo 1.22\n' > "$work/hello/go.mod"
(cd "$work/hello" && GOWORK=off build -o "$work/hello-execcredential" .)

kubelogin=""
if [ -n "${KUBELOGIN_SRC:-}" ]; then
	(cd "$KUBELOGIN_SRC" && GOFLAGS=-mod=mod build -o "$work/kubelogin" .)
	kubelogin="$work/kubelogin"
fi

# The cache entry: kubelogin's file name for the seed article's arguments
# (internal/login/tokencache's TestChecksumKubelogin pins it), an ID token
# that expires in 2100.
cache="$work/cache"
mkdir -m 700 "$cache"
payload=$(printf '{"iss":"https://dex.example.com","sub":"x","aud":"kubernetes","exp":4102444800}' | base64 -w0 | tr '+/' '-_' | tr -d '=')
printf '{"id_token":"eyJhbGciOiJSUzI1NiJ9.%s.c2ln","refresh_token":"r"}' "$payload" > "$cache/2d6fe9601255cda839ec4e640ae843a0c96e74ae5c27e93893dbb70a74ada8d9"
chmod 600 "$cache"/*
args="get-token --oidc-issuer-url=https://dex.example.com --oidc-client-id=kubernetes --oidc-client-secret=s3cret --oidc-extra-scope=groups,profile --token-cache-dir=$cache"
export KUBERNETES_EXEC_INFO='{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}'

# A warm run must print the cached token and touch nothing else.
"$work/kubectl-gatehouse" $args | grep -q "$payload" || { echo "kubectl-gatehouse did not print the cached token" >&2; exit 1; }
"$work/plain/kubectl-gatehouse" $args | grep -q "$payload" || { echo "the plain build did not print the cached token" >&2; exit 1; }
if [ -n "$kubelogin" ]; then
	"$kubelogin" $args | grep -q "$payload" || { echo "kubelogin did not print the cached token" >&2; exit 1; }
fi

cmds=("$work/hello-execcredential" "$work/kubectl-gatehouse $args" "$work/plain/kubectl-gatehouse $args")
names=("hello-world" "kubectl-gatehouse, one file (released)" "kubectl-gatehouse, plain build (go install)")
if [ -n "$kubelogin" ]; then cmds+=("$kubelogin $args"); names+=("kubelogin"); fi

# The machine may be shared: run ROUNDS short hyperfine rounds in turn and
# report the median of the rounds' medians, so that a change of load hits
# all programs alike.
ROUNDS=${ROUNDS:-5}
echo "== warm get-token, one at a time ($ROUNDS rounds of $((RUNS / ROUNDS)) runs each)" >&2
for r in $(seq "$ROUNDS"); do
	hyperfine -N --warmup "$WARMUP" --runs "$((RUNS / ROUNDS))" --export-json "$work/single-$r.json" "${cmds[@]}" >&2
done

# 8 concurrent runs: a small script starts 8 at once and records failures.
cat > "$work/eight.sh" <<'SH'
#!/bin/sh
fail="$1"; shift
for i in 1 2 3 4 5 6 7 8; do
	( "$@" > /dev/null || echo "exit $?" >> "$fail" ) &
done
wait
SH
chmod +x "$work/eight.sh"
conc=()
for c in "${cmds[@]}"; do conc+=("$work/eight.sh $work/failures $c"); done
echo "== 8 concurrent warm get-token ($CONC_RUNS rounds each)" >&2
for r in $(seq "$ROUNDS"); do
	hyperfine -N --warmup 3 --runs "$((CONC_RUNS / ROUNDS))" --export-json "$work/eight-$r.json" "${conc[@]}" >&2
done
failures=0
[ -f "$work/failures" ] && failures=$(wc -l < "$work/failures")

# A run the one-file build hands to its engine (from memory on Linux):
# what a cache miss pays for the front end, before any network.
echo "== version (one file: front, then the engine)" >&2
hyperfine -N --warmup "$WARMUP" --runs "$((RUNS / ROUNDS))" --export-json "$work/version.json" \
	"$work/plain/kubectl-gatehouse version" "$work/kubectl-gatehouse version" >&2

report() { # report TITLE GLOB NAMES...: median of the rounds' medians, ratio to the first command
	python3 - "$@" <<'PY'
import glob, json, statistics, sys
title, pattern, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rounds = [json.load(open(f))["results"] for f in sorted(glob.glob(pattern))]
med = [statistics.median(r[i]["median"] for r in rounds) for i in range(len(names))]
for name, m in zip(names, med):
    print(f"| {title} | {name} | {m*1000:.3f} ms | {m/med[0]:.2f}x |")
PY
}
echo
echo "go: $(go version | cut -d' ' -f3), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| run | program | median | vs hello-world |"
echo "| --- | --- | --- | --- |"
report "warm, one at a time" "$work/single-*.json" "${names[@]}"
report "8 concurrent (one round of 8)" "$work/eight-*.json" "${names[@]}"
report "version, vs the plain build" "$work/version.json" "kubectl-gatehouse, plain build" "kubectl-gatehouse, one file (front execs the engine)"
echo
echo "failures in concurrent runs: $failures"
[ "$failures" -eq 0 ]
