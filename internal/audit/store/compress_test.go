package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
)

// TestOpenBatchRejectsCorruptIndex: a damaged frame index is an error
// naming the batch as corrupt, never a panic or wrong bytes.
func TestOpenBatchRejectsCorruptIndex(t *testing.T) {
	b := NewBatch()
	var raw []byte
	for i := range 200 {
		ev := fmt.Appendf(nil, `{"auditID":"%04d","stage":"ResponseComplete","verb":"get","padding":%q}`, i, bytes.Repeat([]byte{'x', byte('a' + i%26)}, 200))
		raw = append(raw, ev...)
		if err := b.Add(event.Event{AuditID: fmt.Sprint(i), Raw: ev}); err != nil {
			t.Fatal(err)
		}
	}
	good, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	bb, err := openBatch(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(bb.frames) < 3 {
		t.Fatalf("%d frames, want several", len(bb.frames))
	}
	for _, off := range []int{0, len(raw) / 2, len(raw) - 10} {
		got, err := bb.event(off, 10)
		if err != nil || !bytes.Equal(got, raw[off:off+10]) {
			t.Fatalf("bytes at %d: %q, %v", off, got, err)
		}
	}
	if _, err := bb.event(len(raw)-5, 10); !errors.Is(err, errCorruptBatch) {
		t.Errorf("past the end: %v", err)
	}
	cut := func(b []byte, n int) []byte { return append([]byte{}, b[:len(b)-n]...) }
	bigIndex := binary.LittleEndian.AppendUint32(cut(good, 4), 1<<30)
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-6] ^= 0x7f // a frame size in the index
	for name, data := range map[string][]byte{
		"empty": {}, "unknown mark": {7, 0, 0, 0, 0}, "no index": {framedMark, 1},
		"truncated": cut(good, 1), "index too long": bigIndex, "sizes changed": flipped,
	} {
		bb, err := openBatch(data)
		if err == nil {
			_, err = bb.event(0, 1)
		}
		if !errors.Is(err, errCorruptBatch) {
			t.Errorf("%s: %v, want a corrupt batch", name, err)
		}
	}
}

// TestMigrateKeepsTempStoreInMemory: the migration sorts in temporary
// files, and the writer's connection goes back to memory for the
// statement journals of the inserts.
func TestMigrateKeepsTempStoreInMemory(t *testing.T) {
	db, err := Open(context.Background(), "sqlite3", filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode int
	if err := db.w.QueryRow("PRAGMA temp_store").Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("the writer's temp_store after the migration: %d, %v; want 2 (memory)", mode, err)
	}
}
