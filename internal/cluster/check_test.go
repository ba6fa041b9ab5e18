package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestCheckIssuer reads kube-apiserver's answers to the probe token (the
// e2e suite gets each of them from a real kube-apiserver).
func TestCheckIssuer(t *testing.T) {
	c, err := Parse([]byte("issuer: {url: https://login.example.com/dex, audiences: [kubernetes, kubectl]}\naudit: {webhook: {disabled: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		status authenticationv1.TokenReviewStatus
		want   Status
		detail string
	}{
		{"keys fetched", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: verify token: failed to verify signature: failed to verify id token signature]"}, StatusOK, "fetched its keys"},
		{"not initialized", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: authenticator not initialized]"}, StatusDiffers, "could not fetch"},
		{"no authenticator", authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}, StatusDiffers, "no authenticator for this issuer"},
		{"other oidc error", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: verify token: audience mismatch]"}, StatusDiffers, "another reason"},
		{"accepted", authenticationv1.TokenReviewStatus{Authenticated: true}, StatusFailed, "made-up signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			var probe string
			cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
				probe = tr.Spec.Token
				tr.Status = tc.status
				return true, tr, nil
			})
			var r Report
			c.checkIssuer(context.Background(), cs, &r)
			if len(r.Findings) != 1 || r.Findings[0].Status != tc.want || !strings.Contains(r.Findings[0].Detail, tc.detail) {
				t.Fatalf("findings %+v, want %s with %q", r.Findings, tc.want, tc.detail)
			}
			parts := strings.Split(probe, ".")
			if len(parts) != 3 {
				t.Fatalf("probe %q is not a JWT", probe)
			}
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Iss string `json:"iss"`
				Aud string `json:"aud"`
				Exp int64  `json:"exp"`
			}
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			if claims.Iss != c.Issuer.URL || claims.Aud != "kubernetes" || claims.Exp <= time.Now().Unix() {
				t.Errorf("probe claims %+v", claims)
			}
		})
	}
}
