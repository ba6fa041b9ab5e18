package sink_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const token = "s3cret-token-0123456789abcdef"

func openStore(t *testing.T, pragmas string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite3", filepath.Join(t.TempDir(), "audit.db")+pragmas)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSink(t *testing.T, o sink.Options) *sink.Handler {
	t.Helper()
	if o.BearerTokens == nil && o.ClientCAs == nil {
		o.BearerTokens = []string{"another-token", token}
	}
	h, err := sink.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func batch(seed uint64, n int) []byte {
	return event.EncodeList(auditgen.New(seed, time.Now(), time.Millisecond).Batch(n))
}

func post(h http.Handler, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/audit/webhook", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func count(t *testing.T, db *store.DB) int64 {
	t.Helper()
	n, err := db.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBearerTokenAttacks(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	h := newSink(t, sink.Options{Store: db, Metrics: m})
	body := batch(1, 5)
	tests := []struct {
		name string
		auth string
		want int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer wrong", 401},
		{"prefix of the token", "Bearer " + token[:len(token)-1], 401},
		{"token with a suffix", "Bearer " + token + "x", 401},
		{"token differing in the first byte", "Bearer X" + token[1:], 401},
		{"empty bearer", "Bearer ", 401},
		{"basic auth with the token", "Basic " + token, 401},
		{"token without scheme", token, 401},
		{"right token", "Bearer " + token, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := count(t, db)
			w := post(h, body, map[string]string{"Authorization": tt.auth})
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 401 {
				if count(t, db) != before {
					t.Error("a rejected request stored events")
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("unauthenticated")); got != 8 {
		t.Errorf("rejected{unauthenticated} = %v, want 8", got)
	}
}

func TestNewRefusesNoAuthentication(t *testing.T) {
	if _, err := sink.New(sink.Options{Store: openStore(t, "")}); err == nil {
		t.Fatal("a sink without tokens or client CA must not start")
	}
	if _, err := sink.New(sink.Options{Store: openStore(t, ""), BearerTokens: []string{""}}); err == nil {
		t.Fatal("an empty token must be refused (it would match an empty Authorization)")
	}
}

// pki is a throwaway CA that issues client certificates.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T, cn string) *pki {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{cert, key, pool}
}

func (p *pki) issue(t *testing.T, cn string, eku x509.ExtKeyUsage) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{eku}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientCertificates(t *testing.T) {
	db := openStore(t, "")
	ca, evil := newPKI(t, "cluster CA"), newPKI(t, "evil CA")
	h := newSink(t, sink.Options{Store: db, ClientCAs: ca.pool})
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()

	tests := []struct {
		name  string
		cert  *tls.Certificate
		token string
		want  int
	}{
		{"no certificate", nil, "", 401},
		{"certificate from another CA", ptr(evil.issue(t, "kube-apiserver-cp-1", x509.ExtKeyUsageClientAuth)), "", 401},
		{"self-signed copy of the CA's name", ptr(newPKI(t, "cluster CA").issue(t, "kube-apiserver-cp-1", x509.ExtKeyUsageClientAuth)), "", 401},
		{"server-only certificate from the CA", ptr(ca.issue(t, "kube-apiserver-cp-1", x509.ExtKeyUsageServerAuth)), "", 401},
		{"no tokens configured: any token fails", nil, "anything", 401},
		{"client certificate from the CA", ptr(ca.issue(t, "kube-apiserver-cp-1", x509.ExtKeyUsageClientAuth)), "", 200},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			tr.TLSClientConfig.Certificates = nil
			if tt.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*tt.cert}
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/audit/webhook?source=spoofed", bytes.NewReader(batch(uint64(10+i), 3)))
			req.Header.Set("Content-Type", "application/json")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			before := count(t, db)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != 200 && count(t, db) != before {
				t.Error("a rejected request stored events")
			}
		})
	}
	// The certificate's identity is the source; a query parameter cannot override it.
	evs, _, err := db.Query(context.Background(), query.Filter{Source: "kube-apiserver-cp-1"})
	if err != nil || len(evs) != 3 {
		t.Errorf("events tagged with the certificate's name: %d, %v", len(evs), err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRetriedBatchStoredOnce(t *testing.T) {
	db := openStore(t, "")
	m := metrics.New(nil)
	h := newSink(t, sink.Options{Store: db, Metrics: m})
	body := batch(2, 400)
	for i := range 3 {
		w := post(h, body, map[string]string{"Authorization": "Bearer " + token})
		if w.Code != 200 {
			t.Fatalf("try %d: status %d: %s", i, w.Code, w.Body)
		}
	}
	if n := count(t, db); n != 400 {
		t.Fatalf("stored %d events, want 400", n)
	}
	if got := testutil.ToFloat64(m.Duplicates); got != 800 {
		t.Errorf("duplicates = %v, want 800", got)
	}
	if got := testutil.ToFloat64(m.Received); got != 1200 {
		t.Errorf("received = %v, want 1200", got)
	}
}

func TestSourceTagging(t *testing.T) {
	db := openStore(t, "")
	h := newSink(t, sink.Options{Store: db})
	auth := map[string]string{"Authorization": "Bearer " + token}
	r := httptest.NewRequest(http.MethodPost, "/audit/webhook?source=cp-2", bytes.NewReader(batch(3, 2)))
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	auth["X-Audit-Source"] = "cp-3"
	post(h, batch(4, 3), auth)
	auth["X-Audit-Source"] = "bad source with spaces"
	post(h, batch(5, 4), auth)
	for src, want := range map[string]int{"cp-2": 2, "cp-3": 3} {
		evs, _, err := db.Query(context.Background(), query.Filter{Source: src})
		if err != nil || len(evs) != want {
			t.Errorf("source %s: %d events (%v), want %d", src, len(evs), err, want)
		}
	}
	evs, _, _ := db.Query(context.Background(), query.Filter{Limit: 100})
	fromToken := 0
	for _, e := range evs {
		if strings.HasPrefix(e.Source, "token:") {
			fromToken++
		}
	}
	if fromToken != 4 {
		t.Errorf("%d events tagged with the token's fingerprint, want 4", fromToken)
	}
}

// blockingStore holds every Insert until release is closed.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	stored  int
}

func (s *blockingStore) InsertBatch(ctx context.Context, b *store.Batch) (store.Result, error) {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return store.Result{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stored += b.Len()
	return store.Result{Inserted: b.Len()}, nil
}

func TestOverloadAnswers429(t *testing.T) {
	bs := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	m := metrics.New(nil)
	h := newSink(t, sink.Options{Store: bs, MaxInFlight: 1, QueueWait: 10 * time.Millisecond, Metrics: m})
	auth := map[string]string{"Authorization": "Bearer " + token}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- post(h, batch(6, 10), auth) }()
	<-bs.entered // the only slot is taken and the store is stuck
	w := post(h, batch(7, 10), auth)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("busy store: status %d Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	close(bs.release)
	if w := <-first; w.Code != 200 {
		t.Fatalf("first batch: %d", w.Code)
	}
	if bs.stored != 10 {
		t.Errorf("stored %d, want only the first batch's 10", bs.stored)
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("overloaded")); got != 10 {
		t.Errorf("rejected{overloaded} = %v, want 10", got)
	}
}

func TestStoreTimeoutAnswers503(t *testing.T) {
	bs := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newSink(t, sink.Options{Store: bs, StoreTimeout: time.Millisecond})
	w := post(h, batch(8, 10), map[string]string{"Authorization": "Bearer " + token})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("slow store: status %d, want 503 with Retry-After", w.Code)
	}
	if bs.stored != 0 {
		t.Errorf("stored %d", bs.stored)
	}
}

func TestFullStoreAnswers503AndStoresNothingPartial(t *testing.T) {
	// A SQLite database that may not grow past a few pages: a real "disk full".
	db := openStore(t, "?_pragma=max_page_count(40)")
	h := newSink(t, sink.Options{Store: db})
	auth := map[string]string{"Authorization": "Bearer " + token}
	if w := post(h, batch(9, 20), auth); w.Code != 200 {
		t.Fatalf("small batch: %d %s", w.Code, w.Body)
	}
	w := post(h, batch(10, 400), auth)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("full store: status %d, want 503 with Retry-After: %s", w.Code, w.Body)
	}
	if n := count(t, db); n != 20 {
		t.Fatalf("stored %d events after the failed batch, want the first 20 only", n)
	}
}

func TestMalformedRequests(t *testing.T) {
	db := openStore(t, "")
	h := newSink(t, sink.Options{Store: db, MaxBodyBytes: 1 << 16})
	good := batch(11, 2)
	tests := []struct {
		name, method, ctype string
		body                []byte
		want                int
		msg                 string
	}{
		{"truncated JSON", "POST", "application/json", good[:len(good)/2], 400, "not an EventList"},
		{"not JSON", "POST", "application/json", []byte("hello"), 400, "not an EventList"},
		{"an Event, not an EventList", "POST", "application/json", auditgen.New(1, time.Now(), 0).JSON(), 400, "want EventList"},
		{"v1beta1", "POST", "application/json", bytes.Replace(good, []byte(`"audit.k8s.io/v1"`), []byte(`"audit.k8s.io/v1beta1"`), 1), 400, "apiVersion"},
		{"item without auditID", "POST", "application/json", []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"stage":"ResponseComplete","requestReceivedTimestamp":"2026-01-01T00:00:00Z"}]}`), 400, "item 0: invalid audit event: auditID is empty"},
		{"trailing data", "POST", "application/json", append(append([]byte{}, good...), "{}"...), 400, "after the EventList"},
		{"protobuf", "POST", "application/vnd.kubernetes.protobuf", good, 415, "application/json"},
		{"too large", "POST", "application/json", batch(12, 200), 413, "batch size"},
		{"GET", "GET", "", nil, 405, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/audit/webhook", bytes.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer "+token)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.msg) {
				t.Errorf("status %d %q, want %d mentioning %q", w.Code, w.Body, tt.want, tt.msg)
			}
		})
	}
	if n := count(t, db); n != 0 {
		t.Errorf("malformed requests stored %d events", n)
	}
}

func TestForwardGetsAcceptedBatches(t *testing.T) {
	db := openStore(t, "")
	var got [][]byte
	aborted := 0
	h := newSink(t, sink.Options{Store: db, Forward: func() sink.Spool {
		return &memSpool{commit: func(b []byte) { got = append(got, b) }, abort: func() { aborted++ }}
	}})
	body := batch(13, 5)
	post(h, body, map[string]string{"Authorization": "Bearer " + token})
	post(h, body, map[string]string{"Authorization": "Bearer wrong"})
	post(h, body[:len(body)-3], map[string]string{"Authorization": "Bearer " + token})
	if len(got) != 1 || !bytes.Equal(got[0], body) {
		t.Fatalf("forwarded %d batches, want the one accepted batch, unchanged", len(got))
	}
	if aborted != 1 {
		t.Errorf("%d spools aborted, want the malformed batch's", aborted)
	}
	var l struct{ Items []json.RawMessage }
	if err := json.Unmarshal(got[0], &l); err != nil || len(l.Items) != 5 {
		t.Fatalf("forwarded body: %v", err)
	}
}

// memSpool is a Spool in memory.
type memSpool struct {
	buf    bytes.Buffer
	commit func([]byte)
	abort  func()
	done   bool
}

func (s *memSpool) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memSpool) Commit()                     { s.done = true; s.commit(s.buf.Bytes()) }
func (s *memSpool) Abort() {
	if !s.done {
		s.done = true
		s.abort()
	}
}
