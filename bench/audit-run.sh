#!/usr/bin/env bash
# Runs the audit trail's measurements (docs/benchmarks.md, section "Audit").
# Heavy: about 8 minutes on 2 cores; the 5 million events for the query
# benchmark are generated once (80 s, kept in /tmp between runs). With
# GATEHOUSE_TEST_POSTGRES set it also measures ingest into PostgreSQL. Run
# it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; uptime; go version
echo "== decoding a batch of 400 events (light struct vs auditv1.EventList)"
go test -run '^$' -bench 'Decode' -benchtime 2s ./internal/audit/event/
echo "== store insert, batches of 400"
go test -run '^$' -bench 'InsertSQLite' -benchtime 200x ./internal/audit/store/
echo "== sink ingest over HTTP, 60 s, zero loss counted by auditID"
go run ./bench/audit-ingest -db /tmp/audit-ingest.db -duration "${INGEST_DURATION:-60s}"
if [ -n "${GATEHOUSE_TEST_POSTGRES:-}" ]; then
  echo "== sink ingest into PostgreSQL (a database created for the run)"
  go run ./bench/audit-ingest -postgres "$GATEHOUSE_TEST_POSTGRES" -duration "${INGEST_DURATION:-60s}"
fi
echo "== filtered queries over 5 million events"
go run ./bench/audit-query -db /tmp/audit-5m.db -rows 5000000 -runs 40  # add -rebuild after a schema change
echo "== kill -9 fault tests (sink, shipper)"
go test -count=1 -run 'TestSinkKill9|TestKill9Resume' -v ./internal/audit/sink/ ./internal/audit/ship/ 2>&1 | grep -E 'kills|^(---|ok|FAIL)'
