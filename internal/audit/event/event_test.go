package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func TestDecodeListMatchesAuditTypes(t *testing.T) {
	g := auditgen.New(1, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Millisecond)
	items := g.Batch(50)
	body := event.EncodeList(items)
	got, err := event.DecodeList(body, "cp-1")
	if err != nil {
		t.Fatal(err)
	}
	// The reference: the same body decoded with the Kubernetes types.
	var want auditv1.EventList
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Items) {
		t.Fatalf("got %d events, want %d", len(got), len(want.Items))
	}
	for i, w := range want.Items {
		e := got[i]
		if e.AuditID != string(w.AuditID) || e.Stage != string(w.Stage) || e.Verb != w.Verb ||
			e.User != w.User.Username || strings.Join(e.Groups, ",") != strings.Join(w.User.Groups, ",") ||
			e.Resource != w.ObjectRef.Resource || e.Namespace != w.ObjectRef.Namespace || e.Name != w.ObjectRef.Name ||
			e.Code != int(w.ResponseStatus.Code) || !e.Time.Equal(w.RequestReceivedTimestamp.Time) ||
			e.SourceIP != w.SourceIPs[0] || e.UserAgent != w.UserAgent || e.Source != "cp-1" {
			t.Errorf("item %d: decoded %+v, want %+v", i, e, w)
		}
		if string(e.Raw) != string(items[i]) {
			t.Errorf("item %d: raw JSON not kept as received", i)
		}
	}
}

func TestDecodeListRejects(t *testing.T) {
	good := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete","requestReceivedTimestamp":"2026-01-02T03:04:05.000000Z"}`
	tests := []struct {
		name, body, wantMsg string
	}{
		{"not json", `{`, "not an EventList"},
		{"wrong kind", `{"kind":"Event","apiVersion":"audit.k8s.io/v1","items":[]}`, "want EventList"},
		{"old version", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[]}`, "apiVersion"},
		{"item without auditID", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + good + `,{"stage":"ResponseComplete","requestReceivedTimestamp":"2026-01-02T03:04:05Z"}]}`, "item 1: invalid audit event: auditID is empty"},
		{"item without stage", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"x","requestReceivedTimestamp":"2026-01-02T03:04:05Z"}]}`, "stage is empty"},
		{"item without time", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"x","stage":"ResponseComplete"}]}`, "stageTimestamp are both missing"},
		{"item is not an object", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[42]}`, "item 0"},
		{"bad time", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"x","stage":"ResponseComplete","requestReceivedTimestamp":"yesterday"}]}`, "item 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := event.DecodeList([]byte(tt.body), "s")
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func benchBody(b *testing.B) []byte {
	g := auditgen.New(2, time.Now(), time.Millisecond)
	body := event.EncodeList(g.Batch(400))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	return body
}

// BenchmarkDecodeLight decodes a batch of 400 events the way the sink does.
func BenchmarkDecodeLight(b *testing.B) {
	body := benchBody(b)
	for b.Loop() {
		if _, err := event.DecodeList(body, "s"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAuditV1 decodes the same batch into auditv1.EventList and
// re-encodes each event, which keeping the raw JSON would need.
func BenchmarkDecodeAuditV1(b *testing.B) {
	body := benchBody(b)
	for b.Loop() {
		var l auditv1.EventList
		if err := json.Unmarshal(body, &l); err != nil {
			b.Fatal(err)
		}
		for i := range l.Items {
			if _, err := json.Marshal(&l.Items[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecodeAuditV1Only decodes into auditv1.EventList without
// keeping the raw events.
func BenchmarkDecodeAuditV1Only(b *testing.B) {
	body := benchBody(b)
	for b.Loop() {
		var l auditv1.EventList
		if err := json.Unmarshal(body, &l); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEventSize(t *testing.T) {
	g := auditgen.New(3, time.Now(), time.Millisecond)
	n := 0
	for range 1000 {
		n += len(g.JSON())
	}
	t.Logf("average event size: %d bytes", n/1000)
	if n/1000 < 600 || n/1000 > 1600 {
		t.Errorf("average event size %d bytes, want about 1 KB", n/1000)
	}
}
