package store

import (
	"fmt"

	"github.com/golang/snappy"
)

// Raw events are stored compressed with Snappy behind a zero byte (JSON
// never starts with one); uncompressed JSON is read as is. Compressing
// takes the raw JSON from about 1 KB to about 400 bytes, which is most of
// what the store writes: fewer WAL and checkpoint bytes at ingest.
const snappyMark = 0

func compress(raw []byte) []byte {
	out := make([]byte, 1+snappy.MaxEncodedLen(len(raw)))
	out[0] = snappyMark
	return out[:1+len(snappy.Encode(out[1:], raw))]
}

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
