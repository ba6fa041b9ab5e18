package oidc

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// dexDifferences are the cases where gatehouse deliberately maps claims
// otherwise than Dex: the UserError reason gatehouse gives instead.
var dexDifferences = map[string]string{
	"email_verified false": "email_not_verified",
}

// TestMatchesDex maps the claims of each recorded case and compares the
// identity with the one Dex v2.45.1 made of the same claims and config
// (testdata/dex-v2.45.1-identities.json).
func TestMatchesDex(t *testing.T) {
	raw, err := os.ReadFile("testdata/dex-v2.45.1-identities.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name     string          `json:"name"`
			Config   json.RawMessage `json:"config"`
			IDToken  map[string]any  `json:"idToken"`
			UserInfo map[string]any  `json:"userInfo"`
			Dex      struct {
				Error    string              `json:"error"`
				Identity *connector.Identity `json:"identity"`
			} `json:"dex"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 20 {
		t.Fatalf("only %d cases", len(doc.Cases))
	}
	for _, tc := range doc.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			var cfg Config
			if err := config.DecodeStrict(tc.Config, &cfg, "config"); err != nil {
				t.Fatal(err)
			}
			cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.RedirectURI = "https://idp.example.com", "client", "secret", "https://dex.example/callback"
			s, err := cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			claims := maps.Clone(tc.IDToken)
			maps.Copy(claims, tc.UserInfo)
			got, err := s.mapClaims(claims)
			if reason, ok := dexDifferences[tc.Name]; ok {
				if ue, isUser := connector.AsUserError(err); !isUser || ue.Reason != reason {
					t.Errorf("err = %v, want the deliberate difference %q (Dex: %+v)", err, reason, tc.Dex.Identity)
				}
				return
			}
			if tc.Dex.Error != "" {
				if err == nil {
					t.Errorf("accepted (%+v); Dex refuses: %s", got, tc.Dex.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused (%v); Dex gives %+v", err, *tc.Dex.Identity)
			}
			want := *tc.Dex.Identity
			if len(want.Groups) == 0 {
				want.Groups = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("identity\n got %+v\nDex: %+v", got, want)
			}
		})
	}
}
