package config

import (
	"strings"
	"testing"
)

// TestAuditSinkLimits: the sink's memory keys default, and bad values
// fail at start-up naming the key.
func TestAuditSinkLimits(t *testing.T) {
	const tok = "bearerTokens: [0123456789abcdef0123]"
	c, err := load(t, patched(t, `audit: {enabled: true, webhook: {`+tok+`}}`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Audit.Webhook
	if w.MaxBodyBytes != 64<<20 || w.MaxInFlightBytes != 128<<20 || w.Separate {
		t.Errorf("defaults: maxBodyBytes %d maxInFlightBytes %d separate %v", w.MaxBodyBytes, w.MaxInFlightBytes, w.Separate)
	}
	c, err = load(t, patched(t, `audit: {enabled: true, webhook: {maxBodyBytes: 268435456, separate: true, `+tok+`}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Audit.Webhook; w.MaxInFlightBytes != 256<<20 || !w.Separate {
		t.Errorf("a larger body cap raises the default budget to it: %d; separate %v", w.MaxInFlightBytes, w.Separate)
	}
	for _, tc := range []struct{ name, patch, want string }{
		{"negative body cap", `maxBodyBytes: -1`, "audit.webhook.maxBodyBytes: must not be negative"},
		{"tiny body cap", `maxBodyBytes: 1000`, "audit.webhook.maxBodyBytes: 1000 is too small"},
		{"negative budget", `maxInFlightBytes: -5`, "audit.webhook.maxInFlightBytes: must not be negative"},
		{"budget under the body cap", `maxInFlightBytes: 33554432`, "audit.webhook.maxInFlightBytes: 33554432 is smaller than audit.webhook.maxBodyBytes (67108864)"},
		{"not a number", `maxInFlightBytes: lots`, "audit.webhook.maxInFlightBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, patched(t, `audit: {enabled: true, webhook: {`+tc.patch+`, `+tok+`}}`))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
