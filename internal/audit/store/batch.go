package store

import (
	"fmt"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
)

// frameSize is how much raw JSON a Batch gathers before compressing it
// into one zstd frame. A default webhook batch (400 events of about 1 KB)
// fits in one frame, as before; a bigger batch is compressed frame by
// frame as its events arrive, so it never sits uncompressed in memory.
// The frames of a batch are concatenated, and the uncompressed offsets of
// the events stay what they were: decompressBatch decodes every frame.
const frameSize = 1 << 20

// nDict is the number of an event's strings kept in the dictionary
// (dictFields).
const nDict = 11

// Batch is one webhook batch prepared for InsertBatch. Events are added
// one at a time as they are decoded. A Batch keeps only what the store
// writes, compactly: each event's raw JSON is copied into the current
// frame and compressed when the frame is full, and its dictionary strings
// (user, verb, groups, ...) are kept once per batch. A batch of kube-
// apiserver events of about 1 KB holds about a quarter of its size, so
// the sink can decode a body as it arrives without holding it.
type Batch struct {
	rows  []batchRow
	strs  map[string]int32    // the batch's dictionary strings, by index in list
	list  []string            // each once
	sets  map[string][]string // each group set (as JSON) with its groups
	frame []byte              // raw JSON not yet compressed
	blob  []byte              // zstdMark, then the compressed frames
	size  int                 // uncompressed bytes added
	maxTS int64
	err   error
}

// batchRow is one event of a Batch.
type batchRow struct {
	ts      int64
	auditID string
	name    string
	code    int
	off, n  int          // where its raw JSON lies in the uncompressed batch
	f       [nDict]int32 // dictFields, as indexes into Batch.list
}

// NewBatch returns an empty Batch.
func NewBatch() *Batch {
	return &Batch{strs: map[string]int32{}, sets: map[string][]string{}}
}

// Add adds an event. Its Raw is copied, so the caller may reuse it.
func (b *Batch) Add(e event.Event) error {
	if b.err != nil {
		return b.err
	}
	ts := e.Time.UnixNano()
	if len(b.rows) == 0 || ts > b.maxTS {
		b.maxTS = ts
	}
	gset := groupsJSON(e.Groups)
	if _, ok := b.sets[gset]; !ok {
		b.sets[gset] = e.Groups
	}
	r := batchRow{ts: ts, auditID: e.AuditID, name: e.Name, code: e.Code, off: b.size, n: len(e.Raw)}
	for i, v := range dictFields(&e, gset) {
		k, ok := b.strs[v]
		if !ok {
			k = int32(len(b.list))
			b.strs[v] = k
			b.list = append(b.list, v)
		}
		r.f[i] = k
	}
	b.rows = append(b.rows, r)
	b.size += len(e.Raw)
	if b.frame == nil {
		b.frame = make([]byte, 0, min(frameSize, max(len(e.Raw)*64, 4096)))
	}
	b.frame = append(b.frame, e.Raw...)
	if len(b.frame) >= frameSize {
		return b.flush()
	}
	return nil
}

// Len is the number of events added.
func (b *Batch) Len() int { return len(b.rows) }

// RawBytes is the size of the events' raw JSON.
func (b *Batch) RawBytes() int { return b.size }

// Events decodes the batch's events back from their JSON, each as the
// store would return it: for fakes of the store in tests.
func (b *Batch) Events() ([]event.Event, error) {
	if err := b.flush(); err != nil {
		return nil, err
	}
	var raw []byte
	if b.blob != nil {
		var err error
		if raw, err = decompressBatch(b.blob); err != nil {
			return nil, err
		}
	}
	out := make([]event.Event, len(b.rows))
	for i, r := range b.rows {
		e, err := event.DecodeItem(raw[r.off:r.off+r.n], b.list[r.f[7]])
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// flush compresses the current frame onto the blob.
func (b *Batch) flush() error {
	if len(b.frame) == 0 {
		return nil
	}
	if err := zstdInit(); err != nil {
		b.err = fmt.Errorf("zstd: %w", err)
		return b.err
	}
	if b.blob == nil {
		b.blob = append(make([]byte, 0, 1+len(b.frame)/3), zstdMark)
	}
	b.blob = zstdEnc.EncodeAll(b.frame, b.blob)
	b.frame = b.frame[:0]
	return nil
}

// finish compresses what is left and drops the frame buffer.
func (b *Batch) finish() ([]byte, error) {
	if err := b.flush(); err != nil {
		return nil, err
	}
	b.frame = nil
	return b.blob, nil
}
