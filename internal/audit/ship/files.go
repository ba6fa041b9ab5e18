package ship

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// backupTime is how lumberjack (kube-apiserver's audit log writer) stamps
// rotated files: audit.log becomes audit-2006-01-02T15-04-05.000.log, and
// with compression audit-2006-01-02T15-04-05.000.log.gz.
const backupTime = "2006-01-02T15-04-05.000"

// candidate is a log file: a backup (with its rotation time) or the live
// file.
type candidate struct {
	path string
	ts   time.Time // zero for the live file
	gz   bool
	dev  uint64
	ino  uint64
}

// backups lists the rotated copies of live, oldest first. When both
// x.log and x.log.gz exist, lumberjack is still compressing: x.log is the
// complete one.
func backups(live string) ([]candidate, error) {
	dir, base := filepath.Dir(live), filepath.Base(live)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // not written yet: the live file is waited for
	}
	if err != nil {
		return nil, fmt.Errorf("list log directory: %w", err)
	}
	plain := map[string]bool{}
	var out []candidate
	for _, e := range entries {
		name := e.Name()
		gz := strings.HasSuffix(name, ext+".gz")
		stem := strings.TrimSuffix(name, ".gz")
		if !strings.HasPrefix(stem, prefix) || !strings.HasSuffix(stem, ext) {
			continue
		}
		ts, err := time.Parse(backupTime, strings.TrimSuffix(strings.TrimPrefix(stem, prefix), ext))
		if err != nil {
			continue
		}
		if !gz {
			plain[stem] = true
		}
		c := candidate{path: filepath.Join(dir, name), ts: ts, gz: gz}
		if info, err := os.Stat(c.path); err == nil {
			c.dev, c.ino = devIno(info)
		}
		out = append(out, c)
	}
	kept := out[:0]
	for _, c := range out {
		if c.gz && plain[strings.TrimSuffix(filepath.Base(c.path), ".gz")] {
			continue
		}
		kept = append(kept, c)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].ts.Before(kept[j].ts) })
	return kept, nil
}

// firstLineHash hashes a file's first complete line ("" when it has none
// yet).
func firstLineHash(path string, gz bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	line, err := bufio.NewReaderSize(r, 64<<10).ReadBytes('\n')
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hashLine(line), nil
}

func hashLine(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}
