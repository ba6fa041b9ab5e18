package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// ArchiveFile is one file of an archive.
type ArchiveFile struct {
	Name string
	Mode int64
	Data []byte
}

func sorted(files []ArchiveFile) []ArchiveFile {
	s := append([]ArchiveFile(nil), files...)
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

// TarGz packs files into a gzip-compressed tar: entries sorted by name,
// owned by 0:0 with no user or group names, every time set to mtime, and
// a gzip header without a time or name. The same files and mtime give the
// same bytes.
func TarGz(files []ArchiveFile, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	tw := tar.NewWriter(gz)
	for _, f := range sorted(files) {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     f.Mode,
			Size:     int64(len(f.Data)),
			ModTime:  mtime.UTC().Truncate(time.Second),
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("release: tar %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("release: tar %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return buf.Bytes(), nil
}

// Zip packs files into a zip archive (deflate), entries sorted by name,
// every time set to mtime (in UTC), Unix modes recorded.
func Zip(files []ArchiveFile, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, f := range sorted(files) {
		hdr := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: mtime.UTC().Truncate(time.Second)}
		hdr.SetMode(fs.FileMode(f.Mode) & fs.ModePerm)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, fmt.Errorf("release: zip %s: %w", f.Name, err)
		}
		if _, err := w.Write(f.Data); err != nil {
			return nil, fmt.Errorf("release: zip %s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return buf.Bytes(), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// SHA256Sums formats checksums as sha256sum(1) does ("<hex>  <name>"),
// sorted by name, so `sha256sum -c SHA256SUMS` checks them.
func SHA256Sums(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.String()
}
