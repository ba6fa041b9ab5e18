package cli_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Each test attacks one rule of the authorization code flow and checks that
// the plugin refuses to produce a token (or ignores the forgery).
func TestAuthCodeAttacks(t *testing.T) {
	tests := []struct {
		name string
		// arrange sets up the attack on the browser stand-in.
		arrange func(r *rig, t *testing.T)
		// wantOK: the login still succeeds (the forgery is ignored).
		wantOK  bool
		wantErr string
	}{
		{
			name: "forged redirect with a wrong state is refused, the real one still works",
			arrange: func(r *rig, t *testing.T) {
				r.br.before = func(real *url.URL) {
					forged := *real
					q := forged.Query()
					q.Set("state", "attacker-state")
					q.Set("code", "attacker-code")
					forged.RawQuery = q.Encode()
					resp, err := http.Get(forged.String())
					if err != nil {
						t.Errorf("forged redirect: %v", err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusBadRequest {
						t.Errorf("forged redirect answered %d, want 400", resp.StatusCode)
					}
				}
			},
			wantOK: true,
		},
		{
			name: "redirect without state is refused",
			arrange: func(r *rig, t *testing.T) {
				r.br.before = func(real *url.URL) {
					forged := *real
					q := forged.Query()
					q.Del("state")
					forged.RawQuery = q.Encode()
					resp, err := http.Get(forged.String())
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode != http.StatusBadRequest {
							t.Errorf("stateless redirect answered %d", resp.StatusCode)
						}
					}
				}
			},
			wantOK: true,
		},
		{
			name:    "iss from another issuer (RFC 9207 mix-up)",
			arrange: func(r *rig, t *testing.T) { r.br.tamperRedirect = setQuery("iss", "https://evil.example/dex") },
			wantErr: "RFC 9207",
		},
		{
			name:    "iss removed although discovery promises it",
			arrange: func(r *rig, t *testing.T) { r.br.tamperRedirect = delQuery("iss") },
			wantErr: "RFC 9207",
		},
		{
			name: "the issuer's error response is reported",
			arrange: func(r *rig, t *testing.T) {
				r.br.tamperRedirect = func(u *url.URL) {
					q := u.Query()
					q.Del("code")
					q.Set("error", "access_denied")
					q.Set("error_description", "the user said no")
					u.RawQuery = q.Encode()
				}
			},
			wantErr: "the issuer refused the login (access_denied): the user said no",
		},
		{
			name:    "nonce replaced (token injection)",
			arrange: func(r *rig, t *testing.T) { r.br.tamperAuth = setQuery("nonce", "attacker-nonce") },
			wantErr: "nonce",
		},
		{
			name: "PKCE challenge stripped (downgrade)",
			arrange: func(r *rig, t *testing.T) {
				r.br.tamperAuth = func(u *url.URL) {
					q := u.Query()
					if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 {
						t.Errorf("authorization request without a S256 challenge: %s", u.RawQuery)
					}
					q.Del("code_challenge")
					q.Del("code_challenge_method")
					u.RawQuery = q.Encode()
				}
			},
			wantErr: "authorization code",
		},
		{
			name: "PKCE challenge replaced by the attacker's",
			arrange: func(r *rig, t *testing.T) {
				r.br.tamperAuth = setQuery("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
			},
			wantErr: "authorization code",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, time.Hour)
			tt.arrange(r, t)
			res := r.run(context.Background(), execInfoV1, r.args("--authentication-timeout-sec=20"))
			if tt.wantOK {
				if res.code != 0 {
					t.Fatalf("exit %d: %s", res.code, res.stderr)
				}
				tokenV1(t, res.stdout)
				return
			}
			if res.code == 0 || res.stdout != "" {
				t.Fatalf("the attack got a token: exit %d, stdout %q", res.code, res.stdout)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Fatalf("stderr %q does not mention %q", res.stderr, tt.wantErr)
			}
		})
	}
}

func setQuery(k, v string) func(*url.URL) {
	return func(u *url.URL) {
		q := u.Query()
		q.Set(k, v)
		u.RawQuery = q.Encode()
	}
}

func delQuery(k string) func(*url.URL) {
	return func(u *url.URL) {
		q := u.Query()
		q.Del(k)
		u.RawQuery = q.Encode()
	}
}
