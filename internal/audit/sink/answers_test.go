package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/forward"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestContentLengthOverCapRefusedBeforeReading: a body whose
// Content-Length is over the cap is answered 413 without reading a byte,
// in the handler and over the wire (the client has not sent its body
// when the answer comes).
func TestContentLengthOverCapRefusedBeforeReading(t *testing.T) {
	db := openStore(t, "")
	h := newSink(t, sink.Options{Store: db, MaxBodyBytes: 1 << 16})
	body := &countingReader{r: bytes.NewReader(make([]byte, 1<<17))}
	r := httptest.NewRequest(http.MethodPost, "/audit/webhook", body)
	r.ContentLength = 1 << 17
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || body.n != 0 {
		t.Fatalf("status %d after reading %d bytes, want 413 before reading", w.Code, body.n)
	}

	srv := httptest.NewServer(h)
	defer srv.Close()
	pr, pw := io.Pipe() // the test never writes: the body is not sent
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/audit/webhook", pr)
	req.ContentLength = 1 << 30
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "batch size") {
		t.Fatalf("status %d %q, want 413 naming the batch size", resp.StatusCode, msg)
	}
}

// TestSlowBodyAnswers408: a body that stops arriving is answered 408 with
// Retry-After (kube-apiserver retries it), not 400 (which says the batch
// is bad), and nothing is stored.
func TestSlowBodyAnswers408(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	srv := httptest.NewServer(newSink(t, sink.Options{Store: db, Metrics: m, BodyTimeout: 200 * time.Millisecond}))
	defer srv.Close()
	body := batch(40, 20)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and the first bytes of the body, then nothing.
	fmt.Fprintf(conn, "POST /audit/webhook HTTP/1.1\r\nHost: sink\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", token, len(body))
	conn.Write(body[:len(body)/2])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 408 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := count(t, db); n != 0 {
		t.Errorf("stored %d events of a body that never arrived", n)
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("read_timeout")); got != 1 {
		t.Errorf("rejected{read_timeout} = %v", got)
	}
}

// pipeRequest sends body through a pipe the test feeds, with or without
// a Content-Length.
type pipeRequest struct {
	pw   *io.PipeWriter
	resp chan *http.Response
	err  chan error
}

func startRequest(t *testing.T, c *http.Client, url string, contentLength int64) *pipeRequest {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	req.ContentLength = contentLength
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	p := &pipeRequest{pw: pw, resp: make(chan *http.Response, 1), err: make(chan error, 1)}
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			p.err <- err
			return
		}
		p.resp <- resp
	}()
	return p
}

func (p *pipeRequest) answer(t *testing.T) (int, string, http.Header) {
	t.Helper()
	select {
	case resp := <-p.resp:
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header
	case err := <-p.err:
		t.Fatal(err)
	}
	return 0, "", nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestBudgetSharedByConcurrentBodies: bodies count against the in-flight
// byte budget from their first byte (all of a known Content-Length at
// once), concurrent bodies share it, and a body that does not fit is
// answered 429 with Retry-After: unread, after waiting BudgetWait, when
// its length is known; as soon as it overflows when it is not. The budget
// is whole again once the answers are given.
func TestBudgetSharedByConcurrentBodies(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	big, other := batch(41, 900), batch(43, 900) // about 1 MB each
	h := newSink(t, sink.Options{Store: db, Metrics: m, MaxBodyBytes: int64(max(len(big), len(other))), MaxInFlightBytes: int64(len(big)) * 3 / 2,
		BudgetWait: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/audit/webhook"

	// A holds the budget with a body that is half sent.
	a := startRequest(t, srv.Client(), url, int64(len(big)))
	go a.pw.Write(big[:len(big)/2])
	waitFor(t, "the first body to take its share", func() bool { return testutil.ToFloat64(m.InFlightBytes) == float64(len(big)) })

	// B, as large and with a Content-Length: refused before its body is read.
	b := startRequest(t, srv.Client(), url, int64(len(other)))
	code, msg, hdr := b.answer(t)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(msg, "budget") {
		t.Fatalf("second body: %d %q Retry-After %q, want 429 with Retry-After", code, msg, hdr.Get("Retry-After"))
	}
	b.pw.Close()

	// C, without a Content-Length: read until it overflows the budget.
	small := batch(42, 700)
	c := startRequest(t, srv.Client(), url, -1)
	go func() { c.pw.Write(small); c.pw.Close() }()
	if code, msg, _ := c.answer(t); code != http.StatusTooManyRequests {
		t.Fatalf("chunked body over the budget: %d %q, want 429", code, msg)
	}

	// A completes and is stored; the budget is whole again.
	go func() { a.pw.Write(big[len(big)/2:]); a.pw.Close() }()
	if code, msg, _ := a.answer(t); code != http.StatusOK {
		t.Fatalf("first body: %d %q", code, msg)
	}
	if got := testutil.ToFloat64(m.InFlightBytes); got != 0 {
		t.Errorf("in-flight bytes %v after every answer, want 0", got)
	}
	// The refused batches succeed when retried.
	for _, body := range [][]byte{other, small} {
		if w := post(h, body, map[string]string{"Authorization": "Bearer " + token}); w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"stored":0`) {
			t.Fatalf("retry: %d %s", w.Code, w.Body)
		}
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("over_budget")); got != 2 {
		t.Errorf("rejected{over_budget} = %v, want 2", got)
	}
}

// TestBudgetWaitAdmitsInOrder: a body that does not fit waits, unread,
// and is taken as soon as the budget frees up within BudgetWait.
func TestBudgetWaitAdmitsInOrder(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	first, second := batch(44, 900), batch(45, 900)
	h := newSink(t, sink.Options{Store: db, Metrics: m, MaxBodyBytes: int64(max(len(first), len(second))), MaxInFlightBytes: int64(len(first)) * 3 / 2,
		BudgetWait: time.Minute})
	srv := httptest.NewServer(h)
	defer srv.Close()
	a := startRequest(t, srv.Client(), srv.URL+"/audit/webhook", int64(len(first)))
	go a.pw.Write(first[:100])
	waitFor(t, "the first body to take its share", func() bool { return testutil.ToFloat64(m.InFlightBytes) == float64(len(first)) })
	b := startRequest(t, srv.Client(), srv.URL+"/audit/webhook", int64(len(second)))
	go func() { b.pw.Write(second); b.pw.Close() }()
	time.Sleep(100 * time.Millisecond) // b reaches the budget and waits (were it later, it would simply fit)
	go func() { a.pw.Write(first[100:]); a.pw.Close() }()
	for i, p := range []*pipeRequest{a, b} {
		if code, msg, _ := p.answer(t); code != http.StatusOK || strings.Contains(msg, `"stored":0`) {
			t.Fatalf("body %d: %d %s", i, code, msg)
		}
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("over_budget")); got != 0 {
		t.Errorf("rejected{over_budget} = %v, want 0", got)
	}
}

// TestNewRefusesBudgetBelowBodyCap: a budget smaller than the largest
// body would answer 429 for ever to a batch it could never take.
func TestNewRefusesBudgetBelowBodyCap(t *testing.T) {
	_, err := sink.New(sink.Options{Store: openStore(t, ""), BearerTokens: []string{token}, MaxBodyBytes: 64 << 20, MaxInFlightBytes: 32 << 20})
	if err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("err = %v, want the budget named", err)
	}
}

// lockSQLite takes the write lock of a SQLite file from another
// connection, as a long transaction elsewhere would: the store stalls.
func lockSQLite(t *testing.T, file string) (release func()) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"BEGIN", "INSERT INTO audit_schema (version) VALUES (-1)"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			c.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// TestStalledStoreAnswersAreExact: batches sent while the store is
// stalled past the store timeout get 200 only if they are committed and
// 503 only if nothing of them is; resending shows it (a 503 batch is
// stored by the resend, a 200 batch comes back as duplicates).
func TestStalledStoreAnswersAreExact(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.db")
	db, err := store.Open(context.Background(), "sqlite3", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := newSink(t, sink.Options{Store: db, StoreTimeout: 100 * time.Millisecond, MaxInFlight: 8})
	auth := map[string]string{"Authorization": "Bearer " + token}
	warm, err := event.DecodeList(batch(50, 5), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Insert(context.Background(), warm); err != nil { // statements prepared before the stall
		t.Fatal(err)
	}
	resend := newSink(t, sink.Options{Store: db}) // the resends, with the default store timeout
	release := lockSQLite(t, file)
	bodies := [][]byte{batch(51, 100), batch(52, 100), batch(53, 100), batch(54, 100)}
	codes := make([]int, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { codes[i] = post(h, b, auth).Code })
	}
	time.Sleep(500 * time.Millisecond) // past the store timeout of every batch
	release()
	wg.Wait()
	got := map[int]int{}
	for i, b := range bodies {
		evs, err := event.DecodeList(b, "")
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		for _, e := range evs {
			found, _, err := db.Query(context.Background(), query.Filter{AuditID: e.AuditID})
			if err != nil {
				t.Fatal(err)
			}
			stored += len(found)
		}
		got[codes[i]]++
		switch codes[i] {
		case http.StatusOK:
			if stored != len(evs) {
				t.Errorf("batch %d answered 200 with %d of %d events stored", i, stored, len(evs))
			}
		case http.StatusServiceUnavailable:
			if stored != 0 {
				t.Errorf("batch %d answered 503 with %d events stored", i, stored)
			}
		default:
			t.Errorf("batch %d answered %d", i, codes[i])
		}
		w := post(resend, b, auth)
		want := fmt.Sprintf(`{"stored":0,"duplicates":%d}`, len(evs))
		if codes[i] != http.StatusOK {
			want = fmt.Sprintf(`{"stored":%d,"duplicates":0}`, len(evs))
		}
		if strings.TrimSpace(w.Body.String()) != want {
			t.Errorf("batch %d (answered %d) resent: %s, want %s", i, codes[i], w.Body, want)
		}
	}
	t.Logf("answers while stalled: %v", got)
}

// TestForwardQueueFullDropsAndAnswersStore: a forward destination whose
// queue is full, or whose queue cannot be written, drops the batch for
// that destination (counted) and the sink answers as the store did: the
// batch is stored and answered 200, so kube-apiserver does not resend it.
func TestForwardQueueFullDropsAndAnswersStore(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	one := batch(60, 50)
	dir := t.TempDir()
	f, err := forward.New([]forward.Destination{{Name: "falco", URL: "http://127.0.0.1:1/unused", QueueDir: filepath.Join(dir, "falco"), MaxQueueBytes: int64(len(one)) * 3 / 2}},
		forward.Options{Metrics: m}) // not running: the destination is "down"
	if err != nil {
		t.Fatal(err)
	}
	h := newSink(t, sink.Options{Store: db, Metrics: m, Forward: func() sink.Spool { return f.NewSpool() }})
	auth := map[string]string{"Authorization": "Bearer " + token}
	for i := range 3 {
		if w := post(h, batch(uint64(61+i), 50), auth); w.Code != http.StatusOK {
			t.Fatalf("batch %d: %d %s", i, w.Code, w.Body)
		}
	}
	if n := count(t, db); n != 150 {
		t.Errorf("stored %d events, want 150", n)
	}
	if d := f.Depth("falco"); d != 1 {
		t.Errorf("queue depth %d, want 1 (bounded)", d)
	}
	if got := testutil.ToFloat64(m.Forwarded.WithLabelValues("falco", "dropped")); got != 2 {
		t.Errorf("dropped = %v, want 2", got)
	}
	// A queue directory that cannot be written (gone): the same.
	if err := os.RemoveAll(filepath.Join(dir, "falco")); err != nil {
		t.Fatal(err)
	}
	if w := post(h, batch(70, 50), auth); w.Code != http.StatusOK {
		t.Fatalf("queue gone: %d %s", w.Code, w.Body)
	}
	if got := testutil.ToFloat64(m.Forwarded.WithLabelValues("falco", "dropped")); got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
	if n := count(t, db); n != 200 {
		t.Errorf("stored %d events, want 200", n)
	}
}

// TestUnauthenticatedBodiesTakeNoBudget: the byte budget is charged only
// after authentication, so a sender without a valid token cannot hold it
// (here, a huge body that never comes).
func TestUnauthenticatedBodiesTakeNoBudget(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	h := newSink(t, sink.Options{Store: db, Metrics: m, MaxInFlightBytes: 64 << 20, BudgetWait: time.Minute})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, auth := range []string{"", "Bearer wrong-token"} {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/audit/webhook", pr)
		req.ContentLength = 64 << 20
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		pw.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%q: status %d, want 401", auth, resp.StatusCode)
		}
		if got := testutil.ToFloat64(m.InFlightBytes); got != 0 {
			t.Fatalf("%q: %v bytes of the budget held by an unauthenticated body", auth, got)
		}
	}
	// The whole budget is still there for an authenticated batch of its size.
	big := batch(90, 100)
	r := httptest.NewRequest(http.MethodPost, "/audit/webhook", bytes.NewReader(big))
	r.ContentLength = 64 << 20 // claims all of it: it fits only if nothing is held
	r.Header.Set("Authorization", "Bearer "+token)
	r.Body = io.NopCloser(bytes.NewReader(big))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("authenticated batch claiming the whole budget: %d %s", w.Code, w.Body)
	}
}
