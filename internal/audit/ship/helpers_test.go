package ship_test

import (
	"encoding/json"
	"testing"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func g2json(t *testing.T, e auditv1.Event) []byte {
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
