package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/github"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

// lateConnector lets the GitHub connector be built once the issuer's URL
// (and so its callback URL) is known.
type lateConnector struct {
	c atomic.Pointer[github.Connector]
}

func (l *lateConnector) LoginURL(ctx context.Context, s connector.Scopes, callbackURL, state string) (string, []byte, error) {
	return l.c.Load().LoginURL(ctx, s, callbackURL, state)
}

func (l *lateConnector) HandleCallback(ctx context.Context, s connector.Scopes, connData []byte, r *http.Request) (connector.Identity, error) {
	return l.c.Load().HandleCallback(ctx, s, connData, r)
}

func (l *lateConnector) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	return l.c.Load().Refresh(ctx, s, id)
}

// gatehouse is the issuer with the GitHub connector against the fake
// GitHub, and gatehouse's audit sink on the issuer's host.
type gatehouse struct {
	issuer *issuertest.Server
	github *fakegithub.Server
	sink   *kube.Sink
}

const loginScope = "openid profile email groups offline_access"

func startGatehouse(t *testing.T, idTokenTTL time.Duration, extraClients ...issuer.Client) *gatehouse {
	t.Helper()
	fx, err := fakegithub.LoadFixture(filepath.Join("..", "fakegithub", "testdata", "exampleorg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gh := fakegithub.New(t, fx)
	late := &lateConnector{}
	sink, sinkHandler := kube.NewSink(t, sinkToken)
	iss := issuertest.Start(t, issuertest.Options{
		IDTokenTTL:   idTokenTTL,
		ExtraClients: extraClients,
		Connectors:   []issuer.Connector{{ID: "github", Type: "github", Name: "GitHub", Impl: late}},
		Mount:        func(_ *issuertest.Server, mux *http.ServeMux) { mux.Handle("/audit/webhook", sinkHandler) },
	})
	conn, err := github.New(github.Config{
		ClientID: "gatehouse-oauth-app", ClientSecret: "gatehouse-oauth-secret",
		RedirectURI:   iss.URL + "/callback",
		Orgs:          []github.Org{{Name: "exampleorg"}},
		TeamNameField: "slug",
	}, slog.New(slog.DiscardHandler), github.WithHTTPClient(gh.Client()), github.WithURLs(gh.URL, gh.APIURL))
	if err != nil {
		t.Fatal(err)
	}
	late.c.Store(conn)
	u, _ := url.Parse(iss.URL)
	sink.URL, sink.CAPEM = "https://"+u.Host, iss.CAPEM
	return &gatehouse{issuer: iss, github: gh, sink: sink}
}

// login logs a GitHub user in through the issuer's pages and GitHub's
// authorize endpoint, as a browser would, and redeems the code.
func (g *gatehouse) login(t *testing.T, githubLogin string) (kube.Tokens, error) {
	t.Helper()
	b := kube.NewBrowser("http://localhost:8000", g.issuer.CAPEM, g.github.CAPEM())
	b.SetCookie(g.github.URL, fakegithub.LoginCookie, githubLogin)
	ctx := context.Background()
	code, err := b.Login(ctx, g.issuer.URL, g.issuer.ClientID, loginScope)
	if err != nil {
		return kube.Tokens{}, err
	}
	return b.Exchange(ctx, g.issuer.URL, g.issuer.ClientID, g.issuer.ClientSecret,
		url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {b.RedirectURI}})
}

func (g *gatehouse) refresh(t *testing.T, refreshToken string) (kube.Tokens, error) {
	t.Helper()
	b := kube.NewBrowser("http://localhost:8000", g.issuer.CAPEM)
	return b.Exchange(context.Background(), g.issuer.URL, g.issuer.ClientID, g.issuer.ClientSecret,
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

func whoamiAs(c *kube.Cluster, kubeconfig string) (whoami, error) {
	var w whoami
	out, _, err := c.Kubectl(context.Background(), kubeconfig, nil, "auth", "whoami", "-o", "json")
	if err != nil {
		return w, err
	}
	return w, json.Unmarshal([]byte(out), &w)
}

// TestSeedScenario is the seed article's story on a real kube-apiserver,
// with the structured authentication config and with the legacy flags:
// a member of exampleorg's infra-team logs in through GitHub and is
// oidc:<login> in oidc:exampleorg:infra-team; kubectl get ns is Forbidden
// until the rendered RBAC is applied; the audit log and the audit webhook
// both record the request with that user and groups; an expired ID token
// is Unauthorized and the refreshed one works; a member of another team
// stays Forbidden; a user outside the org cannot log in and is told why.
func TestSeedScenario(t *testing.T) {
	// Build the gatehouse binary before any token's 20 s clock starts: a
	// build inside that window (minutes on a loaded machine) let the token
	// expire before `cluster check --token` ran.
	goBinary(t, "gatehouse")
	for _, mode := range []string{cluster.ModeStructured, cluster.ModeFlags} {
		t.Run(mode, func(t *testing.T) {
			const ttl = 20 * time.Second
			g := startGatehouse(t, ttl)
			cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
			if got, want := cfg.Issuer.ClientID, g.issuer.ClientID; got != want {
				t.Fatalf("client id %q, issuer's %q", got, want)
			}
			c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: mode})
			c.AdminKubectl(t, "create", "namespace", "web")

			// octocat is in exampleorg's infra-team.
			tok, err := g.login(t, "octocat")
			if err != nil {
				t.Fatalf("octocat's login: %v", err)
			}
			loggedInAt := time.Now()
			octo, err := c.TokenKubeconfig("octocat.kubeconfig", tok.IDToken)
			if err != nil {
				t.Fatal(err)
			}
			// kube-apiserver fetches the issuer's keys in the background.
			var w whoami
			if err := kube.WaitFor(30*time.Second, func() error {
				w, err = whoamiAs(c, octo)
				return err
			}); err != nil {
				t.Fatalf("kubectl auth whoami as octocat: %v", err)
			}
			if w.Status.UserInfo.Username != "oidc:octocat" {
				t.Errorf("username %q, want oidc:octocat", w.Status.UserInfo.Username)
			}
			if !contains(w.Status.UserInfo.Groups, "oidc:exampleorg:infra-team") {
				t.Errorf("groups %v lack oidc:exampleorg:infra-team", w.Status.UserInfo.Groups)
			}

			// Forbidden before the binding, allowed after.
			_, _, err = c.Kubectl(context.Background(), octo, nil, "get", "ns")
			if err == nil || !strings.Contains(err.Error(), "Forbidden") || !strings.Contains(err.Error(), `"oidc:octocat"`) {
				t.Fatalf("get ns before RBAC: want Forbidden for oidc:octocat, got %v", err)
			}
			c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
			out, _, err := c.Kubectl(context.Background(), octo, nil, "get", "ns", "-o", "name")
			if err != nil || !strings.Contains(out, "namespace/web") {
				t.Fatalf("get ns after RBAC: %v\n%s", err, out)
			}

			// gatehouse cluster check agrees, token included.
			configFile := filepath.Join(c.Dir, "cluster.yaml")
			writeClusterYAML(t, configFile, c.Config)
			chk, err := exec.Command(goBinary(t, "gatehouse"), "cluster", "check", "--kubeconfig", c.AdminKubeconfig,
				"--config", configFile, "--token", tok.IDToken).CombinedOutput()
			if err != nil || !strings.Contains(string(chk), `username "oidc:octocat"`) || !strings.Contains(string(chk), "ok       team exampleorg:infra-team") {
				t.Errorf("gatehouse cluster check --token: %v\n%s", err, chk)
			}

			// A config whose prefix the cluster does not use is caught.
			other := *c.Config
			otherPrefix := "gh:"
			other.Claims.Username.Prefix = &otherPrefix
			otherFile := filepath.Join(c.Dir, "other-cluster.yaml")
			writeClusterYAML(t, otherFile, &other)
			chk, err = exec.Command(goBinary(t, "gatehouse"), "cluster", "check", "--kubeconfig", c.AdminKubeconfig,
				"--config", otherFile, "--token", tok.IDToken).CombinedOutput()
			if err == nil || !strings.Contains(string(chk), "differs  username prefix") {
				t.Errorf("check with another username prefix: want a difference, got %v\n%s", err, chk)
			}

			// The audit log and the webhook record the list with the user.
			waitListAudited(t, g, c)

			// hubot is in exampleorg but only in developers: no rights.
			htok, err := g.login(t, "hubot")
			if err != nil {
				t.Fatalf("hubot's login: %v", err)
			}
			hubot, err := c.TokenKubeconfig("hubot.kubeconfig", htok.IDToken)
			if err != nil {
				t.Fatal(err)
			}
			hw, err := whoamiAs(c, hubot)
			if err != nil || hw.Status.UserInfo.Username != "oidc:hubot" || !contains(hw.Status.UserInfo.Groups, "oidc:exampleorg:developers") {
				t.Errorf("hubot is %+v (%v)", hw.Status.UserInfo, err)
			}
			if _, _, err := c.Kubectl(context.Background(), hubot, nil, "get", "ns"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
				t.Errorf("hubot's get ns: want Forbidden, got %v", err)
			}
			if _, _, err := c.Kubectl(context.Background(), hubot, nil, "-n", "web", "get", "pods"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
				t.Errorf("hubot's get pods in web (web is bound to exampleorg:web only): want Forbidden, got %v", err)
			}

			// outsider is in no allowed org: no token, and the client hears
			// at once why (error=access_denied with a reason at its redirect).
			_, err = g.login(t, "outsider")
			if err == nil || !strings.Contains(err.Error(), "access_denied") || !strings.Contains(err.Error(), "signed in to GitHub as outsider") {
				t.Errorf("outsider's login: want access_denied at the client saying outsider is not in an allowed organization, got %v", err)
			}

			// The ID token expires; the cluster refuses it; the refreshed one works.
			time.Sleep(time.Until(loggedInAt.Add(ttl + 2*time.Second)))
			if _, _, err := c.Kubectl(context.Background(), octo, nil, "get", "ns"); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
				t.Errorf("expired token: want Unauthorized, got %v", err)
			}
			chk, err = exec.Command(goBinary(t, "gatehouse"), "cluster", "check", "--kubeconfig", c.AdminKubeconfig,
				"--config", configFile, "--token", tok.IDToken).CombinedOutput()
			if err == nil || !strings.Contains(string(chk), "kube-apiserver rejects the token (Unauthorized)") {
				t.Errorf("check with an expired token: want the Unauthorized checklist, got %v\n%s", err, chk)
			}
			rtok, err := g.refresh(t, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			octo2, err := c.TokenKubeconfig("octocat-refreshed.kubeconfig", rtok.IDToken)
			if err != nil {
				t.Fatal(err)
			}
			if rw, err := whoamiAs(c, octo2); err != nil || rw.Status.UserInfo.Username != "oidc:octocat" || !contains(rw.Status.UserInfo.Groups, "oidc:exampleorg:infra-team") {
				t.Errorf("after refresh: %+v (%v)", rw.Status.UserInfo, err)
			}
		})
	}
}

// waitListAudited waits until the audit log and gatehouse's audit sink
// both hold octocat's successful list of namespaces, with the team group.
func waitListAudited(t *testing.T, g *gatehouse, c *kube.Cluster) {
	t.Helper()
	var auditID string
	if err := kube.WaitFor(30*time.Second, func() error {
		events, err := c.AuditEvents()
		if err != nil {
			return err
		}
		for _, ev := range events {
			if ev.Verb == "list" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "namespaces" &&
				ev.User.Username == "oidc:octocat" && ev.ResponseStatus != nil && ev.ResponseStatus.Code == 200 &&
				ev.Stage == auditv1.StageResponseComplete {
				if !contains(ev.User.Groups, "oidc:exampleorg:infra-team") {
					return fmt.Errorf("audit event groups %v", ev.User.Groups)
				}
				auditID = string(ev.AuditID)
				return nil
			}
		}
		return fmt.Errorf("no list namespaces by oidc:octocat among %d events", len(events))
	}); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if err := kube.WaitFor(30*time.Second, func() error {
		for _, ev := range g.sink.Events() {
			if ev.AuditID == auditID && ev.Stage == string(auditv1.StageResponseComplete) {
				if ev.User != "oidc:octocat" || !contains(ev.Groups, "oidc:exampleorg:infra-team") {
					return fmt.Errorf("sink has user %q groups %v", ev.User, ev.Groups)
				}
				return nil
			}
		}
		return fmt.Errorf("event %s not at the sink (%d there)", auditID, len(g.sink.Events()))
	}); err != nil {
		t.Fatalf("audit webhook: %v", err)
	}
}
