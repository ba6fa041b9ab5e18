package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/dexmigrate"
)

func newMigrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Copy another issuer's data into gatehouse's storage",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newMigrateFromDexCommand())
	return cmd
}

func newMigrateFromDexCommand() *cobra.Command {
	var dexConfig, ghConfig, configOut string
	var dryRun bool
	var dexIDTokens time.Duration
	cmd := &cobra.Command{
		Use:   "from-dex --dex-config FILE --config FILE [--dry-run]",
		Short: "Copy a Dex installation's passwords, signing keys and sessions into gatehouse's storage",
		Long: `Copy what a Dex installation keeps (its sqlite3 or postgres database, or
its kubernetes custom resources) into the storage of gatehouse's config:
the password database, the signing keys and every refresh token with its
offline session, so that no one logs in again after the switch. Dex's
storage is read, never written.

Running it again copies what Dex changed since (a session Dex refreshed
meanwhile) and leaves alone what gatehouse already uses. --dry-run says
what it would copy and writes nothing.

Clients and connectors that Dex kept in its storage (created through its
gRPC API) belong in gatehouse's config file: --config-out writes them as
YAML to merge there. (With kubernetes storage on Dex's own namespace,
nothing needs copying: gatehouse reads Dex's objects in place.)`,
		Example: `  gatehouse migrate from-dex --dex-config /etc/dex/config.yaml --config /etc/gatehouse/config.yaml --dry-run
  gatehouse migrate from-dex --dex-config /etc/dex/config.yaml --config /etc/gatehouse/config.yaml --config-out dex-clients.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dexConfig == "" || ghConfig == "" {
				return errors.New("--dex-config (Dex's config.yaml, to find its storage) and --config (gatehouse's, to find the storage to copy into) are required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			src, err := config.LoadStorage(dexConfig)
			if err != nil {
				return err
			}
			dst, err := config.LoadStorage(ghConfig)
			if err != nil {
				return err
			}
			log := slog.New(slog.DiscardHandler)
			snap, err := dexmigrate.Read(ctx, src, kubernetesConfig(config.Kubernetes{}, log))
			if err != nil {
				return err
			}
			target, err := openStorage(ctx, dst, log)
			if err != nil {
				return err
			}
			defer target.Close()
			plan, err := dexmigrate.NewPlan(ctx, snap, target, dexmigrate.Options{DexIDTokenLifetime: dexIDTokens})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "from Dex's %s storage (%s) into gatehouse's %s storage (%s)\n", src.Type, dexConfig, dst.Type, ghConfig)
			if !dryRun {
				if err := plan.Apply(ctx, target); err != nil {
					return fmt.Errorf("copy: %w (what was copied before stays; run the command again to finish)", err)
				}
			}
			plan.Report(out, dryRun)
			snippet, err := plan.ConfigSnippet()
			if err != nil {
				return err
			}
			if configOut != "" && snippet != nil && !dryRun {
				if err := os.WriteFile(configOut, snippet, 0o600); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote Dex's stored clients and connectors to %s\n", configOut)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dexConfig, "dex-config", "", "Dex's config.yaml: its storage section says where Dex's data is")
	fs.StringVar(&ghConfig, "config", "", "gatehouse's config.yaml: its storage section says where to copy to")
	fs.BoolVar(&dryRun, "dry-run", false, "say what would be copied and write nothing")
	fs.StringVar(&configOut, "config-out", "", "write the clients and connectors Dex kept in its storage to this file, as config YAML")
	fs.DurationVar(&dexIDTokens, "dex-id-token-lifetime", 24*time.Hour, "Dex's expiry.idTokens: how long Dex's last key stays published when gatehouse already has keys of its own")
	return cmd
}
