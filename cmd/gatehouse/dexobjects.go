package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
)

// dexObjects is what a storage that holds a Dex installation in place
// (kubernetes) offers of the clients and connectors Dex kept there,
// created through Dex's gRPC API.
type dexObjects interface {
	DexClients(context.Context) ([]dexcompat.Client, error)
	DexConnectors(context.Context) ([]dexcompat.Connector, error)
}

// addStoredClients appends the clients Dex kept in storage. A client of
// the config file with the same id wins, as Dex's static clients do.
func addStoredClients(ctx context.Context, store storage.Storage, clients []issuer.Client, log *slog.Logger) ([]issuer.Client, error) {
	d, ok := store.(dexObjects)
	if !ok {
		return clients, nil
	}
	stored, err := d.DexClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("clients kept in storage by Dex: %w", err)
	}
	for _, c := range stored {
		if slices.ContainsFunc(clients, func(o issuer.Client) bool { return o.ID == c.ID }) {
			log.Info("client in storage shadowed by the config's", "client_id", c.ID)
			continue
		}
		clients = append(clients, issuer.Client{ID: c.ID, Secret: c.Secret, Name: c.Name, RedirectURIs: c.RedirectURIs,
			Public: c.Public, TrustedPeers: c.TrustedPeers, LogoURL: c.LogoURL})
		log.Info("client from storage (created through Dex's API)", "client_id", c.ID)
	}
	return clients, nil
}

// addStoredConnectors adds the connectors Dex kept in storage, as Dex
// does at start-up: a config mistake in one stops start-up, naming it; an
// upstream it cannot reach is retried like a config file's connector. A
// connector of the config file with the same id wins.
func addStoredConnectors(ctx context.Context, store storage.Storage, set *connectorSet, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) error {
	d, ok := store.(dexObjects)
	if !ok {
		return nil
	}
	stored, err := d.DexConnectors(ctx)
	if err != nil {
		return fmt.Errorf("connectors kept in storage by Dex: %w", err)
	}
	for _, c := range stored {
		if set.has(c.ID) {
			log.Info("connector in storage shadowed by the config's", "connector_id", c.ID)
			continue
		}
		cc := config.Connector{Type: c.Type, ID: c.ID, Name: c.Name, Config: c.Config}
		// Opened like the config's: an unreachable upstream is retried.
		if err := set.add(cc, cfg, store, log, reg); err != nil {
			return fmt.Errorf("connector %q kept in storage by Dex (a Connector object): %w; fix or delete the object", c.ID, err)
		}
		log.Info("connector from storage (created through Dex's API)", "connector_id", c.ID, "type", c.Type)
	}
	return nil
}
