// Package sink receives kube-apiserver's audit webhook: POSTed
// audit.k8s.io/v1 EventLists, authenticated by bearer token or client
// certificate. A 2xx answer means the batch is committed to the store; when
// the store is busy or failing the sink answers 429 or 503 with Retry-After,
// which kube-apiserver's webhook backend retries, so nothing accepted is
// ever dropped. A retried batch is not stored twice: the store keeps one
// event per (auditID, stage).
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
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// Inserter stores a batch atomically, skipping events already stored.
type Inserter interface {
	Insert(ctx context.Context, events []event.Event) (store.Result, error)
}

// Options configure a Handler.
type Options struct {
	Store Inserter
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
	// StoreTimeout bounds one batch's insert before the sink answers 503
	// (default 20s).
	StoreTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 64 MiB).
	MaxBodyBytes int64
	// Forward, when set, receives each accepted batch's body after it is
	// stored and before the sink answers (forwarding is at least once).
	Forward func(body []byte) error
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Handler is the webhook endpoint.
type Handler struct {
	o      Options
	tokens [][32]byte // SHA-256 of the accepted tokens
	slots  chan struct{}
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
		h.o.MaxInFlight = 4
	}
	if h.o.QueueWait <= 0 {
		h.o.QueueWait = 2 * time.Second
	}
	if h.o.StoreTimeout <= 0 {
		h.o.StoreTimeout = 20 * time.Second
	}
	if h.o.MaxBodyBytes <= 0 {
		h.o.MaxBodyBytes = 64 << 20
	}
	if h.o.Metrics == nil {
		h.o.Metrics = metrics.New(nil)
	}
	if h.o.Logger == nil {
		h.o.Logger = slog.Default()
	}
	h.slots = make(chan struct{}, h.o.MaxInFlight)
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.reject(w, http.StatusRequestEntityTooLarge, "too_large", 0, 0, fmt.Sprintf("audit webhook: body larger than %d bytes: lower the webhook batch size", h.o.MaxBodyBytes))
			return
		}
		h.reject(w, http.StatusBadRequest, "read", 0, 0, "audit webhook: reading body: "+err.Error())
		return
	}
	src := source(identity, r)
	events, err := event.DecodeList(body, src)
	if err != nil {
		h.reject(w, http.StatusBadRequest, "malformed", 0, 0, "audit webhook: "+err.Error())
		return
	}
	h.o.Metrics.Received.Add(float64(len(events)))

	wait := time.NewTimer(h.o.QueueWait)
	select {
	case h.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		h.reject(w, http.StatusTooManyRequests, "overloaded", len(events), time.Second, "audit webhook: the store is busy; retry")
		return
	case <-r.Context().Done():
		wait.Stop()
		h.reject(w, http.StatusServiceUnavailable, "client_gone", len(events), time.Second, "audit webhook: request cancelled")
		return
	}
	defer func() { <-h.slots }()

	ctx, cancel := context.WithTimeout(r.Context(), h.o.StoreTimeout)
	defer cancel()
	res, err := h.o.Store.Insert(ctx, events)
	if err != nil {
		h.o.Logger.Error("audit sink: storing batch failed; asking the sender to retry", "source", src, "events", len(events), "err", err)
		h.reject(w, http.StatusServiceUnavailable, "store_unavailable", len(events), 5*time.Second, "audit webhook: the store cannot take the batch now; retry")
		return
	}
	h.o.Metrics.Stored.Add(float64(res.Inserted))
	h.o.Metrics.Duplicates.Add(float64(res.Duplicates))
	if h.o.Forward != nil {
		if err := h.o.Forward(body); err != nil {
			// Stored but not queued for forwarding: a retry is harmless
			// (the store skips duplicates) and gives forwarding another try.
			h.o.Logger.Error("audit sink: queueing batch for forwarding failed", "err", err)
			h.reject(w, http.StatusServiceUnavailable, "forward_queue", len(events), 5*time.Second, "audit webhook: the forwarding queue cannot take the batch; retry")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"stored":%d,"duplicates":%d}`+"\n", res.Inserted, res.Duplicates)
}
