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
// across events (per event, Snappy saved only 30 %). A batch over 1 MiB
// is several zstd frames, one after the other (batch.go).
const zstdMark = 1

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdInit() error {
	zstdOnce.Do(func() {
		// The window is a frame (batch.go): an encoder keeps a history of
		// twice its window, 16 MiB each with the default 8 MiB window.
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithWindowSize(frameSize))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
	})
	return zstdErr
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
