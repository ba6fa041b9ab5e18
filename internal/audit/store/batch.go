package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
)

// frameSize is how much raw JSON a Batch gathers before compressing it
// into one zstd frame (framedMark in compress.go): a default webhook batch
// (400 events of about 1 KB) is about 13 frames, each decoded on its own
// when a query reads one of its events. A frame is compressed as soon as
// it is full, so a big batch never sits uncompressed in memory.
const frameSize = 32 << 10

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
	rows      []batchRow
	strs      map[string]int32    // the batch's dictionary strings, by index in list
	list      []string            // each once
	sets      map[string][]string // each group set (as JSON) with its groups
	frame     []byte              // raw JSON not yet compressed
	blob      []byte              // framedMark, then the compressed frames
	index     []byte              // per frame: uncompressed and compressed size (uvarints)
	sealedLen int                 // len(blob) once finish has appended the index
	size      int                 // uncompressed bytes added
	maxTS     int64
	err       error
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
	out := make([]event.Event, len(b.rows))
	if len(b.rows) == 0 {
		return out, nil
	}
	blob, err := openBatch(b.sealed())
	if err != nil {
		return nil, err
	}
	for i, r := range b.rows {
		raw, err := blob.event(r.off, r.n)
		if err != nil {
			return nil, err
		}
		e, err := event.DecodeItem(raw, b.list[r.f[7]])
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
		b.blob = append(make([]byte, 0, 1+len(b.frame)/3), framedMark)
	}
	n := len(b.blob)
	b.blob = zstdEnc.EncodeAll(b.frame, b.blob)
	b.index = binary.AppendUvarint(b.index, uint64(len(b.frame)))
	b.index = binary.AppendUvarint(b.index, uint64(len(b.blob)-n))
	b.frame = b.frame[:0]
	return nil
}

// sealed is the stored form of the batch: the blob with its frame index
// appended (framedMark's layout). After finish it is the blob itself.
func (b *Batch) sealed() []byte {
	if b.sealedLen > 0 {
		return b.blob
	}
	out := make([]byte, 0, len(b.blob)+len(b.index)+4)
	out = append(append(out, b.blob...), b.index...)
	return binary.LittleEndian.AppendUint32(out, uint32(len(b.index)))
}

// finish compresses what is left, drops the frame buffer and returns the
// stored form of the batch; nothing can be added after it.
func (b *Batch) finish() ([]byte, error) {
	if b.sealedLen > 0 {
		return b.blob, nil
	}
	if err := b.flush(); err != nil {
		return nil, err
	}
	b.frame = nil
	if b.blob == nil {
		return nil, nil
	}
	b.blob = binary.LittleEndian.AppendUint32(append(b.blob, b.index...), uint32(len(b.index)))
	b.sealedLen = len(b.blob)
	b.err = errors.New("store audit events: the batch is already stored")
	return b.blob, nil
}
