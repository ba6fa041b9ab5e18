#!/usr/bin/env bash
# bench/refresh.sh: load benchmark of the refresh grant and of discovery and
# JWKS, gatehouse against Dex, one server at a time on 127.0.0.1, the same
# Dex-format config for both (RS256 local signer, reuseInterval: 0s, password
# connector local) apart from ports and storage file/database.
#
#   bench/refresh.sh                                  # gatehouse only, SQLite
#   DEX_BIN=/path/to/dex bench/refresh.sh             # gatehouse, then Dex
#   STORAGE=postgres DEX_BIN=/path/to/dex bench/refresh.sh
#   STORAGE="sqlite postgres kubernetes" DEX_BIN=/path/to/dex bench/refresh.sh   # all, one run
#
# Environment:
#   DEX_BIN        Dex binary to compare with (not built here); unset: gatehouse only
#   GATEHOUSE_BIN  gatehouse binary (default: built from this tree into the work dir)
#   STORAGE        sqlite (default) | postgres (127.0.0.1:5432, user postgres, trust
#                  auth; databases bench_gatehouse and bench_dex are dropped and recreated)
#                  | kubernetes (custom resources; namespaces bench-gatehouse and bench-dex
#                  are deleted and recreated), or several of them separated by spaces
#   KUBECONFIG_FILE with kubernetes: an admin kubeconfig of the API server to use; unset:
#                  etcd and kube-apiserver of the e2e suite are started on this machine
#                  (test/e2e TestHoldControlPlane, binaries from GATEHOUSE_E2E_CACHE)
#   MODES          what to measure, in order (default: refresh discovery jwks); add
#                  exchange for the token exchange grant (RFC 8693): a GitHub-Actions-shaped
#                  workload issuer (bench/workload) is started, both configs get an oidc
#                  connector github-actions for it, and each worker exchanges its own job's
#                  subject token; the connector's JWKS fetches (gatehouse_connector_jwks_fetches_total,
#                  and the requests the workload issuer saw) are reported before and after
#   WORKERS        concurrent workers (16)
#   DURATION       refresh run length (20s); DISCOVERY_DURATION for discovery/jwks (10s)
#   WARMUP         loadgen warm-up, not counted (2s)
#   PROFILE        1: take a CPU profile of each server (telemetry /debug/pprof, which
#                  both offer with enableProfiling) during its measured refresh run, PROFILE_SECONDS long (default: DURATION-WARMUP-4s;
#                  DURATION and WARMUP in whole seconds, e.g. 20s),
#                  print pprof -top and keep the profile in the work dir; 0 (default): none
#   SIGNER_ALG     ES256: give gatehouse ES256 ID tokens (signer.config.algorithm, a
#                  gatehouse extension Dex lacks); only without DEX_BIN, since the configs
#                  would differ. Unset (default): RS256 for both, as Dex does.
#   WORK           work dir (default: a new temp dir; kept, it holds logs and results)
#
# Everything runs on this machine: the load generator shares the CPUs with
# the server under test. Each step is bounded in time; servers are stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
STORAGE=${STORAGE:-sqlite}
MODES=${MODES:-refresh discovery jwks}
WORKERS=${WORKERS:-16}
DURATION=${DURATION:-20s}
DISCOVERY_DURATION=${DISCOVERY_DURATION:-10s}
WARMUP=${WARMUP:-2s}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-$((${DURATION%s} - ${WARMUP%s} - 4))}
WORK=${WORK:-$(mktemp -d /tmp/gatehouse-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
PASSWORD=bench-password-$RANDOM$RANDOM
SECRET=bench-secret-$RANDOM$RANDOM
PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	[ -d "$WORK/controlplane" ] && touch "$WORK/controlplane/stop"
	return 0
}
trap cleanup EXIT

if [ -n "${SIGNER_ALG:-}" ] && [ -n "${DEX_BIN:-}" ]; then
	echo "SIGNER_ALG is for gatehouse alone: Dex v2.45 has no signing algorithm option (unset DEX_BIN)" >&2
	exit 2
fi
STORAGES=$STORAGE
for st in $STORAGES; do
	case "$st" in
	sqlite | postgres | kubernetes) ;;
	*) echo "STORAGE must be sqlite, postgres or kubernetes (or several of them)" >&2; exit 2 ;;
	esac
done

log "work dir $WORK"
# Binaries: gatehouse and the load generator from this tree.
if [ -z "${GATEHOUSE_BIN:-}" ]; then
	GATEHOUSE_BIN="$WORK/gatehouse"
	timeout 300 go build -o "$GATEHOUSE_BIN" ./cmd/gatehouse
fi
timeout 300 go build -o "$WORK/loadgen" ./bench/loadgen
EXCHANGE=0
[[ " $MODES " == *" exchange "* ]] && EXCHANGE=1
HASH=$(timeout 120 go run ./bench/loadgen/hashpw "$PASSWORD")

# A throwaway CA and a serving certificate for 127.0.0.1 (ECDSA P-256, the
# same for both servers).
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca.key" -subj "/CN=bench CA" -days 1 -out "$WORK/ca.crt" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/tls.key" 2>/dev/null
openssl req -new -key "$WORK/tls.key" -subj "/CN=127.0.0.1" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
	-days 1 -extfile "$WORK/ext.cnf" -out "$WORK/tls.crt" 2>/dev/null
chmod 600 "$WORK"/*.key

# The workload issuer of exchange mode: its subject tokens (one job per
# worker, aud gatehouse-ci) are written before it serves.
WORKLOAD=https://127.0.0.1:15560
if [ "$EXCHANGE" = 1 ]; then
	timeout 300 go build -o "$WORK/workload" ./bench/workload
	"$WORK/workload" -addr 127.0.0.1:15560 -cert "$WORK/tls.crt" -key "$WORK/tls.key" -tokens "$WORK/subject-tokens" \
		-n "$WORKERS" -aud gatehouse-ci -ttl 2h >"$WORK/workload.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 1 100); do curl -fsS --max-time 2 --cacert "$WORK/ca.crt" "$WORKLOAD/.well-known/openid-configuration" >/dev/null 2>&1 && break; sleep 0.1; done
	log "workload issuer at $WORKLOAD"
fi

# exchange_connector: the oidc connector that verifies the subject tokens
# (Dex's keys only, so the same block serves Dex).
exchange_connector() { # issuer
	[ "$EXCHANGE" = 1 ] || return 0
	cat <<EOC
connectors:
- type: oidc
  id: github-actions
  name: GitHub Actions
  config:
    issuer: $WORKLOAD
    clientID: gatehouse-ci
    redirectURI: $1/callback
    rootCAs:
    - $WORK/ca.crt
    scopes: [openid, groups]
    userNameKey: sub
    claimMapping:
      preferred_username: repository
    claimModifications:
      newGroupFromClaims:
      - {prefix: gha, delimiter: ":", claims: [repository, environment]}
EOC
}

# jwks_counts telemetry-port: the connector's JWKS fetches as the server
# counts them (gatehouse only) and as the workload issuer saw them.
jwks_counts() {
	local m
	m=$(curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '/^gatehouse_connector_jwks_fetches_total\{connector="github-actions"\}/ {print $2}')
	echo "${m:-null} $(curl -fsS --max-time 5 --cacert "$WORK/ca.crt" "$WORKLOAD/stats" | jq .jwks_requests)"
}

storage_block() { # name
	case "$STORAGE" in
	sqlite) printf 'storage:\n  type: sqlite3\n  config:\n    file: %s\n' "$WORK/$1.db" ;;
	postgres) printf 'storage:\n  type: postgres\n  config:\n    host: 127.0.0.1\n    port: 5432\n    database: bench_%s\n    user: postgres\n    ssl:\n      mode: disable\n' "$1" ;;
	kubernetes) printf 'storage:\n  type: kubernetes\n  config:\n    kubeConfigFile: %s\n' "$WORK/$1.kubeconfig" ;;
	esac
}

# The kubernetes storage's API server: the one given, or the e2e suite's
# etcd and kube-apiserver on this machine (they share its CPUs).
if [[ " $STORAGES " == *" kubernetes "* ]]; then
	if [ -z "${KUBECONFIG_FILE:-}" ]; then
		mkdir -p "$WORK/controlplane"
		log "starting etcd and kube-apiserver (test/e2e TestHoldControlPlane)"
		(cd test/e2e && GATEHOUSE_HOLD_CONTROLPLANE="$WORK/controlplane" GATEHOUSE_E2E_CACHE="${GATEHOUSE_E2E_CACHE:-$HOME/.cache/gatehouse-e2e}" \
			timeout 7200 go test -mod=mod -count=1 -timeout 2h -run '^TestHoldControlPlane$' . >"$WORK/controlplane.log" 2>&1) &
		PIDS+=("$!")
		for _ in $(seq 1 6000); do [ -e "$WORK/controlplane/kubeconfig" ] && break; sleep 0.2; done
		[ -e "$WORK/controlplane/kubeconfig" ] || { log "no control plane; log:"; tail -20 "$WORK/controlplane.log" >&2; exit 1; }
		KUBECONFIG_FILE="$WORK/controlplane/kubeconfig"
		# etcd and kube-apiserver, children of the test binary: their CPU
		# per refresh is reported beside gatehouse's.
		tpid=$(pgrep -f 'e2e\.test .*TestHoldControlPlane' | head -1 || true)
		CP_PIDS=$( [ -n "$tpid" ] && pgrep -P "$tpid" | tr '\n' ' ' || true)
		log "control plane pids: ${CP_PIDS:-unknown}"
	fi
	KUBECTL=${KUBECTL:-$(ls "${GATEHOUSE_E2E_CACHE:-$HOME/.cache/gatehouse-e2e}"/kubernetes-*/kubectl 2>/dev/null | head -1)}
	[ -x "$KUBECTL" ] || { echo "no kubectl: set KUBECTL" >&2; exit 2; }
fi

# fresh_namespace name: an empty namespace bench-<name> and a kubeconfig
# whose context uses it.
fresh_namespace() {
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" delete namespace "bench-$1" --ignore-not-found --wait=true --timeout=300s >/dev/null
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" create namespace "bench-$1" >/dev/null
	cp "$KUBECONFIG_FILE" "$WORK/$1.kubeconfig"
	"$KUBECTL" --kubeconfig "$WORK/$1.kubeconfig" config set-context --current --namespace "bench-$1" >/dev/null
}

signer_block() {
	if [ -n "${SIGNER_ALG:-}" ]; then
		printf 'signer:\n  type: local\n  config:\n    algorithm: %s\n' "$SIGNER_ALG"
	fi
}

write_config() { # name https-port telemetry-port
	cat >"$WORK/$1.yaml" <<EOF
issuer: https://127.0.0.1:$2/dex
$(storage_block "$1")
web:
  https: 127.0.0.1:$2
  tlsCert: $WORK/tls.crt
  tlsKey: $WORK/tls.key
telemetry:
  http: 127.0.0.1:$3
  enableProfiling: true
logger:
  level: info
  format: json
oauth2:
  skipApprovalScreen: true
  passwordConnector: local
expiry:
  idTokens: 24h
  signingKeys: 6h
  refreshTokens:
    reuseInterval: 0s
$(signer_block)
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: $SECRET
  redirectURIs:
  - http://localhost:8000
$(exchange_connector "https://127.0.0.1:$2/dex")
enablePasswordDB: true
staticPasswords:
$(users)
EOF
}

# One user per worker: Dex keeps a single refresh token per user and client
# (a second login revokes the first chain, dexidp/dex#981), and gatehouse
# rate-limits password logins per user (10 a minute).
users() {
	local i
	for i in $(seq 0 $((WORKERS - 1))); do
		printf -- '- email: bench%d@example.com\n  hash: "%s"\n  username: bench%d\n  userID: 00000000-0000-4000-8000-%012d\n' "$i" "$HASH" "$i" "$i"
	done
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid...: user+system CPU of the processes, in clock ticks
	local p t=0
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}

rss_mb() { # pid
	ps -o rss= -p "$1" | awk '{printf "%.1f", $1/1024}'
}

wait_ready() { # name pid issuer telemetry-port
	local i
	for i in $(seq 1 300); do
		if ! kill -0 "$2" 2>/dev/null; then
			log "$1 exited during start-up; log:"
			tail -20 "$WORK/$1.log" >&2
			return 1
		fi
		if curl -fsS --max-time 2 --cacert "$WORK/ca.crt" "$3/.well-known/openid-configuration" >/dev/null 2>&1 &&
			curl -fsS --max-time 2 --cacert "$WORK/ca.crt" "$3/keys" >/dev/null 2>&1 &&
			curl -fsS --max-time 2 "http://127.0.0.1:$4/healthz/ready" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	log "$1 never became ready"
	return 1
}

loadgen() { # name issuer mode duration [label]
	timeout 400 "$WORK/loadgen" -started "$WORK/started" -issuer "$2" -ca "$WORK/ca.crt" -client kubernetes -secret "$SECRET" \
		-username 'bench%d@example.com' -password "$PASSWORD" -workers "$WORKERS" -duration "$4" \
		-warmup "$WARMUP" -mode "$3" -label "${5:-$1}" -subject-tokens "$WORK/subject-tokens" -connector github-actions
}

bench_target() { # name binary-and-args... ; ports are derived from the name
	local name=$1 port tport bin=$2
	shift
	if [ "$name" = gatehouse ]; then port=15556; tport=15558; else port=25556; tport=25558; fi
	for p in $port $tport; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "port $p is in use" >&2
			exit 1
		fi
	done
	case "$STORAGE" in
	postgres)
		dropdb -h 127.0.0.1 -U postgres --if-exists "bench_$name"
		createdb -h 127.0.0.1 -U postgres "bench_$name"
		;;
	sqlite) rm -f "$WORK/$name.db" "$WORK/$name.db-wal" "$WORK/$name.db-shm" ;;
	kubernetes) fresh_namespace "$name" ;;
	esac
	write_config "$name" "$port" "$tport"
	if [ "$STORAGE" = kubernetes ] && [ "$name" = dex ]; then
		# Dex creates its custom resource definitions at its first start
		# and may exit listing one not yet served (Kubernetes would
		# restart it): a first start to create them.
		timeout 20 "$@" "$WORK/$name.yaml" >"$WORK/$name-first-start.log" 2>&1 || true
	fi
	local issuer="https://127.0.0.1:$port/dex"
	# The storage's own processes, whose CPU per request is reported too
	# (the kubernetes storage's etcd and kube-apiserver when started here).
	BACKEND_PIDS=
	[ "$STORAGE" = kubernetes ] && BACKEND_PIDS=${CP_PIDS:-}
	log "starting $name ($STORAGE)"
	"$@" "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	wait_ready "$name" "$pid" "$issuer" "$tport"
	sleep 2
	local rss_start
	rss_start=$(rss_mb "$pid")
	log "$name ready, idle RSS ${rss_start} MB"

	local mode dur line cpid= mpid cpu0 cpu1
	for mode in $MODES; do
		dur=$DURATION
		case "$mode" in discovery | jwks) dur=$DISCOVERY_DURATION ;; esac
		local jw0="null null" jw1="null null"
		[ "$mode" = exchange ] && jw0=$(jwks_counts "$tport")
		rm -f "$WORK/started" "$WORK/cpu0"
		# The server's CPU time over the measured window (after the
		# warm-up): CPU per request does not depend on how busy the
		# shared machine is, unlike requests/s.
		(for _ in $(seq 1 1500); do [ -e "$WORK/started" ] && break; sleep 0.1; done
			sleep "${WARMUP%s}" && cpu_ticks "$pid" >"$WORK/cpu0" && cpu_ticks ${BACKEND_PIDS:-} >"$WORK/bcpu0") &
		mpid=$!
		if [ "$mode" = refresh ] && [ "$PROFILE" = 1 ]; then
			# A CPU profile of the middle of the measured run (sampling
			# at 100 Hz costs the server a few per cent).
			(for _ in $(seq 1 1500); do [ -e "$WORK/started" ] && break; sleep 0.1; done
				sleep "${WARMUP%s}" && sleep 1 && curl -fsS --max-time 60 -o "$WORK/$name-refresh.pprof" \
				"http://127.0.0.1:$tport/debug/pprof/profile?seconds=$PROFILE_SECONDS") &
			cpid=$!
		fi
		log "$name: $mode, $WORKERS workers, $dur"
		line=$(loadgen "$name" "$issuer" "$mode" "$dur")
		cpu1=$(cpu_ticks "$pid")
		[ "$mode" = exchange ] && jw1=$(jwks_counts "$tport")
		bcpu1=$(cpu_ticks ${BACKEND_PIDS:-})
		wait "$mpid" || true
		cpu0=$(cat "$WORK/cpu0" 2>/dev/null || echo "$cpu1")
		bcpu0=$(cat "$WORK/bcpu0" 2>/dev/null || echo "$bcpu1")
		echo "$line" >&2
		echo "$line" | jq -c --arg t "$name" --arg s "$STORAGE" --arg r "$rss_start" --arg p "$([ -n "$cpid" ] && [ "$mode" = refresh ] && echo 1 || echo 0)" \
			--arg c "$(((cpu1 - cpu0) * 1000 / CLK_TCK))" --arg b "$(((bcpu1 - bcpu0) * 1000 / CLK_TCK))" \
			--arg j0 "$jw0" --arg j1 "$jw1" \
			'. + {target: $t, storage: $s, rss_start_mb: ($r|tonumber), profiled: ($p == "1"), server_cpu_s: (($c|tonumber)/1000), backend_cpu_s: (($b|tonumber)/1000)}
			 | . + {jwks_fetches_metric: [($j0|split(" ")[0]|fromjson), ($j1|split(" ")[0]|fromjson)], upstream_jwks_requests: [($j0|split(" ")[1]|fromjson), ($j1|split(" ")[1]|fromjson)]}
			 | . + {server_cores: (.server_cpu_s / .seconds), server_cpu_ms_per_req: (if .requests > 0 then .server_cpu_s * 1000 / .requests else null end),
			        backend_cpu_ms_per_req: (if .requests > 0 and .backend_cpu_s > 0 then .backend_cpu_s * 1000 / .requests else null end)}' >>"$RESULTS"
		if [ -n "$cpid" ] && [ "$mode" = refresh ]; then
			wait "$cpid" || log "profile capture failed"
			go tool pprof -top -nodecount=40 "$bin" "$WORK/$name-refresh.pprof" >"$WORK/$name-pprof-top.txt" 2>/dev/null || true
			go tool pprof -top -cum -nodecount=60 "$bin" "$WORK/$name-refresh.pprof" >"$WORK/$name-pprof-cum.txt" 2>/dev/null || true
			log "profile: $WORK/$name-refresh.pprof (pprof -top in $WORK/$name-pprof-top.txt, -cum in $WORK/$name-pprof-cum.txt)"
			head -25 "$WORK/$name-pprof-top.txt" >&2
		fi
	done
	sleep 5
	local rss_end
	rss_end=$(rss_mb "$pid")
	log "$name idle RSS after the runs ${rss_end} MB"
	jq -c --arg t "$name" --arg s "$STORAGE" --arg r "$rss_end" 'if .target == $t and .storage == $s then . + {rss_end_mb: ($r|tonumber)} else . end' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
	kill "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

for STORAGE in $STORAGES; do
	bench_target gatehouse "$GATEHOUSE_BIN" serve --config
	if [ -n "${DEX_BIN:-}" ]; then
		bench_target dex "$DEX_BIN" serve
	fi
done
STORAGE=$STORAGES

echo
echo "storage=$STORAGE signer=${SIGNER_ALG:-RS256} workers=$WORKERS refresh=$DURATION discovery/jwks=$DISCOVERY_DURATION warmup=$WARMUP cpus=$(nproc) (load generator on the same machine)"
jq -r -s '
  ["target","storage","mode","req/s","p50 ms","p90 ms","p99 ms","max ms","errors","server cores","server CPU ms/req","backend CPU ms/req","loadgen cores","RSS idle start MB","RSS idle end MB"],
  (.[] | [.target, .storage, .mode, (.rps*10|round/10), .p50_ms, .p90_ms, .p99_ms, .max_ms, .errors,
          (.server_cores*100|round/100), ((.server_cpu_ms_per_req // 0)*1000|round/1000), (if .backend_cpu_ms_per_req then (.backend_cpu_ms_per_req*1000|round/1000) else "-" end),
          ((.client_cpu_s // 0)/.seconds*100|round/100), .rss_start_mb, .rss_end_mb])
  | @tsv' "$RESULTS" | column -t -s $'\t'
if [ -n "${DEX_BIN:-}" ]; then
	jq -r -s 'map(select(.mode=="refresh")) | group_by(.storage)[] | (map(select(.target=="gatehouse"))[0].rps / map(select(.target=="dex"))[0].rps) as $x | "refresh throughput gatehouse/dex on \(.[0].storage): \($x*100|round/100)x"' "$RESULTS"
fi
if [ "$EXCHANGE" = 1 ]; then
	jq -r -s '.[] | select(.mode=="exchange") | "\(.target) exchange: JWKS fetches before/after the run: metric gatehouse_connector_jwks_fetches_total \(.jwks_fetches_metric[0]) -> \(.jwks_fetches_metric[1]), requests at the workload issuer \(.upstream_jwks_requests[0]) -> \(.upstream_jwks_requests[1]) (all servers so far), for \(.requests) exchanges"' "$RESULTS"
fi
echo "results: $RESULTS"
