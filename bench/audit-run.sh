#!/usr/bin/env bash
# Runs the audit trail's measurements (docs/benchmarks.md, section "Audit").
# Heavy: about 15 minutes on 2 cores; the 5 million events for the query
# benchmark are generated once (80 s, kept in /tmp between runs). With
# GATEHOUSE_TEST_POSTGRES set it also measures ingest into PostgreSQL. Run
# it on a quiet machine. AUDIT_ONLY_INGEST=1 stops after ingest and memory.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; uptime; go version
echo "== decoding a batch of 400 events (light struct vs auditv1.EventList)"; uptime
go test -run '^$' -bench 'Decode' -benchtime 2s ./internal/audit/event/
echo "== store insert, batches of 400"; uptime
go test -run '^$' -bench 'InsertSQLite' -benchtime 200x ./internal/audit/store/
echo "== sink ingest over HTTP, 60 s, zero loss counted by auditID"; uptime
go run ./bench/audit-ingest -db /tmp/audit-ingest.db -duration "${INGEST_DURATION:-60s}"
if [ -n "${GATEHOUSE_TEST_POSTGRES:-}" ]; then
  echo "== sink ingest into PostgreSQL (a database created for the run)"
  go run ./bench/audit-ingest -postgres "$GATEHOUSE_TEST_POSTGRES" -duration "${INGEST_DURATION:-60s}"
fi
echo "== peak memory of a real gatehouse process: 8 batches of 60 MiB at once, budget 64 MiB, kube-apiserver's client and retries"; uptime
go build -o /tmp/gatehouse-bench ./cmd/gatehouse
go run ./bench/audit-memory -gatehouse /tmp/gatehouse-bench -layout sink -budget 64 -batches 8 -batch-mib 60 -gomemlimit 96MiB
go run ./bench/audit-memory -gatehouse /tmp/gatehouse-bench -layout serve -budget 64 -batches 8 -batch-mib 60
if [ -n "${AUDIT_ONLY_INGEST:-}" ]; then exit 0; fi
echo "== filtered queries over 5 million events"; uptime
go run ./bench/audit-query -db /tmp/audit-5m.db -rows 5000000 -runs 40  # add -rebuild after a change of the stored layout
echo "== whole gatehouse audit query commands over 5 million events: table of 50, JSON lines of 10,000"; uptime
go run ./bench/audit-query -db /tmp/audit-5m.db -runs 20 -cli /tmp/gatehouse-bench
echo "== kill -9 fault tests (sink, shipper)"; uptime
go test -count=1 -run 'TestSinkKill9|TestKill9Resume' -v ./internal/audit/sink/ ./internal/audit/ship/ 2>&1 | grep -E 'kills|^(---|ok|FAIL)'
