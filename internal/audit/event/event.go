// Package event decodes kube-apiserver audit events (audit.k8s.io/v1) into
// the fields gatehouse indexes, keeping each event's original JSON for the
// detail view and for forwarding.
//
// Decoding goes through a light struct that names only the indexed fields
// rather than k8s.io/apiserver/pkg/apis/audit/v1.Event: the full type would
// parse the request and response objects and the annotations only for them
// to be thrown away, since the event is kept as raw JSON anyway. The
// benchmarks in this package compare the two (see docs/benchmarks.md).
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// APIVersion is the only audit API version accepted.
const APIVersion = "audit.k8s.io/v1"

// Event is one audit event as stored: the indexed fields plus the original
// JSON object.
type Event struct {
	// ID is the store's row id; zero before the event is stored.
	ID int64
	// Time is the requestReceivedTimestamp (the stageTimestamp when that
	// is missing).
	Time      time.Time
	AuditID   string
	Stage     string
	Level     string
	Verb      string
	URI       string
	User      string
	Groups    []string
	Resource  string
	Sub       string // subresource
	Namespace string
	Name      string
	APIGroup  string
	Code      int
	// Source names the kube-apiserver (or shipper) that sent the event.
	Source    string
	UserAgent string
	SourceIP  string
	// Raw is the event exactly as received.
	Raw json.RawMessage
}

// light names the fields of audit.k8s.io/v1 Event that gatehouse indexes.
type light struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Level      string `json:"level"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	SourceIPs []string `json:"sourceIPs"`
	UserAgent string   `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time `json:"stageTimestamp"`
}

// ErrInvalid marks a body that is not a valid audit.k8s.io/v1 EventList or
// Event; the message says what is wrong.
var ErrInvalid = errors.New("invalid audit event")

// DecodeList decodes an audit.k8s.io/v1 EventList as kube-apiserver's
// webhook backend sends it. Every event is tagged with source. An error
// wraps ErrInvalid and names the offending item.
func DecodeList(body []byte, source string) ([]Event, error) {
	d := jsontext.NewDecoder(bytes.NewReader(body))
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: body is not an EventList: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if tok, err := d.ReadToken(); err != nil {
		return nil, bad("%v", err)
	} else if tok.Kind() != '{' {
		return nil, bad("want a JSON object")
	}
	var kind, version string
	var out []Event
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return nil, bad("%v", err)
		}
		name := tok.String()
		switch name {
		case "kind", "apiVersion":
			v, err := d.ReadToken()
			if err != nil {
				return nil, bad("%v", err)
			}
			if name == "kind" {
				kind = v.String()
			} else {
				version = v.String()
			}
		case "items":
			if d.PeekKind() == 'n' {
				if _, err := d.ReadToken(); err != nil {
					return nil, bad("%v", err)
				}
				continue
			}
			if tok, err := d.ReadToken(); err != nil {
				return nil, bad("%v", err)
			} else if tok.Kind() != '[' {
				return nil, bad("items is not an array")
			}
			for i := 0; d.PeekKind() != ']'; i++ {
				raw, err := d.ReadValue()
				if err != nil {
					return nil, bad("item %d: %v", i, err)
				}
				e, err := decode(raw, source, false)
				if err != nil {
					return nil, fmt.Errorf("item %d: %w", i, err)
				}
				out = append(out, e)
			}
			if _, err := d.ReadToken(); err != nil {
				return nil, bad("%v", err)
			}
		default:
			if err := d.SkipValue(); err != nil {
				return nil, bad("%v", err)
			}
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, bad("data after the EventList")
	}
	if kind != "EventList" {
		return nil, fmt.Errorf("%w: kind is %q, want EventList", ErrInvalid, kind)
	}
	if version != APIVersion {
		return nil, fmt.Errorf("%w: apiVersion is %q, want %s", ErrInvalid, version, APIVersion)
	}
	return out, nil
}

// Decode decodes one audit.k8s.io/v1 Event, such as a line of the log
// backend's audit.log.
func Decode(raw []byte, source string) (Event, error) {
	return decode(raw, source, true)
}

func decode(raw []byte, source string, requireKind bool) (Event, error) {
	var l light
	if err := jsonv2.Unmarshal(raw, &l, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if requireKind || l.Kind != "" {
		if l.Kind != "Event" {
			return Event{}, fmt.Errorf("%w: kind is %q, want Event", ErrInvalid, l.Kind)
		}
	}
	if l.APIVersion != "" && l.APIVersion != APIVersion {
		return Event{}, fmt.Errorf("%w: apiVersion is %q, want %s", ErrInvalid, l.APIVersion, APIVersion)
	}
	if l.AuditID == "" {
		return Event{}, fmt.Errorf("%w: auditID is empty", ErrInvalid)
	}
	if l.Stage == "" {
		return Event{}, fmt.Errorf("%w: stage is empty", ErrInvalid)
	}
	e := Event{
		Time:      l.RequestReceivedTimestamp,
		AuditID:   l.AuditID,
		Stage:     l.Stage,
		Level:     l.Level,
		Verb:      l.Verb,
		URI:       l.RequestURI,
		User:      l.User.Username,
		Groups:    l.User.Groups,
		Source:    source,
		UserAgent: l.UserAgent,
		Raw:       bytes.Clone(raw),
	}
	if e.Time.IsZero() {
		e.Time = l.StageTimestamp
	}
	if e.Time.IsZero() {
		return Event{}, fmt.Errorf("%w: requestReceivedTimestamp and stageTimestamp are both missing", ErrInvalid)
	}
	if len(l.SourceIPs) > 0 {
		e.SourceIP = l.SourceIPs[0]
	}
	if o := l.ObjectRef; o != nil {
		e.Resource, e.Sub, e.Namespace, e.Name, e.APIGroup = o.Resource, o.Subresource, o.Namespace, o.Name, o.APIGroup
	}
	if l.ResponseStatus != nil {
		e.Code = l.ResponseStatus.Code
	}
	return e, nil
}

// EncodeList writes raw events as an audit.k8s.io/v1 EventList, the body
// kube-apiserver's webhook backend sends. The events must be valid JSON
// objects.
func EncodeList(items []json.RawMessage) []byte {
	n := 64
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, "]}"...)
}
