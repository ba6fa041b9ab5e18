// Command audit-query measures filtered queries over a large audit store:
// it fills a SQLite store with realistic rows (5 million by default,
// generated inside SQLite so that loading takes minutes, not hours), runs
// the store's own maintenance (as the retention loop does), then runs a
// mix of filtered first pages and follow-on pages through the same
// store.Query the CLI and the page use, and prints latency percentiles.
//
//	go run ./bench/audit-query -db /tmp/audit-5m.db -rows 5000000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

const (
	humans = 10
	sas    = 40
	nodes  = 10
	nsN    = 30
	resN   = 20
)

func main() {
	dbPath := flag.String("db", "/tmp/audit-5m.db", "SQLite file; kept between runs (use -rebuild to start over)")
	rows := flag.Int("rows", 5_000_000, "events to generate")
	rebuild := flag.Bool("rebuild", false, "generate the data again")
	runs := flag.Int("runs", 40, "runs of each query kind")
	flag.Parse()
	ctx := context.Background()

	if _, err := os.Stat(*dbPath); *rebuild || err != nil {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(*dbPath + suffix)
		}
		start := time.Now()
		if err := generate(ctx, *dbPath, *rows); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("generated %d events in %.0fs\n", *rows, time.Since(start).Seconds())
	}
	db, err := store.Open(ctx, "sqlite3", *dbPath)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if err := db.Optimize(ctx); err != nil {
		log.Fatal(err)
	}
	n, err := db.Count(ctx)
	if err != nil {
		log.Fatal(err)
	}
	info, _ := os.Stat(*dbPath)
	fmt.Printf("store: %d events, %d MB; optimize took %.1fs\n", n, info.Size()>>20, time.Since(start).Seconds())

	var last query.Filter
	if evs, _, err := db.Query(ctx, query.Filter{Limit: 1}); err != nil || len(evs) == 0 {
		log.Fatalf("empty store: %v", err)
	} else {
		last.Until = evs[0].Time.Add(time.Second)
	}
	now := last.Until
	r := rand.New(rand.NewPCG(7, 7))
	human := func() string { return fmt.Sprintf("oidc:user%d", r.IntN(humans)) }
	ns := func() string { return fmt.Sprintf("ns-%d", r.IntN(nsN)) }
	res := func() string { return fmt.Sprintf("res-%d", r.IntN(resN)) }
	kinds := []struct {
		name string
		f    func() query.Filter
	}{
		{"user (a person)", func() query.Filter { return query.Filter{User: human()} }},
		{"user, last 24h", func() query.Filter { return query.Filter{User: human(), Since: now.Add(-24 * time.Hour)} }},
		{"group (a team)", func() query.Filter { return query.Filter{Group: fmt.Sprintf("oidc:exampleorg:team-%d", r.IntN(4))} }},
		{"group, verb delete", func() query.Filter {
			return query.Filter{Group: fmt.Sprintf("oidc:exampleorg:team-%d", r.IntN(4)), Verb: "delete"}
		}},
		{"verb delete, resource", func() query.Filter { return query.Filter{Verb: "delete", Resource: res()} }},
		{"resource, namespace", func() query.Filter { return query.Filter{Resource: res(), Namespace: ns()} }},
		{"resource, namespace, name", func() query.Filter {
			return query.Filter{Resource: res(), Namespace: ns(), Name: fmt.Sprintf("obj-%d", r.IntN(1000))}
		}},
		{"code 403", func() query.Filter { return query.Filter{Code: 403} }},
		{"code 500 (rare)", func() query.Filter { return query.Filter{Code: 500} }},
		{"code 403, user", func() query.Filter { return query.Filter{Code: 403, User: human()} }},
		{"verb get, namespace", func() query.Filter { return query.Filter{Verb: "get", Namespace: ns()} }},
		{"one hour, 3 days ago", func() query.Filter {
			s := now.Add(-72*time.Hour + time.Duration(r.IntN(3600))*time.Second)
			return query.Filter{Since: s, Until: s.Add(time.Hour)}
		}},
		{"user, page 5", func() query.Filter { return query.Filter{User: human(), Limit: -5} }},
	}
	var all []time.Duration
	fmt.Printf("%-28s %8s %8s %8s %6s\n", "query (first page of 50)", "p50", "p95", "max", "rows")
	for _, k := range kinds {
		var lat []time.Duration
		got := 0
		for range *runs {
			f := k.f()
			pages := 1
			if f.Limit < 0 {
				pages, f.Limit = -f.Limit, 0
			}
			t := time.Now()
			for range pages {
				evs, next, err := db.Query(ctx, f)
				if err != nil {
					log.Fatal(err)
				}
				got += len(evs)
				if next == nil {
					break
				}
				f.Before = next
			}
			lat = append(lat, time.Since(t))
		}
		slices.Sort(lat)
		all = append(all, lat...)
		fmt.Printf("%-28s %8s %8s %8s %6d\n", k.name, round(pct(lat, 50)), round(pct(lat, 95)), round(lat[len(lat)-1]), got / *runs)
	}
	slices.Sort(all)
	fmt.Printf("%-28s %8s %8s %8s\n", "all", round(pct(all, 50)), round(pct(all, 95)), round(all[len(all)-1]))
}

func pct(s []time.Duration, p int) time.Duration { return s[(len(s)-1)*p/100] }

func round(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

// generate fills a new store with rows events over the 7 days before now;
// the store's trigger fills the group index.
func generate(ctx context.Context, path string, rows int) error {
	db, err := store.Open(ctx, "sqlite3", path) // the real schema
	if err != nil {
		return err
	}
	db.Close()
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	end := time.Now().UnixNano()
	step := int64(7*24*time.Hour) / int64(rows)
	// Humans make 5% of the events, service accounts 60%, nodes 35%.
	const ins = `
WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i+1 FROM c WHERE i+1 < ?),
r AS MATERIALIZED (SELECT i, abs(random()) % 1000 AS ru, abs(random()) % 1000 AS rv, abs(random()) % 1000 AS rc,
             abs(random()) % 20 AS rr, abs(random()) % 30 AS rn, abs(random()) % 1000 AS ro FROM c),
s AS MATERIALIZED (SELECT r.*,
             CASE WHEN ru < 50 THEN 'oidc:user' || (ru % 10)
                  WHEN ru < 650 THEN printf('system:serviceaccount:ns-%d:sa-%d', (ru % 40) % 30, ru % 40)
                  ELSE 'system:node:node-' || (ru % 10) END AS uname,
             CASE WHEN ru < 50 THEN printf('["oidc:exampleorg:team-%d","oidc:exampleorg:dev","system:authenticated"]', (ru % 10) % 4)
                  WHEN ru < 650 THEN printf('["system:serviceaccounts","system:serviceaccounts:ns-%d","system:authenticated"]', (ru % 40) % 30)
                  ELSE '["system:nodes","system:authenticated"]' END AS ugroups,
             CASE WHEN rv < 350 THEN 'get' WHEN rv < 500 THEN 'list' WHEN rv < 750 THEN 'watch' WHEN rv < 830 THEN 'create'
                  WHEN rv < 900 THEN 'update' WHEN rv < 970 THEN 'patch' ELSE 'delete' END AS verb,
             CASE WHEN rc < 900 THEN 200 WHEN rc < 930 THEN 201 WHEN rc < 950 THEN 403 WHEN rc < 990 THEN 404 WHEN rc < 999 THEN 409 ELSE 500 END AS code
      FROM r)
INSERT INTO events (ts, audit_id, stage, level, verb, uri, username, groups, resource, subresource, namespace, name, api_group, code, source, user_agent, source_ip, raw)
SELECT ? + i * ?, printf('%08x-0000-4000-8000-%012x', i, i), 'ResponseComplete', 'Metadata', verb,
       printf('/api/v1/namespaces/ns-%d/res-%d/obj-%d', rn, rr, ro), uname, ugroups,
       'res-' || rr, '', 'ns-' || rn, 'obj-' || ro, '', code, 'cp-' || (i % 3), 'kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0', '10.0.0.' || (i % 250),
       CAST(printf('{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%08x-0000-4000-8000-%012x","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns-%d/res-%d/obj-%d","verb":"%s","user":{"username":"%s","groups":%s},"sourceIPs":["10.0.0.%d"],"userAgent":"kubectl/v1.33.1","objectRef":{"resource":"res-%d","namespace":"ns-%d","name":"obj-%d","apiVersion":"v1"},"responseStatus":{"code":%d},"requestReceivedTimestamp":"2026-01-01T00:00:00.000000Z","stageTimestamp":"2026-01-01T00:00:00.003000Z"}',
              i, i, rn, rr, ro, verb, uname, ugroups, i % 250, rr, rn, ro, code) AS BLOB)
FROM s`
	const chunkRows = 250_000
	for lo := 0; lo < rows; lo += chunkRows {
		hi := min(lo+chunkRows, rows)
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, ins, lo, hi, end-int64(rows)*step, step); err != nil {
			tx.Rollback()
			return fmt.Errorf("generate: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return err
		}
		fmt.Printf("  %d rows\n", hi)
	}
	_, err = c.ExecContext(ctx, "INSERT INTO groups_seen SELECT DISTINCT grp FROM event_groups WHERE true ON CONFLICT DO NOTHING")
	return err
}
