package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

// attackStore stores one audit event per attack, the attack as the user
// name, namespace and object name, as kube-apiserver would send them
// (JSON, escaped), in a real SQLite audit store.
func attackStore(t *testing.T) (file string, names []string) {
	t.Helper()
	for name := range termsafetest.Attacks {
		names = append(names, name)
	}
	sort.Strings(names)
	file = filepath.Join(t.TempDir(), "audit.db")
	db, err := store.Open(context.Background(), "sqlite3", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := auditgen.New(7, time.Now().Add(-time.Hour), time.Second)
	var events []event.Event
	for _, name := range names {
		a := termsafetest.Attacks[name]
		e := g.Event()
		e.User.Username = "oidc:" + a
		e.ObjectRef.Name = a
		e.ObjectRef.Namespace = a
		e.ResponseStatus.Code = 404
		raw, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode(raw, "cp-"+a)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	if _, err := db.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	return file, names
}

// checkAttackTable checks a table of attackStore's events: nothing a
// terminal acts on, one row per event, every name shown as its escapes.
func checkAttackTable(t *testing.T, out string, names []string) {
	t.Helper()
	termsafetest.CheckOutput(t, out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1+len(names) || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("%d lines for a header and %d events (a forged row?):\n%s", len(lines), len(names), out)
	}
	for _, name := range names {
		a := termsafetest.ViaJSON(termsafetest.Attacks[name])
		if !strings.Contains(out, termsafe.String(a)) {
			t.Errorf("%s: the table does not show %s", name, termsafe.String(a))
		}
	}
}

func TestAuditQueryTableEscapesNames(t *testing.T) {
	file, names := attackStore(t)
	out, _, err := runCLI(t, "audit", "query", "--store", file, "--limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	checkAttackTable(t, out, names)
}

func TestAuditTailTableEscapesNames(t *testing.T) {
	file, names := attackStore(t)
	root := newRootCommand()
	var out syncbuf.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"audit", "tail", "--store", file, "-n", strconv.Itoa(len(names)), "--interval", "20ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	// tail prints the recent events, then polls: wait for the last row.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "\n") < 1+len(names) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a forged row would arrive with the others
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkAttackTable(t, out.String(), names)
}

// TestTextLogEscapesRequestData logs in with each attack as the username
// (a failed password grant logs it) through a real issuer whose logger is
// the one `serve` makes for logger.format text: log/slog's text handler
// quotes every value that is not printable (strconv.Quote), so no escape
// reaches the terminal and a line feed cannot forge a log line.
func TestTextLogEscapesRequestData(t *testing.T) {
	var logs syncbuf.Buffer
	log := newLogger(config.Logger{Format: "text", Level: slog.LevelDebug}, &logs)
	s := issuertest.Start(t, issuertest.Options{Logger: log, LoginLimits: issuer.LoginLimits{
		PerUser: issuer.FailureLimit{Failures: 1000, Window: time.Minute},
		PerIP:   issuer.FailureLimit{Failures: 1000, Window: time.Minute},
	}})
	n := 0
	for name, a := range termsafetest.Attacks {
		form := url.Values{"grant_type": {"password"}, "username": {a}, "password": {"wrong"}, "scope": {"openid"}}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(s.ClientID, s.ClientSecret)
		resp, err := s.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s: a wrong password logged in", name)
		}
		n++
	}
	out := logs.String()
	termsafetest.CheckOutput(t, out)
	failed := 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("a line that slog did not start (forged?): %q", line)
		}
		if strings.Contains(line, `msg="login failed"`) {
			failed++
		}
	}
	if failed != n {
		t.Errorf("%d login failed lines for %d attempts:\n%s", failed, n, out)
	}
	for _, want := range []string{
		"username=" + strconv.Quote(termsafetest.Attacks["osc title"]),
		`username="\"a\\x7fb\""`, // DEL, which slog would write raw
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not show %s:\n%s", want, out)
		}
	}
}
