// Package forward sends the audit batches the sink accepts on to further
// webhook destinations (Falco, a SIEM), so kube-apiserver's one audit
// webhook can feed several tools. Each destination has its own bounded
// on-disk queue and its own sender, which retries with exponential backoff,
// so a destination that is down delays only itself.
//
// Forwarding never decides what the sink answers: the store is the record.
// A batch that a destination's queue cannot take (the queue is at
// MaxQueueBytes, or its disk fails) is dropped for that destination,
// counted (gatehouse_audit_batches_forwarded_total{result="dropped"}) and
// logged, and the sink answers as the store did. Answering 503 instead
// would make kube-apiserver resend a batch already stored, over and over,
// while its buffer of new events fills and then drops them: a slow
// destination would cost the audit trail itself.
package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
)

// Destination is one webhook that receives every batch.
type Destination struct {
	Name        string
	URL         string
	CAFile      string // PEM bundle to verify the destination; system roots when empty
	BearerToken string
	// QueueDir holds batches not yet delivered; it is created if missing.
	QueueDir string
	// MaxQueueBytes bounds the queue (default 100 MiB). When it is full,
	// new batches for this destination are dropped and counted; the sink's
	// answer does not change.
	MaxQueueBytes int64
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

// Options tune all destinations.
type Options struct {
	MinBackoff, MaxBackoff time.Duration // default 1s and 1m
	Timeout                time.Duration // one delivery attempt; default 30s
	Metrics                *metrics.Metrics
	Logger                 *slog.Logger
}

// Forwarder fans batches out to destinations.
type Forwarder struct {
	dests []*dest
	o     Options
}

type dest struct {
	Destination
	client *http.Client
	o      *Options

	mu     sync.Mutex
	seqs   []uint64 // queued batches, oldest first
	sizes  map[uint64]int64
	bytes  int64
	next   uint64
	notify chan struct{}
}

// New opens each destination's queue (keeping batches queued before a
// restart).
func New(dests []Destination, o Options) (*Forwarder, error) {
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &Forwarder{o: o}
	names := map[string]bool{}
	for _, d := range dests {
		if d.Name == "" || d.URL == "" || d.QueueDir == "" {
			return nil, fmt.Errorf("audit forward %q: name, url and queueDir are required", d.Name)
		}
		if names[d.Name] {
			return nil, fmt.Errorf("audit forward %q: name used twice", d.Name)
		}
		names[d.Name] = true
		if d.MaxQueueBytes <= 0 {
			d.MaxQueueBytes = 100 << 20
		}
		dd := &dest{Destination: d, o: &f.o, sizes: map[uint64]int64{}, notify: make(chan struct{}, 1)}
		if dd.client = d.Client; dd.client == nil {
			c, err := httpClient(d.CAFile, o.Timeout)
			if err != nil {
				return nil, fmt.Errorf("audit forward %q: %w", d.Name, err)
			}
			dd.client = c
		}
		if err := dd.load(); err != nil {
			return nil, fmt.Errorf("audit forward %q: %w", d.Name, err)
		}
		f.dests = append(f.dests, dd)
	}
	return f, nil
}

func httpClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s has no PEM certificates", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

const suffix = ".batch"

// load reads what is already queued.
func (d *dest) load() error {
	if err := os.MkdirAll(d.QueueDir, 0o700); err != nil {
		return fmt.Errorf("queue dir: %w", err)
	}
	entries, err := os.ReadDir(d.QueueDir)
	if err != nil {
		return fmt.Errorf("queue dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(d.QueueDir, name)) // an enqueue cut short
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, suffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("queue dir: %w", err)
		}
		d.seqs = append(d.seqs, seq)
		d.sizes[seq] = info.Size()
		d.bytes += info.Size()
		d.next = max(d.next, seq+1)
	}
	sort.Slice(d.seqs, func(i, j int) bool { return d.seqs[i] < d.seqs[j] })
	d.gauges()
	return nil
}

func (d *dest) gauges() {
	d.o.Metrics.QueueDepth.WithLabelValues(d.Name).Set(float64(len(d.seqs)))
	d.o.Metrics.QueueBytes.WithLabelValues(d.Name).Set(float64(d.bytes))
}

func (d *dest) path(seq uint64) string {
	return filepath.Join(d.QueueDir, fmt.Sprintf("%020d%s", seq, suffix))
}

// Enqueue queues body for every destination, as a Spool does.
func (f *Forwarder) Enqueue(body []byte) {
	s := f.NewSpool()
	s.Write(body) //nolint:errcheck // a Spool's Write never fails
	s.Commit()
}

// Spool is one incoming batch, written to disk as the sink reads it so
// that forwarding never holds a batch in memory, and queued for every
// destination by Commit once the batch is stored. It lives in the first
// destination's queue directory as a .tmp file (removed at start-up if a
// crash leaves one).
type Spool struct {
	f    *Forwarder
	file *os.File
	size int64
	err  error
}

// NewSpool starts a batch.
func (f *Forwarder) NewSpool() *Spool { return &Spool{f: f} }

// Write appends p. It never fails: a write error is kept, and Commit then
// drops the batch for every destination (counted and logged).
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil || len(s.f.dests) == 0 {
		return len(p), nil
	}
	if s.file == nil {
		s.file, s.err = os.CreateTemp(s.f.dests[0].QueueDir, "incoming-*.tmp")
		if s.err != nil {
			return len(p), nil
		}
	}
	n, err := s.file.Write(p)
	s.size += int64(n)
	if err != nil {
		s.err = err
	}
	return len(p), nil
}

// Commit queues the batch for every destination; a destination whose
// queue is full or cannot be written drops it (counted).
func (s *Spool) Commit() {
	if len(s.f.dests) == 0 {
		return
	}
	if s.file == nil && s.err == nil { // an empty body: nothing was written
		s.file, s.err = os.CreateTemp(s.f.dests[0].QueueDir, "incoming-*.tmp")
	}
	if s.file != nil {
		if err := s.file.Close(); err != nil && s.err == nil {
			s.err = err
		}
	}
	for i, d := range s.f.dests {
		if s.err != nil {
			d.drop("the batch could not be written to the queue", s.err)
			continue
		}
		if err := d.enqueueFile(s.file.Name(), s.size, i == len(s.f.dests)-1); err != nil {
			d.drop("the batch could not be written to the queue", err)
		}
	}
	s.Abort()
}

// Abort discards the batch.
func (s *Spool) Abort() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name()) // gone already when the last destination took it
		s.file = nil
	}
}

func (d *dest) drop(why string, err error) {
	d.o.Metrics.Forwarded.WithLabelValues(d.Name, "dropped").Inc()
	d.o.Logger.Error("audit forward: dropping a batch for this destination: "+why, "destination", d.Name, "err", err)
}

// enqueueFile queues the file at src, of size bytes: moved when move is
// set (the last destination), else linked or copied.
func (d *dest) enqueueFile(src string, size int64, move bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bytes+size > d.MaxQueueBytes {
		d.o.Metrics.Forwarded.WithLabelValues(d.Name, "dropped").Inc()
		d.o.Logger.Warn("audit forward queue full: dropping batch", "destination", d.Name, "queued_bytes", d.bytes, "max_queue_bytes", d.MaxQueueBytes)
		return nil
	}
	seq := d.next
	if err := place(src, d.path(seq), move); err != nil {
		return fmt.Errorf("queue batch: %w", err)
	}
	d.next++
	d.seqs = append(d.seqs, seq)
	d.sizes[seq] = size
	d.bytes += size
	d.gauges()
	select {
	case d.notify <- struct{}{}:
	default:
	}
	return nil
}

// place puts src at dst: renamed (move) or hard-linked, or, across file
// systems, copied through a .tmp file and renamed.
func place(src, dst string, move bool) error {
	var err error
	if move {
		err = os.Rename(src, dst)
	} else {
		err = os.Link(src, dst)
	}
	if err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Run delivers queued batches until ctx ends.
func (f *Forwarder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range f.dests {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
}

func (d *dest) run(ctx context.Context) {
	backoff := d.o.MinBackoff
	for {
		d.mu.Lock()
		var seq uint64
		have := len(d.seqs) > 0
		if have {
			seq = d.seqs[0]
		}
		d.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return
			case <-d.notify:
				continue
			}
		}
		err := d.send(ctx, seq)
		var perm permanent
		switch {
		case err == nil:
			d.o.Metrics.Forwarded.WithLabelValues(d.Name, "sent").Inc()
			d.remove(seq)
			backoff = d.o.MinBackoff
			continue
		case errors.As(err, &perm):
			d.o.Metrics.Forwarded.WithLabelValues(d.Name, "rejected").Inc()
			d.o.Logger.Error("audit forward: destination refused a batch; dropping it", "destination", d.Name, "err", err)
			d.remove(seq)
			continue
		case ctx.Err() != nil:
			return
		}
		d.o.Metrics.Forwarded.WithLabelValues(d.Name, "retry").Inc()
		d.o.Logger.Warn("audit forward: delivery failed; retrying", "destination", d.Name, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, d.o.MaxBackoff)
	}
}

func (d *dest) remove(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.o.Logger.Error("audit forward: removing delivered batch", "destination", d.Name, "err", err)
	}
	d.seqs = d.seqs[1:]
	d.bytes -= d.sizes[seq]
	delete(d.sizes, seq)
	d.gauges()
}

// permanent is a refusal that retrying will not change (400, 413, 422).
type permanent struct{ error }

func (d *dest) send(ctx context.Context, seq uint64) error {
	body, err := os.ReadFile(d.path(seq))
	if err != nil {
		return permanent{fmt.Errorf("read queued batch: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return permanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	if d.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+d.BearerToken)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == 400 || resp.StatusCode == 413 || resp.StatusCode == 422:
		return permanent{fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))}
	}
	return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
}

// Depth returns the batches queued for the named destination.
func (f *Forwarder) Depth(name string) int {
	for _, d := range f.dests {
		if d.Name == name {
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.seqs)
		}
	}
	return 0
}
