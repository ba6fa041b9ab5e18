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
	d := NewListDecoder(bytes.NewReader(body), source)
	var out []Event
	for {
		e, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		e.Raw = bytes.Clone(e.Raw)
		out = append(out, e)
	}
}

// ListDecoder reads an audit.k8s.io/v1 EventList from a stream one event
// at a time, so that a batch never has to be held whole: the sink hands
// each event to the store as it arrives. It reads with jsontext's
// streaming decoder, which holds about one item at a time.
type ListDecoder struct {
	d      *jsontext.Decoder
	r      *errReader
	source string
	state  int // 0: before the list; 1: in the object; 2: in items; 3: done
	item   int
	kind   string
	ver    string
	err    error
}

// NewListDecoder returns a decoder of the EventList read from r; every
// event is tagged with source.
func NewListDecoder(r io.Reader, source string) *ListDecoder {
	er := &errReader{r: r}
	return &ListDecoder{d: jsontext.NewDecoder(er), r: er, source: source}
}

// Items is the number of items decoded so far.
func (l *ListDecoder) Items() int { return l.item }

// Next returns the next event. Its Raw is valid only until the next call
// (copy it to keep it). After the last event Next checks the list itself
// (kind, apiVersion, nothing after it) and returns io.EOF; any other error
// wraps ErrInvalid and names the offending item, or is the reader's error
// (errors.Is finds it). A list is valid only once Next returned io.EOF:
// kind and apiVersion may come after the items.
func (l *ListDecoder) Next() (Event, error) {
	if l.err != nil {
		return Event{}, l.err
	}
	e, err := l.next()
	if err != nil {
		l.err = err
	}
	return e, err
}

func (l *ListDecoder) bad(format string, args ...any) error {
	return fmt.Errorf("%w: body is not an EventList: "+format, append([]any{ErrInvalid}, args...)...)
}

// syntax wraps a decoding error: when the reader failed (a timeout, a
// body over its limit) its error is returned, for errors.Is and errors.As;
// anything else is a malformed body.
func (l *ListDecoder) syntax(err error, format string, args ...any) error {
	if l.r.err != nil {
		return fmt.Errorf("reading the body: %w", l.r.err)
	}
	return l.bad(format, append(args, err)...)
}

// errReader remembers the first error of its reader other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (l *ListDecoder) next() (Event, error) {
	d := l.d
	for {
		switch l.state {
		case 0:
			tok, err := d.ReadToken()
			if err != nil {
				return Event{}, l.syntax(err, "%v")
			}
			if tok.Kind() != '{' {
				return Event{}, l.bad("want a JSON object")
			}
			l.state = 1
		case 1:
			if d.PeekKind() == '}' {
				if _, err := d.ReadToken(); err != nil {
					return Event{}, l.syntax(err, "%v")
				}
				if _, err := d.ReadToken(); err != io.EOF {
					if l.r.err != nil {
						return Event{}, l.syntax(err, "%v")
					}
					return Event{}, l.bad("data after the EventList")
				}
				l.state = 3
				if l.kind != "EventList" {
					return Event{}, fmt.Errorf("%w: kind is %q, want EventList", ErrInvalid, l.kind)
				}
				if l.ver != APIVersion {
					return Event{}, fmt.Errorf("%w: apiVersion is %q, want %s", ErrInvalid, l.ver, APIVersion)
				}
				return Event{}, io.EOF
			}
			tok, err := d.ReadToken()
			if err != nil {
				return Event{}, l.syntax(err, "%v")
			}
			switch name := tok.String(); name {
			case "kind", "apiVersion":
				v, err := d.ReadToken()
				if err != nil {
					return Event{}, l.syntax(err, "%v")
				}
				if name == "kind" {
					l.kind = v.String()
				} else {
					l.ver = v.String()
				}
			case "items":
				if d.PeekKind() == 'n' {
					if _, err := d.ReadToken(); err != nil {
						return Event{}, l.syntax(err, "%v")
					}
					continue
				}
				tok, err := d.ReadToken()
				if err != nil {
					return Event{}, l.syntax(err, "%v")
				}
				if tok.Kind() != '[' {
					return Event{}, l.bad("items is not an array")
				}
				l.state = 2
			default:
				if err := d.SkipValue(); err != nil {
					return Event{}, l.syntax(err, "%v")
				}
			}
		case 2:
			if d.PeekKind() == ']' {
				if _, err := d.ReadToken(); err != nil {
					return Event{}, l.syntax(err, "%v")
				}
				l.state = 1
				continue
			}
			raw, err := d.ReadValue()
			if err != nil {
				return Event{}, l.syntax(err, "item %d: %v", l.item)
			}
			e, err := decode(raw, l.source, false, false)
			if err != nil {
				return Event{}, fmt.Errorf("item %d: %w", l.item, err)
			}
			l.item++
			return e, nil
		default:
			return Event{}, io.EOF
		}
	}
}

// DecodeItem decodes one item of an EventList, as ListDecoder does
// (kind and apiVersion may be absent), keeping a copy of raw.
func DecodeItem(raw []byte, source string) (Event, error) {
	return decode(raw, source, false, true)
}

// Decode decodes one audit.k8s.io/v1 Event, such as a line of the log
// backend's audit.log.
func Decode(raw []byte, source string) (Event, error) {
	return decode(raw, source, true, true)
}

// decode decodes one event; with keep, its Raw is a copy of raw, else raw
// itself.
func decode(raw []byte, source string, requireKind, keep bool) (Event, error) {
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
		Raw:       raw,
	}
	if keep {
		e.Raw = bytes.Clone(raw)
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
