package ship

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// State is the shipper's position: a file, named by its identity, and the
// byte offset (in the uncompressed content) up to which every event has
// been acknowledged by the sink.
type State struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Hash   string `json:"firstLineHash"` // SHA-256 of the file's first line
	Offset int64  `json:"offset"`
	Name   string `json:"name"` // for people; not used to find the file
}

type stateFile struct {
	State State  `json:"state"`
	CRC   uint32 `json:"crc32"`
}

// ErrCorruptState means the state file cannot be trusted.
var ErrCorruptState = errors.New("shipper state file is corrupt")

func statePath(dir string) string { return filepath.Join(dir, "audit-ship.state") }

func crcOf(s State) uint32 {
	b, _ := json.Marshal(s)
	return crc32.ChecksumIEEE(b)
}

// loadState reads the state; ok is false when there is none yet.
func loadState(dir string) (State, bool, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("read shipper state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil || f.CRC != crcOf(f.State) || f.State.Offset < 0 {
		why := "checksum mismatch"
		if err != nil {
			why = err.Error()
		}
		return State{}, false, fmt.Errorf("%w: %s (%s): remove it to ship again from the oldest log file; the sink drops events it already has", ErrCorruptState, statePath(dir), why)
	}
	return f.State, true, nil
}

// saveState replaces the state file atomically: write, sync, rename, sync
// the directory.
func saveState(dir string, s State) error {
	b, err := json.Marshal(stateFile{State: s, CRC: crcOf(s)})
	if err != nil {
		return fmt.Errorf("save shipper state: %w", err)
	}
	tmp := statePath(dir) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save shipper state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, statePath(dir))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save shipper state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
