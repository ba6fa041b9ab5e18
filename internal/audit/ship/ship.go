// Package ship is the audit log shipper: it tails the audit log that
// kube-apiserver's log backend writes (/var/log/kubernetes/audit.log),
// follows it across lumberjack rotations (plain and gzip-compressed
// backups), and sends its events to the gatehouse audit sink in
// EventList batches.
//
// The shipper records its position (the file's identity: device, inode and
// a hash of its first line; and a byte offset) on disk, atomically, only
// after the sink has acknowledged a batch with 2xx. After a crash it
// resends at most the batch that was in flight; the sink stores each
// (auditID, stage) once, so nothing is lost and nothing is stored twice.
package ship

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
)

// Options configure Run.
type Options struct {
	// File is the live audit log (its backups are found beside it).
	File string
	// StateDir keeps the position file (created if missing).
	StateDir string
	// URL is the sink's webhook URL (add ?source=<node> to name the node).
	URL   string
	Token string
	// Client sends to the sink (its transport carries the CA and any
	// client certificate).
	Client *http.Client
	// BatchSize and MaxBatchBytes bound a batch (default 400 events, 4 MiB).
	BatchSize     int
	MaxBatchBytes int
	// FlushInterval is how long a partial batch waits for more events
	// (default 1s); PollInterval how often the live file is checked for
	// growth and rotation (default 200ms).
	FlushInterval, PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between delivery attempts
	// (default 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// ErrRefused means the sink refused a batch in a way retrying cannot fix
// (authentication or a malformed batch).
var ErrRefused = errors.New("the audit sink refused the batch")

type shipper struct {
	o     Options
	rd    *reader
	batch []json.RawMessage
	bytes int
	first time.Time // when the oldest event in batch was read
	end   int64     // offset after the batch's last line
	saved State
}

// Run ships until ctx ends (returning nil) or an unrecoverable error.
func Run(ctx context.Context, o Options) error {
	if o.File == "" || o.URL == "" || o.StateDir == "" {
		return errors.New("audit ship: file, URL and state directory are required")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 400
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: time.Minute}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return fmt.Errorf("audit ship: state directory: %w", err)
	}
	st, ok, err := loadState(o.StateDir)
	if err != nil {
		return err
	}
	s := &shipper{o: o, saved: st}
	err = s.start(ctx, st, ok)
	if err == nil {
		err = s.loop(ctx)
		s.rd.close()
	}
	if ctx.Err() != nil {
		return nil // stopped: the position of every acknowledged batch is saved
	}
	return err
}

// start opens the file at the saved position, or the oldest file when
// there is no position or its file is gone.
func (s *shipper) start(ctx context.Context, st State, ok bool) error {
	if ok {
		c, found, err := s.locate(st)
		if err != nil {
			return err
		}
		if found {
			rd, err := openAt(c, st.Offset, s.o.File)
			if err == nil {
				rd.dev, rd.ino, rd.hash = st.Dev, st.Ino, st.Hash
				s.rd, s.end = rd, st.Offset
				s.o.Logger.Info("audit ship: resuming", "file", c.path, "offset", st.Offset)
				return nil
			}
			s.o.Logger.Warn("audit ship: cannot resume at the saved offset; starting that file again", "file", c.path, "err", err)
			return s.openFirst(ctx, &c)
		}
		s.o.Logger.Warn("audit ship: the file at the saved position is gone (rotated out and deleted?); starting at the oldest log file", "was", st.Name)
	}
	return s.openFirst(ctx, nil)
}

// locate finds the file a state names.
func (s *shipper) locate(st State) (candidate, bool, error) {
	if info, err := os.Stat(s.o.File); err == nil {
		dev, ino := devIno(info)
		if dev == st.Dev && ino == st.Ino {
			if h, err := firstLineHash(s.o.File, false); err == nil && h == st.Hash {
				return candidate{path: s.o.File, dev: dev, ino: ino}, true, nil
			}
		}
	}
	bks, err := backups(s.o.File)
	if err != nil {
		return candidate{}, false, err
	}
	for _, c := range bks {
		if h, err := firstLineHash(c.path, c.gz); err == nil && h == st.Hash {
			return c, true, nil
		}
	}
	return candidate{}, false, nil
}

// openFirst opens c (or the oldest file) at offset zero.
func (s *shipper) openFirst(ctx context.Context, c *candidate) error {
	if c == nil {
		bks, err := backups(s.o.File)
		if err != nil {
			return err
		}
		if len(bks) > 0 {
			c = &bks[0]
		}
	}
	if c == nil {
		return s.openLive(ctx)
	}
	rd, err := openAt(*c, 0, s.o.File)
	if err != nil {
		return fmt.Errorf("audit ship: %w", err)
	}
	s.rd, s.end = rd, 0
	return nil
}

// openLive opens the live file at zero, waiting for it to exist.
func (s *shipper) openLive(ctx context.Context) error {
	for {
		rd, err := openAt(candidate{path: s.o.File}, 0, s.o.File)
		if err == nil {
			s.rd, s.end = rd, 0
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit ship: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.o.PollInterval):
		}
	}
}

func (s *shipper) loop(ctx context.Context) error {
	rotated := false
	for {
		if ctx.Err() != nil {
			return nil
		}
		line, ok, err := s.rd.next()
		if err != nil {
			return fmt.Errorf("audit ship: read %s: %w", s.rd.c.path, err)
		}
		if ok {
			if err := s.add(ctx, line); err != nil {
				return err
			}
			continue
		}
		// At the end of what is there.
		if !s.rd.live || rotated {
			if len(s.rd.partial) > 0 {
				// A finished file ending without a newline: its last line is complete.
				line := s.rd.partial
				s.rd.partial = nil
				s.rd.offset += int64(len(line))
				if err := s.add(ctx, line); err != nil {
					return err
				}
			}
			if err := s.flush(ctx); err != nil {
				return err
			}
			if err := s.advance(ctx); err != nil {
				return err
			}
			rotated = false
			continue
		}
		if len(s.batch) > 0 && time.Since(s.first) >= s.o.FlushInterval {
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
		info, err := os.Stat(s.o.File)
		switch {
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("audit ship: %w", err)
		case err != nil:
			rotated = true // renamed away, the new file not yet created
			continue
		default:
			dev, ino := devIno(info)
			if dev != s.rd.dev || ino != s.rd.ino {
				rotated = true // read what was written before the rename, then move on
				continue
			}
			if info.Size() < s.rd.offset {
				s.o.Logger.Warn("audit ship: the live file shrank (truncated in place?); reading it from the start", "file", s.o.File)
				if err := s.flush(ctx); err != nil {
					return err
				}
				s.rd.close()
				if err := s.openLive(ctx); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.o.PollInterval):
		}
	}
}

// add queues one line, flushing full batches.
func (s *shipper) add(ctx context.Context, line []byte) error {
	raw := bytes.TrimRight(line, "\r\n")
	s.end = s.rd.offset
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if _, err := event.Decode(raw, ""); err != nil {
		s.o.Logger.Warn("audit ship: skipping a line that is not an audit event", "file", s.rd.c.path, "offset", s.rd.offset-int64(len(line)), "err", err)
		return nil
	}
	if len(s.batch) > 0 && s.bytes+len(raw) > s.o.MaxBatchBytes {
		s.end -= int64(len(line))
		if err := s.flush(ctx); err != nil {
			return err
		}
		s.end += int64(len(line))
	}
	if len(s.batch) == 0 {
		s.first = time.Now()
	}
	s.batch = append(s.batch, bytes.Clone(raw))
	s.bytes += len(raw)
	if len(s.batch) >= s.o.BatchSize {
		return s.flush(ctx)
	}
	return nil
}

// advance moves from the finished current file to the next one.
func (s *shipper) advance(ctx context.Context) error {
	cur := s.rd
	ts := cur.c.ts
	bks, err := backups(s.o.File)
	if err != nil {
		return err
	}
	if cur.live {
		// The live file was rotated: find the name it was given.
		ts = time.Time{}
		for _, c := range bks {
			if (!c.gz && c.dev == cur.dev && c.ino == cur.ino) || (c.gz && cur.hash != "" && hashMatches(c, cur.hash)) {
				ts = c.ts
				break
			}
		}
		if ts.IsZero() {
			if info, err := cur.f.Stat(); err == nil {
				ts = info.ModTime().UTC().Truncate(time.Millisecond)
			}
		}
	}
	cur.close()
	for _, c := range bks {
		if !c.ts.After(ts) || (!c.gz && c.dev == cur.dev && c.ino == cur.ino) || (cur.hash != "" && hashMatches(c, cur.hash)) {
			continue
		}
		rd, err := openAt(c, 0, s.o.File)
		if err != nil {
			return fmt.Errorf("audit ship: %w", err)
		}
		s.rd, s.end = rd, 0
		return nil
	}
	return s.openLive(ctx)
}

func hashMatches(c candidate, hash string) bool {
	h, err := firstLineHash(c.path, c.gz)
	return err == nil && h == hash
}

// flush sends the batch and, once the sink has it, records the position.
func (s *shipper) flush(ctx context.Context) error {
	pos := State{Dev: s.rd.dev, Ino: s.rd.ino, Hash: s.rd.hash, Offset: s.end, Name: s.rd.c.path}
	if len(s.batch) > 0 {
		if err := s.send(ctx, event.EncodeList(s.batch)); err != nil {
			return err
		}
		s.batch, s.bytes = s.batch[:0], 0
	}
	if pos == s.saved || pos.Hash == "" {
		return nil
	}
	if err := saveState(s.o.StateDir, pos); err != nil {
		return err
	}
	s.saved = pos
	return nil
}

func (s *shipper) send(ctx context.Context, body []byte) error {
	backoff := s.o.MinBackoff
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("audit ship: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		if s.o.Token != "" {
			req.Header.Set("Authorization", "Bearer "+s.o.Token)
		}
		wait := backoff
		resp, err := s.o.Client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			switch code := resp.StatusCode; {
			case code/100 == 2:
				return nil
			case code == 401 || code == 403 || code == 400 || code == 413 || code == 415:
				return fmt.Errorf("%w: status %d: %s", ErrRefused, code, bytes.TrimSpace(msg))
			default:
				err = fmt.Errorf("status %d: %s", code, bytes.TrimSpace(msg))
				if ra, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && ra > 0 {
					wait = min(time.Duration(ra)*time.Second, s.o.MaxBackoff)
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.o.Logger.Warn("audit ship: sending a batch failed; retrying", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.o.MaxBackoff)
	}
}

// reader reads complete lines from one file, counting uncompressed bytes.
type reader struct {
	c        candidate
	live     bool
	f        *os.File
	br       *bufio.Reader
	offset   int64 // bytes of complete lines consumed
	partial  []byte
	dev, ino uint64
	hash     string
}

func openAt(c candidate, offset int64, live string) (*reader, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	rd := &reader{c: c, live: c.path == live, f: f, offset: offset}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	rd.dev, rd.ino = devIno(info)
	var r io.Reader = f
	if c.gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", c.path, err)
		}
		r = zr
		if _, err := io.CopyN(io.Discard, zr, offset); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: skip to offset %d: %w", c.path, offset, err)
		}
	} else if offset > 0 {
		if offset > info.Size() {
			f.Close()
			return nil, fmt.Errorf("%s: offset %d is past the end (%d bytes)", c.path, offset, info.Size())
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	rd.br = bufio.NewReaderSize(r, 256<<10)
	return rd, nil
}

// next returns the next complete line (with its newline); ok is false at
// the end of what has been written so far.
func (rd *reader) next() ([]byte, bool, error) {
	chunk, err := rd.br.ReadSlice('\n')
	switch {
	case err == nil:
		var line []byte
		if len(rd.partial) > 0 {
			line = append(rd.partial, chunk...)
			rd.partial = nil
		} else {
			line = chunk
		}
		if rd.offset == 0 {
			rd.hash = hashLine(line)
		}
		rd.offset += int64(len(line))
		return line, true, nil
	case errors.Is(err, bufio.ErrBufferFull):
		rd.partial = append(rd.partial, chunk...)
		return rd.next()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		rd.partial = append(rd.partial, chunk...)
		return nil, false, nil
	}
	return nil, false, err
}

func (rd *reader) close() {
	if rd != nil && rd.f != nil {
		rd.f.Close()
	}
}
