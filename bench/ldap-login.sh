#!/usr/bin/env bash
# bench/ldap-login.sh: latency of an LDAP login (the password grant through
# an ldap connector: user search, bind as the user, group search) against a
# real slapd, gatehouse and then Dex, one server at a time on 127.0.0.1,
# with the same Dex-format config for both apart from ports and storage file.
# The directory is the tests' fixture (internal/testutil/slapd) plus USERS
# users in group bench-team; the connector speaks LDAPS to it.
#
#   bench/ldap-login.sh                          # gatehouse only
#   DEX_BIN=/path/to/dex bench/ldap-login.sh     # gatehouse, then Dex
#
# Environment:
#   DEX_BIN        Dex binary to compare with (not built here); unset: gatehouse only
#   GATEHOUSE_BIN  gatehouse binary (default: built from this tree into the work dir)
#   WORKERS        concurrent workers (8)
#   USERS          directory users the workers rotate through (1000): gatehouse
#                  allows 10 login attempts a minute per user
#   DURATION       run length per server (20s); WARMUP not counted (2s)
#   WORK           work dir (default: a new temp dir; kept, it holds logs and results)
#
# Needs slapd and ldap-utils (apt-get install -y slapd ldap-utils).
set -euo pipefail

cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-8}
USERS=${USERS:-1000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
WORK=${WORK:-$(mktemp -d /tmp/gatehouse-ldap-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
SECRET=bench-secret-$RANDOM$RANDOM
PASSWORD=bench-password-$RANDOM
PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

log "work dir $WORK"
if [ -z "${GATEHOUSE_BIN:-}" ]; then
	GATEHOUSE_BIN="$WORK/gatehouse"
	timeout 300 go build -o "$GATEHOUSE_BIN" ./cmd/gatehouse
fi
timeout 300 go build -o "$WORK/loadgen" ./bench/loadgen
timeout 300 go build -o "$WORK/ldapdir" ./bench/ldapdir

mkdir -p "$WORK/slapd"
"$WORK/ldapdir" -dir "$WORK/slapd" -users "$USERS" -password "$PASSWORD" >"$WORK/ldapdir.json" 2>"$WORK/ldapdir.log" &
PIDS+=("$!")
for _ in $(seq 1 300); do [ -s "$WORK/ldapdir.json" ] && break; sleep 0.1; done
[ -s "$WORK/ldapdir.json" ] || { log "slapd did not start:"; cat "$WORK/ldapdir.log" >&2; exit 1; }
LDAPS=$(jq -r .tls_host "$WORK/ldapdir.json")
LDAP_CA=$(jq -r .ca_file "$WORK/ldapdir.json")
SERVICE_DN=$(jq -r .service_dn "$WORK/ldapdir.json")
SERVICE_PW=$(jq -r .service_pw "$WORK/ldapdir.json")
log "slapd on $LDAPS"

openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca.key" -subj "/CN=bench CA" -days 1 -out "$WORK/ca.crt" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/tls.key" 2>/dev/null
openssl req -new -key "$WORK/tls.key" -subj "/CN=127.0.0.1" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
	-days 1 -extfile "$WORK/ext.cnf" -out "$WORK/tls.crt" 2>/dev/null
chmod 600 "$WORK"/*.key

write_config() { # name https-port telemetry-port
	cat >"$WORK/$1.yaml" <<YAML
issuer: https://127.0.0.1:$2/dex
storage:
  type: sqlite3
  config:
    file: $WORK/$1.db
web:
  https: 127.0.0.1:$2
  tlsCert: $WORK/tls.crt
  tlsKey: $WORK/tls.key
  # The load generator stands for users behind a proxy: each login comes
  # with its own X-Forwarded-For, so gatehouse's per-address login limit
  # (60 a minute) does not cap the run. Successful logins do not count
  # against the per-user limit.
  clientRemoteIP:
    header: X-Forwarded-For
    trustedProxies: [127.0.0.1/32]
telemetry:
  http: 127.0.0.1:$3
logger:
  level: warn
  format: json
oauth2:
  skipApprovalScreen: true
  passwordConnector: ldap
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: $SECRET
  redirectURIs:
  - http://localhost:8000
connectors:
- type: ldap
  id: ldap
  name: OpenLDAP
  config:
    host: $LDAPS
    rootCA: $LDAP_CA
    bindDN: $SERVICE_DN
    bindPW: $SERVICE_PW
    userSearch:
      baseDN: ou=People,dc=example,dc=org
      filter: "(objectClass=inetOrgPerson)"
      username: uid
      idAttr: uid
      emailAttr: mail
      nameAttr: cn
      preferredUsernameAttr: uid
    groupSearch:
      baseDN: ou=Groups,dc=example,dc=org
      filter: "(objectClass=groupOfNames)"
      userMatchers:
      - userAttr: DN
        groupAttr: member
      nameAttr: cn
YAML
}

bench_target() { # name binary-and-args...
	local name=$1 port tport
	shift
	if [ "$name" = gatehouse ]; then port=15566; tport=15568; else port=25566; tport=25568; fi
	rm -f "$WORK/$name.db"*
	write_config "$name" "$port" "$tport"
	local issuer="https://127.0.0.1:$port/dex"
	log "starting $name"
	"$@" "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || { log "$name exited:"; tail -20 "$WORK/$name.log" >&2; exit 1; }
		curl -fsS --max-time 2 --cacert "$WORK/ca.crt" "$issuer/.well-known/openid-configuration" >/dev/null 2>&1 && break
		sleep 0.1
	done
	log "$name: password grant through ldap, $WORKERS workers, $DURATION"
	local line
	line=$(timeout 400 "$WORK/loadgen" -issuer "$issuer" -ca "$WORK/ca.crt" -client kubernetes -secret "$SECRET" \
		-username 'bench%d' -password "$PASSWORD" -workers "$WORKERS" -duration "$DURATION" -warmup "$WARMUP" \
		-mode password -xff -users "$USERS" -label "$name")
	echo "$line" >&2
	echo "$line" | jq -c --arg t "$name" '. + {target: $t}' >>"$RESULTS"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

bench_target gatehouse "$GATEHOUSE_BIN" serve --config
if [ -n "${DEX_BIN:-}" ]; then
	bench_target dex "$DEX_BIN" serve
fi

echo
echo "ldap login (password grant), workers=$WORKERS users=$USERS duration=$DURATION warmup=$WARMUP cpus=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) (slapd and the load generator on the same machine)"
jq -r -s '
  ["target","logins/s","p50 ms","p90 ms","p99 ms","max ms","errors"],
  (.[] | [.target, (.rps*10|round/10), .p50_ms, .p90_ms, .p99_ms, .max_ms, .errors])
  | @tsv' "$RESULTS" | column -t -s $'\t'
echo "results: $RESULTS"
