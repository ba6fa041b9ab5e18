package query_test

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// TestTableEscapesAttacks puts each attack in every field the table shows
// and checks that no control reaches the output, that each event is one
// row, and that the name shows as its escapes.
func TestTableEscapesAttacks(t *testing.T) {
	names := make([]string, 0, len(termsafetest.Attacks))
	for name := range termsafetest.Attacks {
		names = append(names, name)
	}
	sort.Strings(names)
	var events []event.Event
	for i, name := range names {
		a := termsafetest.Attacks[name]
		raw, _ := json.Marshal(map[string]any{"auditID": a, "objectRef": map[string]string{"name": a}})
		events = append(events, event.Event{
			Time: time.Unix(int64(i), 0), AuditID: a, User: "oidc:" + a, Verb: a, Resource: a, Sub: a,
			Namespace: a, Name: a, Code: 404, Source: a, Raw: raw,
		})
	}
	events = append(events, event.Event{Time: time.Unix(99, 0), AuditID: "ok", User: termsafetest.Visible, Name: termsafetest.Visible, Verb: "-"})

	var b bytes.Buffer
	w, err := query.NewWriter(&b, "table")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(events); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	termsafetest.CheckOutput(t, out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1+len(events) {
		t.Fatalf("%d lines for %d events (a forged row?):\n%s", len(lines), len(events), out)
	}
	for i, name := range names {
		row := lines[1+i]
		if want := strconv.Quote(termsafetest.Attacks[name]); !strings.Contains(row, want) {
			t.Errorf("%s: row %q does not show the name as %s", name, row, want)
		}
		if !strings.HasPrefix(row, time.Unix(int64(i), 0).UTC().Format(time.RFC3339Nano)+" ") {
			t.Errorf("%s: row %d does not start with its own time: %q", name, i, row)
		}
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, termsafetest.Visible) || !strings.Contains(last, `"-"`) {
		t.Errorf("printable names must show as they are, a verb \"-\" quoted: %q", last)
	}

	// JSON lines stay the events' own JSON: exact, and escaped by it.
	b.Reset()
	w, _ = query.NewWriter(&b, "jsonl")
	if err := w.Write(events[:len(names)]); err != nil {
		t.Fatal(err)
	}
	jl := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(jl) != len(names) {
		t.Fatalf("jsonl: %d lines for %d events", len(jl), len(names))
	}
	for i, l := range jl {
		var e, want struct{ AuditID string }
		_ = json.Unmarshal(events[i].Raw, &want) // json.Marshal made invalid UTF-8 valid
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.AuditID != want.AuditID || !bytes.Equal([]byte(l), events[i].Raw) {
			t.Errorf("jsonl line %d = %q, %v: not the event's JSON", i, l, err)
		}
	}
}

// BenchmarkTable writes a page of 50 table rows (what an interactive
// `gatehouse audit query` prints): the cost of escaping every field.
func BenchmarkTable(b *testing.B) {
	events := make([]event.Event, 50)
	for i := range events {
		events[i] = event.Event{Time: time.Unix(int64(i), 0), AuditID: "3f1c2a9e-5b7d-4c1e-8a2b-9d0e1f2a3b4c", User: "oidc:alice",
			Verb: "get", Resource: "configmaps", Namespace: "payments", Name: "settings-" + strconv.Itoa(i), Code: 200, Source: "cp-1"}
	}
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		w, _ := query.NewWriter(&buf, "table")
		if err := w.Write(events); err != nil {
			b.Fatal(err)
		}
	}
}
