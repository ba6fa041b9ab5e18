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

// Batch is one webhook batch prepared for InsertBatch. Events are added
// one at a time as they are decoded; each event's raw JSON is copied into
// the current frame and compressed when the frame is full, so the batch
// holds the indexed fields and the compressed JSON, not the JSON itself.
// The sink builds one while it reads a request body.
type Batch struct {
	events []event.Event // Raw is nil once added
	offs   []int         // each event's offset in the uncompressed batch
	lens   []int         // each event's raw length
	frame  []byte        // raw JSON not yet compressed
	blob   []byte        // zstdMark, then the compressed frames
	size   int           // uncompressed bytes added
	maxTS  int64
	err    error
}

// NewBatch returns an empty Batch.
func NewBatch() *Batch { return &Batch{} }

// Add adds an event. Its Raw is copied, so the caller may reuse it.
func (b *Batch) Add(e event.Event) error {
	if b.err != nil {
		return b.err
	}
	if len(b.events) == 0 || e.Time.UnixNano() > b.maxTS {
		b.maxTS = e.Time.UnixNano()
	}
	b.offs = append(b.offs, b.size)
	b.lens = append(b.lens, len(e.Raw))
	b.size += len(e.Raw)
	if b.frame == nil {
		b.frame = make([]byte, 0, min(frameSize, max(len(e.Raw)*64, 4096)))
	}
	b.frame = append(b.frame, e.Raw...)
	e.Raw = nil
	b.events = append(b.events, e)
	if len(b.frame) >= frameSize {
		return b.flush()
	}
	return nil
}

// Len is the number of events added.
func (b *Batch) Len() int { return len(b.events) }

// RawBytes is the size of the events' raw JSON.
func (b *Batch) RawBytes() int { return b.size }

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
