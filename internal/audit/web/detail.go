package web

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
)

// detail is what the detail view shows beyond the indexed fields.
type detail struct {
	Request, Response, Status, Full string
	Annotations                     [][2]string
	Impersonated                    string
	SourceIPs                       []string
}

func details(e event.Event) detail {
	var raw struct {
		RequestObject    json.RawMessage   `json:"requestObject"`
		ResponseObject   json.RawMessage   `json:"responseObject"`
		ResponseStatus   json.RawMessage   `json:"responseStatus"`
		Annotations      map[string]string `json:"annotations"`
		SourceIPs        []string          `json:"sourceIPs"`
		ImpersonatedUser *struct {
			Username string `json:"username"`
		} `json:"impersonatedUser"`
	}
	var d detail
	_ = json.Unmarshal(e.Raw, &raw) // the store only holds events that decoded
	d.Request, d.Response, d.Status, d.Full = pretty(raw.RequestObject), pretty(raw.ResponseObject), pretty(raw.ResponseStatus), pretty(e.Raw)
	for k, v := range raw.Annotations {
		d.Annotations = append(d.Annotations, [2]string{k, v})
	}
	sort.Slice(d.Annotations, func(i, j int) bool { return d.Annotations[i][0] < d.Annotations[j][0] })
	if raw.ImpersonatedUser != nil {
		d.Impersonated = raw.ImpersonatedUser.Username
	}
	d.SourceIPs = raw.SourceIPs
	return d
}

func pretty(b json.RawMessage) string {
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}
