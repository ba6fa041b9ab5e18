package query_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2026-03-01T10:00:00Z", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), false},
		{"2026-03-01", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"-2h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"3x", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := query.ParseTime(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseCodeAndCursor(t *testing.T) {
	for in, ok := range map[string]bool{"403": true, "": true, "99": false, "600": false, "abc": false} {
		if _, err := query.ParseCode(in); (err == nil) != ok {
			t.Errorf("ParseCode(%q): %v", in, err)
		}
	}
	c := query.Cursor{Time: 1772359200000000000, ID: 42}
	got, err := query.ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("cursor round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "1", "a-b", "1--2", "1-"} {
		if _, err := query.ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted", bad)
		}
	}
	f := query.Filter{Since: time.Unix(10, 0), Until: time.Unix(5, 0)}
	if err := f.Validate(); err == nil {
		t.Error("since after until accepted")
	}
}

func TestWriter(t *testing.T) {
	events := []event.Event{
		{Time: time.Unix(1, 0), User: "oidc:alice", Verb: "delete", Resource: "pods", Sub: "exec", Code: 403, AuditID: "a", Raw: []byte(`{"auditID": "a"}`)},
		{Time: time.Unix(2, 0), User: "oidc:bob", Verb: "get", AuditID: "b", Raw: []byte(`{"auditID":"b"}`)},
	}
	tests := []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"table", func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.Contains(lines[1], "pods/exec") || !strings.Contains(lines[1], "403") || !strings.Contains(lines[2], " - ") {
				t.Errorf("table:\n%s", out)
			}
		}},
		{"jsonl", func(t *testing.T, out string) {
			if out != "{\"auditID\":\"a\"}\n{\"auditID\":\"b\"}\n" {
				t.Errorf("jsonl: %q", out)
			}
		}},
		{"json", func(t *testing.T, out string) {
			var v []map[string]string
			if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 2 || v[1]["auditID"] != "b" {
				t.Errorf("json: %q %v", out, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var b bytes.Buffer
			w, err := query.NewWriter(&b, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(events); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			tt.check(t, b.String())
		})
	}
	var b bytes.Buffer
	w, _ := query.NewWriter(&b, "json")
	w.Close()
	if b.String() != "[]\n" {
		t.Errorf("empty json: %q", b.String())
	}
	if _, err := query.NewWriter(&b, "yaml"); err == nil {
		t.Error("yaml accepted")
	}
}
