package store

import (
	"errors"
	"fmt"
	"sync"

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
const zstdMark = 1

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdInit() error {
	zstdOnce.Do(func() {
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
	})
	return zstdErr
}

// compressBatch compresses a batch's concatenated raw events. The
// encoder is safe for concurrent use: each Insert compresses its own
// batch, outside the single SQLite writer.
func compressBatch(raw []byte) ([]byte, error) {
	if err := zstdInit(); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	out := make([]byte, 1, 1+len(raw)/3)
	out[0] = zstdMark
	return zstdEnc.EncodeAll(raw, out), nil
}

func decompressBatch(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != zstdMark {
		return nil, errors.New("stored event batch is corrupt: unknown format")
	}
	if err := zstdInit(); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	out, err := zstdDec.DecodeAll(b[1:], nil)
	if err != nil {
		return nil, fmt.Errorf("stored event batch is corrupt: %w", err)
	}
	return out, nil
}
