package dexmigrate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// Report writes what the plan does (dryRun: would do), one line per
// object that changes or is skipped and a summary per kind.
func (p *Plan) Report(w io.Writer, dryRun bool) {
	verb := map[Action]string{Create: "copy", Update: "update", Skip: "skip", Unchanged: "unchanged"}
	if dryRun {
		verb = map[Action]string{Create: "would copy", Update: "would update", Skip: "would skip", Unchanged: "unchanged"}
	}
	for _, it := range p.Items {
		if it.Action == Unchanged {
			continue
		}
		line := fmt.Sprintf("%s %s %s", verb[it.Action], it.Kind, it.Key)
		if it.Note != "" {
			line += " (" + it.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, kind := range []string{KindPassword, KindKeys, KindRefresh} {
		var parts []string
		for _, a := range []Action{Create, Update, Unchanged, Skip} {
			if n := p.Count(kind, a); n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, verb[a]))
			}
		}
		if len(parts) == 0 {
			parts = []string{"none in Dex"}
		}
		fmt.Fprintf(w, "%-15s %s\n", plural(kind)+":", strings.Join(parts, ", "))
	}
	if len(p.Clients)+len(p.Connectors) > 0 {
		fmt.Fprintf(w, "Dex's storage also holds %d client(s) and %d connector(s) created through its API; gatehouse reads clients and connectors from its config file: add them (--config-out writes them as YAML).\n", len(p.Clients), len(p.Connectors))
	}
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing was written")
	}
}

func plural(kind string) string {
	if strings.HasSuffix(kind, "s") {
		return kind
	}
	return kind + "s"
}

// ConfigSnippet returns the clients and connectors Dex kept in storage as
// the staticClients and connectors sections of a config file, or nil when
// there are none.
func (p *Plan) ConfigSnippet() ([]byte, error) {
	if len(p.Clients)+len(p.Connectors) == 0 {
		return nil, nil
	}
	type client struct {
		ID           string   `json:"id"`
		Name         string   `json:"name,omitempty"`
		Secret       string   `json:"secret,omitempty"`
		Public       bool     `json:"public,omitempty"`
		RedirectURIs []string `json:"redirectURIs,omitempty"`
		TrustedPeers []string `json:"trustedPeers,omitempty"`
		LogoURL      string   `json:"logoURL,omitempty"`
	}
	type connector struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Name   string `json:"name"`
		Config any    `json:"config,omitempty"`
	}
	var doc struct {
		StaticClients []client    `json:"staticClients,omitempty"`
		Connectors    []connector `json:"connectors,omitempty"`
	}
	for _, c := range p.Clients {
		doc.StaticClients = append(doc.StaticClients, client{ID: c.ID, Name: c.Name, Secret: c.Secret, Public: c.Public,
			RedirectURIs: c.RedirectURIs, TrustedPeers: c.TrustedPeers, LogoURL: c.LogoURL})
	}
	for _, c := range p.Connectors {
		var cfg any
		if len(c.Config) > 0 {
			if err := json.Unmarshal(c.Config, &cfg); err != nil {
				return nil, fmt.Errorf("connector %s: its config is not JSON: %w", c.ID, err)
			}
		}
		doc.Connectors = append(doc.Connectors, connector{Type: c.Type, ID: c.ID, Name: c.Name, Config: cfg})
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Clients and connectors Dex kept in its storage (created through its gRPC API),\n# for gatehouse's config file. Client secrets are in the clear: keep this file private.\n"), out...), nil
}
