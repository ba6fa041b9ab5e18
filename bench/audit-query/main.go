// Command audit-query measures filtered queries over a large audit store:
// it fills a SQLite store with realistic rows (5 million by default,
// stored through store.Insert as the sink stores them), runs
// the store's own maintenance (as the retention loop does), then runs a
// mix of filtered first pages and follow-on pages through the same
// store.Query the CLI and the page use, and prints latency percentiles.
// With -cli it runs the same filters through a gatehouse binary instead
// (`gatehouse audit query --limit 50`, timed from fork to exit: process
// start, opening the store, the query and the table), then streams filters
// that match at least -jsonl-rows events as JSON lines.
//
//	go run ./bench/audit-query -db /tmp/audit-5m.db -rows 5000000
//	go build -o /tmp/gatehouse ./cmd/gatehouse
//	go run ./bench/audit-query -db /tmp/audit-5m.db -cli /tmp/gatehouse
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
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
	cli := flag.String("cli", "", "a gatehouse binary: time whole `audit query` commands instead of store.Query")
	jsonlRows := flag.Int("jsonl-rows", 10000, "with -cli: events per JSON lines stream")
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
	var last query.Filter
	var db *store.DB
	if *cli != "" {
		// The binary opens the store itself (migrating it to its own
		// schema, if need be); this process must not migrate it to ours.
		last.Until = newest(*cli, *dbPath).Add(time.Second)
	} else {
		var err error
		if db, err = store.Open(ctx, "sqlite3", *dbPath); err != nil {
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
		if evs, _, err := db.Query(ctx, query.Filter{Limit: 1}); err != nil || len(evs) == 0 {
			log.Fatalf("empty store: %v", err)
		} else {
			last.Until = evs[0].Time.Add(time.Second)
		}
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
		{"source", func() query.Filter { return query.Filter{Source: fmt.Sprintf("cp-%d", r.IntN(3))} }},
		{"verb delete", func() query.Filter { return query.Filter{Verb: "delete"} }},
		{"namespace", func() query.Filter { return query.Filter{Namespace: ns()} }},
		{"name", func() query.Filter { return query.Filter{Name: fmt.Sprintf("obj-%d", r.IntN(1000))} }},
		{"name, user", func() query.Filter { return query.Filter{Name: fmt.Sprintf("obj-%d", r.IntN(1000)), User: human()} }},
		{"code 404, namespace", func() query.Filter { return query.Filter{Code: 404, Namespace: ns()} }},
		{"code 500, resource, ns", func() query.Filter { return query.Filter{Code: 500, Resource: res(), Namespace: ns()} }},
		{"user, verb delete, ns", func() query.Filter { return query.Filter{User: human(), Verb: "delete", Namespace: ns()} }},
		{"user, until 2 days ago", func() query.Filter { return query.Filter{User: human(), Until: now.Add(-48 * time.Hour)} }},
		{"user, page 5", func() query.Filter { return query.Filter{User: human(), Limit: -5} }},
	}
	if *cli != "" {
		for i := 0; i < len(kinds); i++ {
			if kinds[i].name == "user, page 5" {
				kinds = slices.Delete(kinds, i, i+1)
				i--
			}
		}
		runCLI(*cli, *dbPath, *runs, *jsonlRows, kinds, now)
		return
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

type kind = struct {
	name string
	f    func() query.Filter
}

// args are f as `gatehouse audit query` flags.
func args(f query.Filter) []string {
	var a []string
	for _, kv := range [][2]string{{"--user", f.User}, {"--group", f.Group}, {"--verb", f.Verb}, {"--resource", f.Resource},
		{"--namespace", f.Namespace}, {"--name", f.Name}, {"--source", f.Source}} {
		if kv[1] != "" {
			a = append(a, kv[0], kv[1])
		}
	}
	if f.Code != 0 {
		a = append(a, "--code", strconv.Itoa(f.Code))
	}
	if !f.Since.IsZero() {
		a = append(a, "--since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		a = append(a, "--until", f.Until.Format(time.RFC3339Nano))
	}
	return a
}

// newest asks bin for the newest event's request time.
func newest(bin, dbPath string) time.Time {
	out, err := exec.Command(bin, "audit", "query", "--store", dbPath, "--limit", "1", "-o", "jsonl").Output()
	if err != nil {
		log.Fatalf("%s audit query: %v", bin, err)
	}
	var e struct {
		T time.Time `json:"requestReceivedTimestamp"`
	}
	if err := json.Unmarshal(out, &e); err != nil || e.T.IsZero() {
		log.Fatalf("newest event: %v (%q)", err, out)
	}
	info, _ := os.Stat(dbPath)
	fmt.Printf("store: %d MB, newest event %s\n", info.Size()>>20, e.T.Format(time.RFC3339))
	return e.T
}

// runCLI times whole `gatehouse audit query` commands: each kind as a
// table of 50, then JSON lines streams of jsonlRows events.
func runCLI(bin, dbPath string, runs, jsonlRows int, kinds []kind, now time.Time) {
	var cpu []time.Duration // user + system time of each command
	run := func(extra []string) (time.Duration, int) {
		cmd := exec.Command(bin, append([]string{"audit", "query", "--store", dbPath}, extra...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t := time.Now()
		if err := cmd.Run(); err != nil {
			log.Fatalf("%v: %v: %s", cmd.Args, err, errb.Bytes())
		}
		d := time.Since(t)
		cpu = append(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		return d, bytes.Count(out.Bytes(), []byte{'\n'})
	}
	fmt.Printf("whole command, table of 50 (%s)\n", bin)
	fmt.Printf("%-28s %8s %8s %8s %6s %9s %9s\n", "query", "p50", "p95", "max", "rows", "cpu p50", "cpu p95")
	var all, allCPU []time.Duration
	for _, k := range kinds {
		var lat []time.Duration
		cpu = cpu[:0]
		got := 0
		for range runs {
			d, n := run(append(args(k.f()), "--limit", "50"))
			lat = append(lat, d)
			got += n - 1 // the table's header
		}
		slices.Sort(lat)
		slices.Sort(cpu)
		all, allCPU = append(all, lat...), append(allCPU, cpu...)
		fmt.Printf("%-28s %8s %8s %8s %6d %9s %9s\n", k.name, round(pct(lat, 50)), round(pct(lat, 95)), round(lat[len(lat)-1]), got/runs, round(pct(cpu, 50)), round(pct(cpu, 95)))
	}
	slices.Sort(all)
	slices.Sort(allCPU)
	fmt.Printf("%-28s %8s %8s %8s %6s %9s %9s\n", "all", round(pct(all, 50)), round(pct(all, 95)), round(all[len(all)-1]), "", round(pct(allCPU, 50)), round(pct(allCPU, 95)))
	fmt.Printf("\nJSON lines, --limit %d\n", jsonlRows)
	for _, f := range []query.Filter{{Code: 403}, {Verb: "delete"}, {User: "oidc:user3"}, {Namespace: "ns-7", Verb: "get"},
		{Since: now.Add(-72 * time.Hour), Until: now.Add(-71 * time.Hour)}} {
		var lat []time.Duration
		cpu = cpu[:0]
		n := 0
		for range max(runs/8, 3) {
			d, rows := run(append(args(f), "--limit", strconv.Itoa(jsonlRows), "-o", "jsonl"))
			lat = append(lat, d)
			n = rows
		}
		slices.Sort(lat)
		slices.Sort(cpu)
		fmt.Printf("%-40q %6d rows  p50 %8s  max %8s  cpu p50 %8s\n", strings.Join(args(f), " "), n, round(pct(lat, 50)), round(lat[len(lat)-1]), round(pct(cpu, 50)))
	}
}

func pct(s []time.Duration, p int) time.Duration { return s[(len(s)-1)*p/100] }

func round(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

// generate fills a new store with rows events over the 7 days before
// now, through store.Insert (the sink's path: dictionary, batches of 400
// compressed together, the name index's buckets), with synchronous=OFF
// since a crash here only means generating again.
func generate(ctx context.Context, path string, rows int) error {
	db, err := store.Open(ctx, "sqlite3", path+"?_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer db.Close()
	end := time.Now().UnixNano()
	step := int64(7*24*time.Hour) / int64(rows)
	start := end - int64(rows)*step
	const batch = 400
	verbs := []struct {
		upTo int
		verb string
	}{{350, "get"}, {500, "list"}, {750, "watch"}, {830, "create"}, {900, "update"}, {970, "patch"}, {1000, "delete"}}
	codes := []struct{ upTo, code int }{{900, 200}, {930, 201}, {950, 403}, {990, 404}, {999, 409}, {1000, 500}}
	// Batches are made by two goroutines and stored in order of their
	// first index, as a live sink would, several at once (group commit).
	var next atomic.Int64
	var done atomic.Int64
	errc := make(chan error, 2)
	for w := range 2 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for {
				lo := int(next.Add(batch)) - batch
				if lo >= rows {
					errc <- nil
					return
				}
				hi := min(lo+batch, rows)
				evs := make([]event.Event, 0, hi-lo)
				for i := lo; i < hi; i++ {
					ru, rv, rc, rr, rn, ro := r.IntN(1000), r.IntN(1000), r.IntN(1000), r.IntN(resN), r.IntN(nsN), r.IntN(1000)
					// Humans make 5% of the events, service accounts 60%, nodes 35%.
					var user string
					var groups []string
					switch {
					case ru < 50:
						user = fmt.Sprintf("oidc:user%d", ru%humans)
						groups = []string{fmt.Sprintf("oidc:exampleorg:team-%d", (ru%humans)%4), "oidc:exampleorg:dev", "system:authenticated"}
					case ru < 650:
						user = fmt.Sprintf("system:serviceaccount:ns-%d:sa-%d", (ru%sas)%nsN, ru%sas)
						groups = []string{"system:serviceaccounts", fmt.Sprintf("system:serviceaccounts:ns-%d", (ru%sas)%nsN), "system:authenticated"}
					default:
						user = fmt.Sprintf("system:node:node-%d", ru%nodes)
						groups = []string{"system:nodes", "system:authenticated"}
					}
					verb := ""
					for _, v := range verbs {
						if rv < v.upTo {
							verb = v.verb
							break
						}
					}
					code := 0
					for _, c := range codes {
						if rc < c.upTo {
							code = c.code
							break
						}
					}
					id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
					ns, res, name := fmt.Sprintf("ns-%d", rn), fmt.Sprintf("res-%d", rr), fmt.Sprintf("obj-%d", ro)
					uri := fmt.Sprintf("/api/v1/namespaces/%s/%s/%s", ns, res, name)
					gj, _ := json.Marshal(groups)
					ts := time.Unix(0, start+int64(i)*step).UTC()
					raw := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete","requestURI":%q,"verb":%q,"user":{"username":%q,"groups":%s},"sourceIPs":["10.0.0.%d"],"userAgent":"kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0","objectRef":{"resource":%q,"namespace":%q,"name":%q,"apiVersion":"v1"},"responseStatus":{"code":%d},"requestReceivedTimestamp":%q,"stageTimestamp":%q}`,
						id, uri, verb, user, gj, i%250, res, ns, name, code, ts.Format(time.RFC3339Nano), ts.Add(3*time.Millisecond).Format(time.RFC3339Nano))
					evs = append(evs, event.Event{Time: ts, AuditID: id, Stage: "ResponseComplete", Level: "Metadata", Verb: verb, URI: uri,
						User: user, Groups: groups, Resource: res, Namespace: ns, Name: name, Code: code,
						Source: fmt.Sprintf("cp-%d", i%3), UserAgent: "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0",
						SourceIP: fmt.Sprintf("10.0.0.%d", i%250), Raw: json.RawMessage(raw)})
				}
				if _, err := db.Insert(ctx, evs); err != nil {
					errc <- fmt.Errorf("generate: %w", err)
					return
				}
				if n := done.Add(int64(len(evs))); n%500_000 < batch {
					fmt.Printf("  %d rows\n", n)
				}
			}
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}
