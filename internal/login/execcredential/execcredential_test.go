package execcredential

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"
)

func TestReadInfo(t *testing.T) {
	tests := []struct {
		env     string
		want    Info
		wantErr bool
	}{
		{"", Info{V1beta1, true}, false},
		{`{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`, Info{V1, true}, false},
		{`{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`, Info{V1, false}, false},
		{`{"apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}`, Info{V1beta1, false}, false},
		{`{"apiVersion":"client.authentication.k8s.io/v1alpha1"}`, Info{}, true},
		{`not json`, Info{}, true},
	}
	for _, tt := range tests {
		got, err := ReadInfo(tt.env)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ReadInfo(%s) = %+v, %v", tt.env, got, err)
		}
	}
}

// The hand-written JSON decodes with client-go's own types.
func TestWriteDecodesWithClientGo(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := `a.b.c"\<>&` + "\u2028"
	for _, info := range []Info{{V1, true}, {V1, false}, {V1beta1, true}} {
		var buf bytes.Buffer
		if err := Write(&buf, info, tok, exp); err != nil {
			t.Fatal(err)
		}
		if info.APIVersion == V1 {
			var ec clientauthv1.ExecCredential
			if err := json.Unmarshal(buf.Bytes(), &ec); err != nil {
				t.Fatal(err)
			}
			if ec.Kind != "ExecCredential" || ec.APIVersion != V1 || ec.Status.Token != tok || !ec.Status.ExpirationTimestamp.Time.Equal(exp) || ec.Spec.Interactive != info.Interactive {
				t.Fatalf("decoded %+v from %s", ec, buf.String())
			}
			continue
		}
		var ec clientauthv1beta1.ExecCredential
		if err := json.Unmarshal(buf.Bytes(), &ec); err != nil {
			t.Fatal(err)
		}
		if ec.APIVersion != V1beta1 || ec.Status.Token != tok || !ec.Status.ExpirationTimestamp.Time.Equal(exp) {
			t.Fatalf("decoded %+v", ec)
		}
	}
}
