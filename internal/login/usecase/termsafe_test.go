package usecase

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/apiserversim"
	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// forged is a group name that, printed raw, would add a command to the
// ones setup tells the reader to run.
const forged = "x\n  kubectl create clusterrolebinding evil --clusterrole=cluster-admin --user=mallory"

func attackList() []string {
	names := make([]string, 0, len(termsafetest.Attacks))
	for name := range termsafetest.Attacks {
		names = append(names, name)
	}
	sort.Strings(names)
	out := []string{forged}
	for _, n := range names {
		out = append(out, termsafetest.ViaJSON(termsafetest.Attacks[n]))
	}
	return out
}

type claimsLogin map[string]any

func (c claimsLogin) Interactive(context.Context) (oidcclient.TokenSet, error) {
	return oidcclient.TokenSet{IDToken: "t", Claims: c}, nil
}

// TestSetupEscapesClaims: the identity provider chooses the email and the
// groups; setup shows them in the claims, in what the API server derives
// and in the commands to run, and none of them may act on the terminal or
// add a command.
func TestSetupEscapesClaims(t *testing.T) {
	groups := attackList()
	email := "alice" + termsafetest.Attacks["osc title"] + "@example.com"
	anyGroups := make([]any, len(groups)) // as the verified token's JSON decodes
	for i, g := range groups {
		anyGroups[i] = g
	}
	var out, errb bytes.Buffer
	j := apiserversim.FromFlags(apiserversim.Flags{IssuerURL: "https://login.example.com", ClientID: "kubernetes", UsernameClaim: "email", GroupsClaim: "groups"})
	u := &Setup{
		Login: claimsLogin{"iss": "https://login.example.com", "aud": "kubernetes", "sub": "CgVhbGljZQ", "email": email,
			"email_verified": true, "groups": anyGroups, "name": termsafetest.Attacks["bidi rlo"] + termsafetest.Attacks["c1 csi"]},
		Authenticator: &j, Source: "flags", ClusterRole: "view", Namespace: "default",
		Stdout: &out, Stderr: &errb,
	}
	if err := u.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	termsafetest.CheckOutput(t, s)
	termsafetest.CheckOutput(t, errb.String())
	if n := strings.Count(s, "\n  kubectl create clusterrolebinding "); n != 1+len(groups) {
		t.Errorf("%d clusterrolebinding commands for a user and %d groups (a forged one?):\n%s", n, len(groups), s)
	}
	if strings.Contains(s, "\n  kubectl create clusterrolebinding evil") {
		t.Errorf("a group name added a command:\n%s", s)
	}
	for _, want := range []string{
		"username: " + termsafe.String(email),
		"--user=" + termsafe.ShellQuote(email),
		`\u202e`, `\u009b`, // in the claims' JSON
		"# everyone in group " + termsafe.String(forged) + ":",
		"--group=" + termsafe.ShellQuote(termsafetest.Attacks["osc title"]),
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output does not show %s:\n%s", want, s)
		}
	}
	// The claims section is still JSON with the same values.
	start := strings.Index(s, "{")
	end := strings.Index(s, "\n  }\n") + 4
	var claims struct{ Groups []string }
	if err := json.Unmarshal([]byte(s[start:end]), &claims); err != nil || len(claims.Groups) != len(groups) || claims.Groups[1] != groups[1] {
		t.Errorf("the claims are no longer the JSON of the claims: %v", err)
	}
}

// TestWhoamiEscapesIdentity: the API server answers with names the
// identity provider chose; whoami's tables must carry them escaped, with
// one row each.
func TestWhoamiEscapesIdentity(t *testing.T) {
	attacks := attackList()
	dir := t.TempDir()
	var ssr selfSubjectReview
	ssr.Status.UserInfo.Username = "oidc:" + attacks[1]
	ssr.Status.UserInfo.UID = attacks[2]
	ssr.Status.UserInfo.Groups = attacks
	ssr.Status.UserInfo.Extra = map[string][]string{"team\x1b[2J": attacks}
	var rr rulesReview
	for _, a := range attacks {
		rr.Status.ResourceRules = append(rr.Status.ResourceRules, struct {
			Verbs         []string `json:"verbs"`
			APIGroups     []string `json:"apiGroups"`
			Resources     []string `json:"resources"`
			ResourceNames []string `json:"resourceNames"`
		}{Verbs: []string{"get", a}, APIGroups: []string{a}, Resources: []string{"pods" + a}, ResourceNames: []string{a}})
	}
	rr.Status.NonResourceRules = append(rr.Status.NonResourceRules, struct {
		Verbs           []string `json:"verbs"`
		NonResourceURLs []string `json:"nonResourceURLs"`
	}{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz" + forged}})
	rr.Status.Incomplete, rr.Status.EvaluationError = true, "webhook said "+attacks[3]
	for name, v := range map[string]any{"ssr.json": ssr, "rules.json": rr} {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kubectl := filepath.Join(dir, "kubectl")
	script := "#!/bin/sh\ncat >/dev/null\ncase \"$*\" in\n*selfsubjectreviews*) cat " + filepath.Join(dir, "ssr.json") +
		" ;;\n*selfsubjectrulesreviews*) cat " + filepath.Join(dir, "rules.json") + " ;;\n*) exit 2 ;;\nesac\n"
	if err := os.WriteFile(kubectl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	u := &Whoami{Kubectl: kubectl, CanI: true, Namespace: "team-a", Stdout: &out, Stderr: &errb}
	if err := u.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	termsafetest.CheckOutput(t, s)
	termsafetest.CheckOutput(t, errb.String())
	// Username, UID, Groups, one Extra, a blank line, the namespace line,
	// the header, a row per rule.
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if want := 4 + 3 + len(rr.Status.ResourceRules) + len(rr.Status.NonResourceRules); len(lines) != want {
		t.Errorf("%d lines, want %d (a forged row?):\n%s", len(lines), want, s)
	}
	for _, want := range []string{termsafe.String("oidc:" + attacks[1]), termsafe.String(forged), termsafe.String("team\x1b[2J")} {
		if !strings.Contains(s, want) {
			t.Errorf("the output does not show %s:\n%s", want, s)
		}
	}
	if !strings.Contains(errb.String(), termsafe.String("webhook said "+attacks[3])) {
		t.Errorf("the warning does not show the evaluation error escaped: %q", errb.String())
	}
}

// fakeAuth refreshes with err and must not log in.
type fakeAuth struct {
	t   *testing.T
	err error
}

func (f fakeAuth) Refresh(context.Context, string) (oidcclient.TokenSet, error) {
	return oidcclient.TokenSet{}, f.err
}

func (f fakeAuth) Interactive(context.Context) (oidcclient.TokenSet, error) {
	f.t.Error("an outage started a login")
	return oidcclient.TokenSet{}, errors.New("no login here")
}

func (fakeAuth) NeedsStdin() string { return "" }

// TestGetTokenEscapesIssuerText: the issuer's error_description reaches
// the warning line of a refresh during an outage; it must not act on the
// terminal.
func TestGetTokenEscapesIssuerText(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(30 * time.Second) // valid, inside the 60 s margin
	payload := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix())))
	idToken := "eyJhbGciOiJSUzI1NiJ9." + payload + ".c2ln"
	store := tokencache.Store{Dir: t.TempDir(), Storage: tokencache.StorageDisk}
	key := tokencache.Key{IssuerURL: "https://login.example.com", ClientID: "kubernetes"}
	if err := store.Save(key, tokencache.Entry{IDToken: idToken, RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	desc := "the provider says \x1b]0;pwned\x07\u202e"
	var out, errb bytes.Buffer
	u := &GetToken{Cache: store, Key: key, Now: func() time.Time { return now }, Margin: time.Minute, LockTimeout: time.Second,
		Info: execcredential.Info{APIVersion: "client.authentication.k8s.io/v1"}, Stdout: &out, Stderr: &errb,
		Auth: fakeAuth{t: t, err: &oidcclient.UnavailableError{Status: 503, Code: "temporarily_unavailable", Description: desc}}}
	if err := u.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	termsafetest.CheckOutput(t, errb.String())
	if !strings.Contains(errb.String(), `\x1b]0;pwned\a\u202e`) || !strings.Contains(out.String(), idToken) {
		t.Errorf("stderr %q, stdout %q: want the escaped reason and the cached token", errb.String(), out.String())
	}
}
