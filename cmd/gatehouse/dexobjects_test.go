package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// dexStore is a store holding a Dex installation's clients and
// connectors, as the kubernetes storage does.
type dexStore struct {
	*memory.Storage
	clients    []dexcompat.Client
	connectors []dexcompat.Connector
}

func (d dexStore) DexClients(context.Context) ([]dexcompat.Client, error) { return d.clients, nil }
func (d dexStore) DexConnectors(context.Context) ([]dexcompat.Connector, error) {
	return d.connectors, nil
}

func TestStoredClientsAndConnectors(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store := dexStore{Storage: memory.New(),
		clients: []dexcompat.Client{
			{ID: "grafana", Secret: "s", RedirectURIs: []string{"https://grafana.example.com/cb"}, Name: "Grafana"},
			{ID: "kubernetes", Secret: "from-dex", Name: "Dex's"},
		},
		connectors: []dexcompat.Connector{
			{ID: "github", Type: "github", Name: "GitHub", Config: []byte(`{"clientID":"a","clientSecret":"b","redirectURI":"https://x.example.com/dex/callback"}`)},
			{ID: "gh2", Type: "github", Name: "", Config: []byte(`{"clientID":"a","clientSecret":"b","redirectURI":"https://x.example.com/dex/callback"}`)},
			{ID: "corp", Type: "ldap", Name: "Corp", Config: []byte(`{"host":"ldap.example.com:636","userSearch":{"baseDN":"ou=people,dc=example,dc=com","username":"uid","idAttr":"uid","emailAttr":"mail","nameAttr":"cn"}}`)},
		}}
	clients, err := addStoredClients(ctx, store, []issuer.Client{{ID: "kubernetes", Secret: "from-config"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(clients) != 2 || clients[0].Secret != "from-config" || clients[1].ID != "grafana" || clients[1].RedirectURIs[0] != "https://grafana.example.com/cb" {
		t.Fatalf("clients: %+v", clients)
	}
	set := func(conns ...issuer.Connector) *connectorSet {
		return &connectorSet{list: conns, metrics: retry.NewMetrics(prometheus.NewRegistry())}
	}
	cfg := &config.Config{}
	conns := set(issuer.Connector{ID: "github", Type: "github", Name: "From config"})
	if err := addStoredConnectors(ctx, store, conns, cfg, log, prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if l := conns.list; len(l) != 3 || l[0].Name != "From config" || l[1].ID != "gh2" || l[1].Name != "gh2" || l[1].Impl == nil ||
		l[2].ID != "corp" || l[2].Impl == nil {
		t.Fatalf("connectors: %+v", l)
	}

	// A stored connector gatehouse cannot open stops start-up, naming it.
	store.connectors = []dexcompat.Connector{{ID: "corp", Type: "saml", Name: "Corp SSO", Config: []byte(`{}`)}}
	err = addStoredConnectors(ctx, store, set(), cfg, log, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), `connector "corp" kept in storage by Dex`) || !strings.Contains(err.Error(), "saml") {
		t.Fatalf("unsupported stored connector: %v", err)
	}
	store.connectors = []dexcompat.Connector{{ID: "gh", Type: "github", Config: []byte(`{"clientID":"a","orgz":[]}`)}}
	if err = addStoredConnectors(ctx, store, set(), cfg, log, prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "orgz") {
		t.Fatalf("bad stored config: %v", err)
	}

	// Other stores have none.
	if c, err := addStoredClients(ctx, memory.New(), nil, log); err != nil || c != nil {
		t.Fatalf("memory store: %v %v", c, err)
	}
}
