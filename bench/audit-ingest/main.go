// Command audit-ingest measures the audit sink's sustained ingest into
// SQLite (or, with -postgres, PostgreSQL): several senders (as several kube-apiservers would) POST
// EventLists of 400 realistic ~1 KB events to the real sink over loopback
// HTTP, retrying on 429/503 as kube-apiserver's webhook backend does. At
// the end it counts the store by auditID: every acknowledged event must be
// there exactly once.
//
//	go run ./bench/audit-ingest -db /tmp/audit-ingest.db -duration 60s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

func main() {
	dbPath := flag.String("db", "/tmp/audit-ingest.db", "SQLite file (removed first)")
	duration := flag.Duration("duration", 60*time.Second, "how long to send")
	senders := flag.Int("senders", 4, "concurrent senders")
	batch := flag.Int("batch", 400, "events per batch")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run")
	pragmas := flag.String("pragmas", "", "extra SQLite pragmas, e.g. ?_pragma=synchronous(NORMAL)")
	postgres := flag.String("postgres", "", "measure PostgreSQL instead: a server URL; a database is created for the run and dropped after it")
	flag.Parse()

	ctx := context.Background()
	var db *store.DB
	var err error
	if *postgres != "" {
		dsn, drop, err := tempDatabase(ctx, *postgres)
		if err != nil {
			log.Fatal(err)
		}
		defer drop()
		if db, err = store.Open(ctx, "postgres", dsn); err != nil {
			log.Fatal(err)
		}
	} else {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(*dbPath + suffix)
		}
		if db, err = store.Open(ctx, "sqlite3", *dbPath+*pragmas); err != nil {
			log.Fatal(err)
		}
	}
	defer db.Close()
	h, err := sink.New(sink.Options{Store: db, BearerTokens: []string{"bench"}})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/audit/webhook"

	// Templates: real events, whose auditIDs are overwritten per send with
	// unique ones of the same length, so sending costs no generation.
	const templates = 64
	type tmpl struct {
		body []byte
		ids  []int // offsets of the 36-byte auditIDs
		tss  []int // offsets of the requestReceivedTimestamps
	}
	var tmpls []tmpl
	g := auditgen.New(1, time.Now(), time.Millisecond)
	size := 0
	for range templates {
		b := event.EncodeList(g.Batch(*batch))
		size += len(b)
		t := tmpl{body: b}
		key := []byte(`"auditID":"`)
		for i := 0; ; {
			j := bytes.Index(b[i:], key)
			if j < 0 {
				break
			}
			t.ids = append(t.ids, i+j+len(key))
			i += j + len(key)
		}
		tkey := []byte(`"requestReceivedTimestamp":"`)
		for i := 0; ; {
			j := bytes.Index(b[i:], tkey)
			if j < 0 {
				break
			}
			t.tss = append(t.tss, i+j+len(tkey))
			i += j + len(tkey)
		}
		if len(t.ids) != *batch || len(t.tss) != *batch {
			log.Fatalf("found %d auditIDs in a batch of %d", len(t.ids), *batch)
		}
		tmpls = append(tmpls, t)
	}
	fmt.Printf("events: %d per batch, %d bytes per event on average\n", *batch, size/templates / *batch)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var acked, retries, batches atomic.Int64
	var seq atomic.Int64
	deadline := time.Now().Add(*duration)
	start := time.Now()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *senders}}
	var wg sync.WaitGroup
	for s := range *senders {
		wg.Go(func() {
			body := make([]byte, 0, 1<<20)
			for n := s; time.Now().Before(deadline); n += *senders {
				t := tmpls[n%templates]
				body = append(body[:0], t.body...)
				// Events of this moment, as a live apiserver sends them.
				ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
				for i, off := range t.ids {
					// 36 bytes: the sender and a sequence number.
					copy(body[off:off+36], fmt.Sprintf("bench%02d-%028d", s, seq.Add(1)))
					copy(body[t.tss[i]:t.tss[i]+len(ts)], ts)
				}
				for {
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer bench")
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						log.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
					if resp.StatusCode != 429 && resp.StatusCode != 503 {
						log.Fatalf("status %d", resp.StatusCode)
					}
					retries.Add(1)
					ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(min(time.Duration(ra)*time.Second, 100*time.Millisecond))
				}
				acked.Add(int64(*batch))
				batches.Add(1)
			}
		})
	}
	// Report every 5 s, to show the rate is sustained.
	done := make(chan struct{})
	go func() {
		last, lastT := int64(0), start
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Second):
			}
			now, n := time.Now(), acked.Load()
			fmt.Printf("  %5.0fs  %8.0f events/s\n", now.Sub(start).Seconds(), float64(n-last)/now.Sub(lastT).Seconds())
			last, lastT = n, now
		}
	}()
	wg.Wait()
	close(done)
	elapsed := time.Since(start)
	srv.Shutdown(ctx)

	n := acked.Load()
	// CPU time per event (senders included) says more than events/s on a
	// shared machine, where the rate follows the other tenants' load.
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("CPU (user+sys, whole process, senders included): %.1fs, %.1f µs per event\n", cpu.Seconds(), float64(cpu.Microseconds())/float64(n))
	fmt.Printf("acknowledged %d events in %d batches in %.1fs: %.0f events/s (%d retries after 429/503), GOMAXPROCS=%d\n",
		n, batches.Load(), elapsed.Seconds(), float64(n)/elapsed.Seconds(), retries.Load(), runtime.GOMAXPROCS(0))

	ids, err := db.AuditIDs(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Every event was sent in a batch that was retried until acknowledged,
	// so the store must hold each issued auditID exactly once.
	missing, dups := int64(0), 0
	for i := int64(1); i <= seq.Load(); i++ {
		found := false
		for s := range *senders {
			if ids[fmt.Sprintf("bench%02d-%028d/ResponseComplete", s, i)] > 0 {
				found = true
				break
			}
		}
		if !found {
			missing++
		}
	}
	for _, c := range ids {
		if c != 1 {
			dups++
		}
	}
	stored := int64(len(ids))
	fmt.Printf("stored %d distinct (auditID, stage); %d missing, %d stored more than once\n", stored, missing, dups)
	if missing != 0 || dups != 0 || stored != n || seq.Load() != n {
		log.Fatal(errors.New("loss or duplication"))
	}
}

// tempDatabase creates an empty database on the PostgreSQL server at
// base, and returns its URL and a function that drops it.
func tempDatabase(ctx context.Context, base string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", base, err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("gatehouse_ingest_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres URL: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			log.Printf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			log.Printf("drop %s: %v", name, err)
		}
	}
	return u.String(), drop, nil
}
