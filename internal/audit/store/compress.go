package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

// Events stored under schema 1 hold their raw JSON in the row, compressed
// with Snappy behind a zero byte (JSON never starts with one), or as is.
const snappyMark = 0

func decompress(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != snappyMark {
		return b, nil
	}
	out, err := snappy.Decode(nil, b[1:])
	if err != nil {
		return nil, fmt.Errorf("stored event is corrupt: %w", err)
	}
	return out, nil
}

// Since schema 2 the raw events of one batch are concatenated and
// compressed together behind a mark byte: 400 events from one
// kube-apiserver repeat most of their keys and values, which zstd finds
// across events (per event, Snappy saved only 30 %).
//
// zstdMark (the first stores of schema 2): the zstd frames of the whole
// batch, one after the other; reading one event decodes them all.
//
// framedMark (since issue 13): the frames are small (frameSize, about 30
// events) and an index at the end says where each begins, so reading one
// event decodes only its frame, about 30 µs instead of 1–2 ms for the
// whole batch; a filter that matches one event in a hundred no longer
// decompresses the other 99. The price is the compression ratio: 117
// instead of 90 bytes an event for auditgen's events (measured in
// docs/benchmarks.md). Layout:
//
//	framedMark, frame 0, frame 1, …, index, len(index) as 4 bytes little-endian
//
// where the index holds, per frame, its uncompressed and compressed sizes
// as uvarints. An event never straddles two frames.
const (
	zstdMark   = 1
	framedMark = 2
)

// windowSize is the zstd encoder's window: an encoder keeps a history of
// twice its window (16 MiB each with the default 8 MiB window).
const windowSize = 1 << 20

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdInit() error {
	zstdOnce.Do(func() {
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithWindowSize(windowSize))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
	})
	return zstdErr
}

var errCorruptBatch = errors.New("stored event batch is corrupt")

// batchBlob reads events out of one stored batch, decoding only the
// frames it needs (all of them for the zstdMark format), each once.
type batchBlob struct {
	data   []byte   // the stored batch; nil after keep
	src    [][]byte // after keep: the compressed frames kept, by number
	starts []int    // framedMark: uncompressed offset of each frame, then the total
	comp   []int    // framedMark: offset of each frame in data, then the index's
	frames [][]byte // decoded frames, nil until needed
}

// openBatch parses a stored batch's frame index.
func openBatch(data []byte) (*batchBlob, error) {
	if err := zstdInit(); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", errCorruptBatch)
	}
	b := &batchBlob{data: data}
	switch data[0] {
	case zstdMark:
		return b, nil
	case framedMark:
	default:
		return nil, fmt.Errorf("%w: unknown format %d", errCorruptBatch, data[0])
	}
	if len(data) < 5 {
		return nil, fmt.Errorf("%w: no frame index", errCorruptBatch)
	}
	n := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if n > len(data)-5 {
		return nil, fmt.Errorf("%w: frame index of %d bytes", errCorruptBatch, n)
	}
	idx := data[len(data)-4-n : len(data)-4]
	b.starts, b.comp = []int{0}, []int{1}
	for len(idx) > 0 {
		raw, k := binary.Uvarint(idx)
		if k <= 0 {
			return nil, fmt.Errorf("%w: frame index", errCorruptBatch)
		}
		c, k2 := binary.Uvarint(idx[k:])
		if k2 <= 0 {
			return nil, fmt.Errorf("%w: frame index", errCorruptBatch)
		}
		idx = idx[k+k2:]
		b.starts = append(b.starts, b.starts[len(b.starts)-1]+int(raw))
		b.comp = append(b.comp, b.comp[len(b.comp)-1]+int(c))
	}
	if b.comp[len(b.comp)-1] != len(data)-4-n {
		return nil, fmt.Errorf("%w: frame index does not match the frames", errCorruptBatch)
	}
	b.frames = make([][]byte, len(b.starts)-1)
	return b, nil
}

// event returns the n bytes of raw JSON at uncompressed offset off.
func (b *batchBlob) event(off, n int) ([]byte, error) {
	i, err := b.frameOf(off)
	if err != nil {
		return nil, err
	}
	if err := b.decode(i); err != nil {
		return nil, err
	}
	start := 0
	if b.starts != nil {
		start = b.starts[i]
	}
	return within(b.frames[i], off-start, n)
}

// keep copies out of data the compressed frames that hold offs (all of a
// batch of one stream) and lets data go: the caller may reuse it.
func (b *batchBlob) keep(offs []int) error {
	if b.starts == nil {
		b.data = bytes.Clone(b.data)
		return nil
	}
	b.src = make([][]byte, len(b.frames))
	for _, off := range offs {
		i, err := b.frameOf(off)
		if err != nil {
			return err
		}
		if b.src[i] == nil {
			b.src[i] = bytes.Clone(b.data[b.comp[i]:b.comp[i+1]])
		}
	}
	b.data = nil
	return nil
}

// frameOf returns the frame that holds uncompressed offset off (0 for a
// batch of one stream).
func (b *batchBlob) frameOf(off int) (int, error) {
	if b.starts == nil {
		return 0, nil
	}
	// The last frame starting at or before off.
	i := sort.SearchInts(b.starts, off+1) - 1
	if i < 0 || i >= len(b.frames) {
		return 0, fmt.Errorf("%w: offset %d outside the batch", errCorruptBatch, off)
	}
	return i, nil
}

// decode decompresses frame i unless it is already. Different frames of
// one batch may be decoded at once.
func (b *batchBlob) decode(i int) error {
	if b.starts == nil { // zstdMark: one buffer for the whole batch
		if b.frames == nil {
			out, err := zstdDec.DecodeAll(b.data[1:], nil)
			if err != nil {
				return fmt.Errorf("%w: %w", errCorruptBatch, err)
			}
			b.frames = [][]byte{out}
		}
		return nil
	}
	if b.frames[i] != nil {
		return nil
	}
	var src []byte
	switch {
	case b.src != nil:
		if src = b.src[i]; src == nil {
			return fmt.Errorf("frame %d was not read", i)
		}
	default:
		src = b.data[b.comp[i]:b.comp[i+1]]
	}
	out, err := zstdDec.DecodeAll(src, make([]byte, 0, b.starts[i+1]-b.starts[i]))
	if err != nil {
		return fmt.Errorf("%w: frame %d: %w", errCorruptBatch, i, err)
	}
	if len(out) != b.starts[i+1]-b.starts[i] {
		return fmt.Errorf("%w: frame %d is %d bytes, its index says %d", errCorruptBatch, i, len(out), b.starts[i+1]-b.starts[i])
	}
	b.frames[i] = out
	return nil
}

// blobFrame is one frame of one batch.
type blobFrame struct {
	b *batchBlob
	i int
}

// decodeAll decodes frames on every core: a page of JSON lines needs
// thousands of them, each about 30 µs.
func decodeAll(frames []blobFrame) error {
	workers := min(runtime.GOMAXPROCS(0), len(frames)/16)
	if workers <= 1 {
		for _, f := range frames {
			if err := f.b.decode(f.i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(frames) {
					return
				}
				if err := frames[k].b.decode(frames[k].i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func within(buf []byte, off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+n > len(buf) {
		return nil, fmt.Errorf("%w: event outside its frame", errCorruptBatch)
	}
	return buf[off : off+n : off+n], nil
}
