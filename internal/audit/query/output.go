package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Formats are the output formats Write accepts.
var Formats = []string{"table", "json", "jsonl"}

// Writer writes events in one format. Table and JSON lines can be written
// a page at a time; JSON is one array closed by Close.
type Writer struct {
	w      io.Writer
	format string
	tw     *tabwriter.Writer
	n      int
}

// NewWriter returns a writer for format (table, json or jsonl).
func NewWriter(w io.Writer, format string) (*Writer, error) {
	out := &Writer{w: w, format: format}
	switch format {
	case "table":
		out.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(out.tw, "TIME\tUSER\tVERB\tRESOURCE\tNAMESPACE\tNAME\tCODE\tSOURCE\tAUDIT ID")
	case "json", "jsonl":
	default:
		return nil, fmt.Errorf("unknown output format %q: want table, json or jsonl", format)
	}
	return out, nil
}

// NeedsRaw reports whether the format prints the full events.
func (w *Writer) NeedsRaw() bool { return w.format != "table" }

// Write writes events. JSON formats print each event's original JSON,
// which encoding/json or kube-apiserver escaped; the table shows the
// fields rendered by termsafe.String, so that an escape sequence or a line
// break in a name shows as its escape (\x1b, \n) inside quotes.
func (w *Writer) Write(events []event.Event) error {
	for _, e := range events {
		switch w.format {
		case "table":
			res := e.Resource
			if e.Sub != "" {
				res += "/" + e.Sub
			}
			code := ""
			if e.Code != 0 {
				code = strconv.Itoa(e.Code)
			}
			// Every field but the time and the code is data from the
			// request (any user chooses an object name with a request
			// that 404s): termsafe keeps its escapes and line breaks
			// from reaching the terminal or forging a row.
			fmt.Fprintf(w.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339Nano), dash(e.User), dash(e.Verb), dash(res), dash(e.Namespace), dash(e.Name), dash(code), dash(e.Source), termsafe.String(e.AuditID))
		case "jsonl":
			if _, err := w.w.Write(append(compact(e.Raw), '\n')); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		case "json":
			sep := ",\n"
			if w.n == 0 {
				sep = "[\n"
			}
			if _, err := io.WriteString(w.w, sep); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if _, err := w.w.Write(compact(e.Raw)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		w.n++
	}
	if w.tw != nil {
		if err := w.tw.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// Close finishes the output (closes the JSON array).
func (w *Writer) Close() error {
	if w.format == "json" {
		s := "\n]\n"
		if w.n == 0 {
			s = "[]\n"
		}
		if _, err := io.WriteString(w.w, s); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// dash renders a table cell: "-" for nothing, the value made safe for a
// terminal otherwise (a value "-" is quoted so that it is not taken for
// nothing).
func dash(s string) string {
	switch s {
	case "":
		return "-"
	case "-":
		return `"-"`
	}
	return termsafe.String(s)
}

func compact(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
