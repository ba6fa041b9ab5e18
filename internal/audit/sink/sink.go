// Package sink receives kube-apiserver's audit webhook: POSTed
// audit.k8s.io/v1 EventLists, authenticated by bearer token or client
// certificate.
//
// Its answers are exact. A 2xx means the batch is committed to the store.
// A 408, 429 or 503 means nothing of it is stored, with one exception a
// resend shows: with PostgreSQL, a connection lost during COMMIT leaves the
// outcome unknown (503; if the commit went through, the resend reports
// duplicates). When the store stalls, the sink answers 503 only for
// batches whose commit has not begun; a batch whose commit has begun is
// answered with the commit's outcome. Forwarding never changes an answer.
// A resent batch is not stored twice: the store keeps one event per
// (auditID, stage).
//
// Memory is bounded by MaxInFlightBytes: request bodies count against it
// from their first byte (the whole Content-Length when one is given),
// concurrent bodies share it, and a body that does not fit is answered 429
// with Retry-After. A body is decoded as it is read, each event handed to
// a store.Batch that compresses its JSON, so a batch is never held whole.
package sink

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// Store stores a batch atomically, skipping events already stored
// (*store.DB). Its error must be exact: nil only when the batch is
// committed.
type Store interface {
	InsertBatch(ctx context.Context, b *store.Batch) (store.Result, error)
}

// Spool receives a request body as the sink reads it, for forwarding
// (forward.Spool). Write must not fail the request: a spool that cannot
// write keeps the error and drops the batch for forwarding at Commit.
type Spool interface {
	io.Writer
	// Commit queues the body for forwarding; the sink calls it after the
	// batch is stored.
	Commit()
	// Abort discards the body (the batch was refused or not stored).
	Abort()
}

// Defaults of Options.
const (
	DefaultMaxInFlight      = 4
	DefaultQueueWait        = 2 * time.Second
	DefaultStoreTimeout     = 20 * time.Second
	DefaultBodyTimeout      = 25 * time.Second
	DefaultMaxBodyBytes     = 64 << 20
	DefaultMaxInFlightBytes = 128 << 20
	DefaultBudgetWait       = 5 * time.Second
	// overBudgetRetry is the Retry-After of a 429 for the byte budget:
	// the budget is taken by large batches, each of which takes seconds
	// to store. client-go retries such an answer up to 10 times, after
	// Retry-After each time, so this also sets how long kube-apiserver
	// keeps offering a batch before its own backoff (10 s, 15 s, ...).
	overBudgetRetry = 5 * time.Second
)

// Options configure a Handler.
type Options struct {
	Store Store
	// BearerTokens are accepted in "Authorization: Bearer <token>".
	BearerTokens []string
	// ClientCAs verify client certificates. The TLS server must ask for
	// them (tls.VerifyClientCertIfGiven or tls.RequestClientCert); the
	// handler verifies the chain itself, for client authentication.
	ClientCAs *x509.CertPool
	// MaxInFlight bounds batches being stored at once (default 4).
	MaxInFlight int
	// QueueWait is how long a batch waits for a slot before the sink
	// answers 429 (default 2s).
	QueueWait time.Duration
	// StoreTimeout bounds how long a batch waits for its commit to begin
	// before the sink answers 503 (default 20s).
	StoreTimeout time.Duration
	// BodyTimeout bounds reading a request body; past it the sink answers
	// 408 (default 25s, under kube-apiserver's 30 s per request).
	BodyTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 64 MiB); a larger one is
	// answered 413, before reading when Content-Length says so.
	MaxBodyBytes int64
	// MaxInFlightBytes is the byte budget request bodies share (default
	// 128 MiB); it must be at least MaxBodyBytes.
	MaxInFlightBytes int64
	// BudgetWait is how long a body whose Content-Length does not fit in
	// the budget waits, unread and in arrival order, for it to free up
	// before the sink answers 429 (default 5s).
	BudgetWait time.Duration
	// Forward, when set, gives a Spool for each request: the body is
	// written to it as it is read, and committed after the batch is
	// stored, before the sink answers (forwarding is at least once).
	Forward func() Spool
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Handler is the webhook endpoint.
type Handler struct {
	o      Options
	tokens [][32]byte // SHA-256 of the accepted tokens
	slots  chan struct{}
	budget *semaphore.Weighted
}

// New returns a Handler. It needs a store and at least one way to
// authenticate.
func New(o Options) (*Handler, error) {
	if o.Store == nil {
		return nil, errors.New("audit sink: no store")
	}
	if len(o.BearerTokens) == 0 && o.ClientCAs == nil {
		return nil, errors.New("audit sink: no bearer tokens and no client CA: refusing to accept audit events from anyone")
	}
	h := &Handler{o: o}
	for _, t := range o.BearerTokens {
		if t == "" {
			return nil, errors.New("audit sink: empty bearer token")
		}
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
	}
	if h.o.MaxInFlight <= 0 {
		h.o.MaxInFlight = DefaultMaxInFlight
	}
	if h.o.QueueWait <= 0 {
		h.o.QueueWait = DefaultQueueWait
	}
	if h.o.StoreTimeout <= 0 {
		h.o.StoreTimeout = DefaultStoreTimeout
	}
	if h.o.BodyTimeout <= 0 {
		h.o.BodyTimeout = DefaultBodyTimeout
	}
	if h.o.MaxBodyBytes <= 0 {
		h.o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.o.MaxInFlightBytes <= 0 {
		h.o.MaxInFlightBytes = max(DefaultMaxInFlightBytes, h.o.MaxBodyBytes)
	}
	if h.o.BudgetWait <= 0 {
		h.o.BudgetWait = DefaultBudgetWait
	}
	if h.o.MaxInFlightBytes < h.o.MaxBodyBytes {
		return nil, fmt.Errorf("audit sink: the in-flight byte budget (%d) is smaller than the largest body (%d): a batch that size could never be taken", h.o.MaxInFlightBytes, h.o.MaxBodyBytes)
	}
	if h.o.Metrics == nil {
		h.o.Metrics = metrics.New(nil)
	}
	if h.o.Logger == nil {
		h.o.Logger = slog.Default()
	}
	h.slots = make(chan struct{}, h.o.MaxInFlight)
	h.budget = semaphore.NewWeighted(h.o.MaxInFlightBytes)
	return h, nil
}

var sourceRE = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// authenticate returns the sender's identity: the client certificate's
// common name, or the accepted token's fingerprint.
func (h *Handler) authenticate(r *http.Request) (string, bool) {
	if h.o.ClientCAs != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf := r.TLS.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: h.o.ClientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			return "cert:" + leaf.Subject.CommonName, true
		}
		h.o.Logger.Warn("audit sink: client certificate rejected", "subject", leaf.Subject.String(), "err", err)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(h.tokens) == 0 {
		return "", false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	// Compare against every token, in constant time, without stopping at
	// a match: the time taken says nothing about the tokens.
	match := -1
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return "token:" + hex.EncodeToString(h.tokens[match][:4]), true
}

// source names the sending kube-apiserver: a certificate's identity, else
// the "source" query parameter or X-Audit-Source header, else the token's
// fingerprint.
func source(identity string, r *http.Request) string {
	if strings.HasPrefix(identity, "cert:") {
		return strings.TrimPrefix(identity, "cert:")
	}
	for _, s := range []string{r.URL.Query().Get("source"), r.Header.Get("X-Audit-Source")} {
		if sourceRE.MatchString(s) {
			return s
		}
	}
	return identity
}

func (h *Handler) reject(w http.ResponseWriter, code int, reason string, events int, retryAfter time.Duration, msg string) {
	h.o.Metrics.Rejected.WithLabelValues(reason).Add(float64(max(events, 1)))
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse audit"`)
	}
	http.Error(w, msg, code)
}

// errOverBudget ends a body read that would exceed the byte budget.
var errOverBudget = errors.New("the in-flight byte budget is used up")

// budgetReader charges the bytes it reads to the budget before they are
// used; what it holds is released when the request is answered.
type budgetReader struct {
	r      io.Reader
	h      *Handler
	held   int64 // charged to the budget
	read   int64
	failed bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.failed {
		return 0, errOverBudget
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if need := b.read - b.held; need > 0 {
		if !b.h.budget.TryAcquire(need) {
			b.failed = true
			return 0, errOverBudget
		}
		b.h.o.Metrics.InFlightBytes.Add(float64(need))
		b.held += need
	}
	return n, err
}

func (b *budgetReader) release() {
	if b.held > 0 {
		b.h.budget.Release(b.held)
		b.h.o.Metrics.InFlightBytes.Sub(float64(b.held))
		b.held = 0
	}
}

// isTimeout reports whether a body read failed on its deadline.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// ServeHTTP handles one webhook batch.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { h.o.Metrics.IngestLatency.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method", 0, 0, "audit webhook: POST an audit.k8s.io/v1 EventList")
		return
	}
	identity, ok := h.authenticate(r)
	if !ok {
		h.reject(w, http.StatusUnauthorized, "unauthenticated", 0, 0, "audit webhook: a valid bearer token or client certificate is required")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			h.reject(w, http.StatusUnsupportedMediaType, "content_type", 0, 0, fmt.Sprintf("audit webhook: content type %q is not supported: send application/json", ct))
			return
		}
	}
	tooLarge := func() {
		h.reject(w, http.StatusRequestEntityTooLarge, "too_large", 0, 0, fmt.Sprintf("audit webhook: body larger than %d bytes: lower the webhook batch size (kube-apiserver's --audit-webhook-batch-max-size)", h.o.MaxBodyBytes))
	}
	if r.ContentLength > h.o.MaxBodyBytes {
		tooLarge() // refused before reading: the header says it all
		return
	}

	// The body counts against the budget from its first byte: all of it
	// at once when its length is known (waiting a little, unread, for
	// room), else as it arrives.
	br := &budgetReader{r: http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes), h: h}
	defer br.release()
	if r.ContentLength > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.o.BudgetWait)
		err := h.budget.Acquire(ctx, r.ContentLength)
		cancel()
		if err != nil {
			h.overBudget(w)
			return
		}
		br.held = r.ContentLength
		h.o.Metrics.InFlightBytes.Add(float64(br.held))
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.o.BodyTimeout)) // not every ResponseWriter supports it

	var body io.Reader = br
	var spool Spool
	if h.o.Forward != nil {
		spool = h.o.Forward()
		body = io.TeeReader(br, spool)
		defer func() {
			if spool != nil {
				spool.Abort()
			}
		}()
	}
	src := source(identity, r)
	dec := event.NewListDecoder(body, src)
	b := store.NewBatch()
	for {
		e, err := dec.Next()
		if err == io.EOF {
			break
		}
		var tooBig *http.MaxBytesError
		switch {
		case err == nil:
			err = b.Add(e)
			if err == nil {
				continue
			}
			h.o.Logger.Error("audit sink: preparing a batch failed", "err", err)
			h.reject(w, http.StatusServiceUnavailable, "store_unavailable", dec.Items(), 5*time.Second, "audit webhook: the batch cannot be prepared now; retry")
		case errors.As(err, &tooBig):
			tooLarge()
		case errors.Is(err, errOverBudget):
			h.overBudget(w)
		case isTimeout(err):
			w.Header().Set("Connection", "close")
			h.reject(w, http.StatusRequestTimeout, "read_timeout", 0, time.Second, fmt.Sprintf("audit webhook: the body did not arrive within %s; retry", h.o.BodyTimeout))
		case errors.Is(err, event.ErrInvalid):
			h.reject(w, http.StatusBadRequest, "malformed", 0, 0, "audit webhook: "+err.Error())
		default:
			h.reject(w, http.StatusBadRequest, "read", 0, 0, "audit webhook: "+err.Error())
		}
		return
	}
	h.o.Metrics.Received.Add(float64(b.Len()))

	wait := time.NewTimer(h.o.QueueWait)
	select {
	case h.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		h.reject(w, http.StatusTooManyRequests, "overloaded", b.Len(), time.Second, "audit webhook: the store is busy; retry")
		return
	case <-r.Context().Done():
		wait.Stop()
		h.reject(w, http.StatusServiceUnavailable, "client_gone", b.Len(), time.Second, "audit webhook: request cancelled")
		return
	}
	defer func() { <-h.slots }()

	ctx, cancel := context.WithTimeout(r.Context(), h.o.StoreTimeout)
	defer cancel()
	res, err := h.o.Store.InsertBatch(ctx, b)
	if err != nil {
		h.o.Logger.Error("audit sink: storing batch failed; asking the sender to retry", "source", src, "events", b.Len(), "err", err)
		h.reject(w, http.StatusServiceUnavailable, "store_unavailable", b.Len(), 5*time.Second, "audit webhook: the store did not take the batch; retry")
		return
	}
	h.o.Metrics.Stored.Add(float64(res.Inserted))
	h.o.Metrics.Duplicates.Add(float64(res.Duplicates))
	if spool != nil {
		spool.Commit()
		spool = nil
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"stored":%d,"duplicates":%d}`+"\n", res.Inserted, res.Duplicates)
}

func (h *Handler) overBudget(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	h.reject(w, http.StatusTooManyRequests, "over_budget", 0, overBudgetRetry,
		fmt.Sprintf("audit webhook: the sink holds its in-flight byte budget (%d bytes) in other batches; retry", h.o.MaxInFlightBytes))
}
