package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

// logLines collects a server's JSON log for check.
type logLines struct{ syncbuf.Buffer }

// check fails t for every line that is not one JSON object or that
// repeats a key in one object (slog.Logger.With plus the same key in a
// call writes both; JSON readers keep one, usually the last).
func (l *logLines) check(t *testing.T) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		if err := duplicateKeys(line); err != nil {
			t.Errorf("log line %d: %v\n%s", i+1, err, line)
		}
	}
}

// duplicateKeys reports a key that appears twice in one JSON object (at
// any depth), or a line that is not a JSON object.
func duplicateKeys(line string) error {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q twice", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if !strings.HasPrefix(strings.TrimSpace(line), "{") {
		return errors.New("not a JSON object")
	}
	if err := walk(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func TestDuplicateKeysFound(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`{"time":"t","level":"INFO","msg":"m","connector":"keycloak","connector_type":"oidc"}`, true},
		{`{"time":"t","level":"INFO","msg":"m","connector":"keycloak","connector":"oidc"}`, false},
		{`{"msg":"m","g":{"a":1,"a":2}}`, false},
		{`{"msg":"m","l":[{"a":1},{"a":2}]}`, true},
		{`time=t level=INFO msg=m`, false},
	} {
		if err := duplicateKeys(tc.line); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.line, err)
		}
	}
}

// TestConnectorLogsHaveNoDuplicateKeys builds GitHub and OIDC connectors
// whose configs make them log at start-up (the legacy org key,
// issuerAlias), through the JSON logger serve uses: the connector's id
// (the caller's "connector") and the connector's own attributes must not
// collide.
func TestConnectorLogsHaveNoDuplicateKeys(t *testing.T) {
	cfg, err := config.Parse([]byte(`issuer: https://login.example.com/dex
storage: {type: memory}
web: {http: "127.0.0.1:0"}
connectors:
- type: github
  id: gh
  name: GitHub
  config: {clientID: a, clientSecret: b, redirectURI: "https://login.example.com/dex/callback", org: exampleorg}
- type: oidc
  id: keycloak
  name: Keycloak
  config: {issuer: "https://127.0.0.1:1/realms/x", issuerAlias: "https://idp.example.com/realms/x", clientID: a, clientSecret: b, redirectURI: "https://login.example.com/dex/callback"}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	logs := &logLines{}
	log := newLogger(config.Logger{Format: "json"}, logs)
	if _, err := buildConnectors(cfg, memory.New(), log, prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`"connector":"gh"`, `"connector":"keycloak"`, "legacy key org", "issuerAlias is set"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	logs.check(t)
}
