#!/usr/bin/env bash
# bench/proxy/run.sh: gatehouse-proxy against a direct connection to the
# same kube-apiserver, in the same run (test/e2e TestProxyBench): added
# p50/p99 for a GET of one ConfigMap and a LIST of 5,000, requests/s at 16
# workers, memory per open idle watch. Also the Go benchmark of the
# handler chain against a fake API server (internal/proxy BenchmarkGet).
#
#   bench/proxy/run.sh                    # prints the machine, load and results
#   KUBE_OIDC_PROXY=/tmp/kube-oidc-proxy bench/proxy/run.sh
#                                         # also measures kube-oidc-proxy beside (build it outside
#                                         # the repository, e.g. from github.com/TremoloSecurity/kube-oidc-proxy)
#
# The control plane binaries come from test/e2e's cache: set GATEHOUSE_E2E_CACHE as for test/e2e
# (CI: /var/cache/gatehouse-e2e), or a cold build of kube-apiserver runs first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "go: $(go version | cut -d' ' -f3-)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$root" && go test -run XXX -bench BenchmarkGet -benchtime 3000x -count 3 ./internal/proxy 2>/dev/null | grep Benchmark)
(cd "$root" && go test -run XXX -bench BenchmarkIdleWatch -benchtime 1000x ./internal/proxy 2>/dev/null | grep -a heap-B)
(cd "$root/test/e2e" && GATEHOUSE_PROXY_BENCH=1 GATEHOUSE_PROXY_BENCH_OUT="$out" \
	GATEHOUSE_PROXY_BENCH_KUBE_OIDC_PROXY="${KUBE_OIDC_PROXY:-}" \
	go test -mod=mod -count=1 -timeout 30m -run '^TestProxyBench$' . >"$out.log" 2>&1) || { tail -50 "$out.log"; exit 1; }
cat "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$out" "$out.log"
