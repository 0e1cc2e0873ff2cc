package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/gateway"
	"github.com/trustgate/trustgate/store"
)

func newMigrateCommand() *cobra.Command {
	var (
		stores     storeFlags
		logs       logFlags
		spicedbURI string
		dryRun     bool
		statements bool
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's pending database migrations and exit",
		Long: `migrate applies the migrations embedded in this binary to the store (serve also
applies them at start). A database migrated by a newer trustgate is refused.

--dry-run prints the store's schema version and the migrations that would run (version and
name; with --statements, their SQL for the store's engine) and changes nothing; a SQLite
database that does not exist yet is not created. The embedded SpiceDB's own datastore
migrations are applied by SpiceDB and are not listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			timeout, err := parseDuration("database-connect-timeout", stores.connectTimeout)
			if err != nil {
				return err
			}
			if statements && !dryRun {
				return fmt.Errorf("--statements goes with --dry-run")
			}
			if dryRun {
				plan, err := store.PlanMigrations(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout, Logger: logger})
				if err != nil {
					return err
				}
				return printPlan(cmd.OutOrStdout(), plan, statements)
			}
			st, err := store.Open(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout, Logger: logger})
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := st.SchemaVersion(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "store (%s) is at schema version %d\n", st.Engine(), v); err != nil {
				return err
			}
			if st.Engine() == "sqlite" {
				return nil // the embedded SpiceDB runs on its memory datastore: nothing to migrate
			}
			uri, err := gateway.EmbeddedDatastoreURI(cmd.Context(), stores.database, spicedbURI)
			if err != nil {
				return err
			}
			if err := authzserver.MigrateDatastore(cmd.Context(), st.Engine(), uri); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "SpiceDB datastore (%s) is at the head migration\n", st.Engine())
			return err
		},
	}
	stores.register(cmd.Flags())
	logs.register(cmd.Flags())
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the migrations that would run (versions and names) and change nothing")
	cmd.Flags().BoolVar(&statements, "statements", false, "with --dry-run, print each migration's SQL statements too")
	cmd.Flags().StringVar(&spicedbURI, "spicedb-datastore-uri", "", "database URL of the embedded SpiceDB's own tables (default: the store's database, schema trustgate_spicedb)")
	bindEnv(cmd.Flags(), "spicedb-datastore-uri", "TRUSTGATE_SPICEDB_DATASTORE_URI")
	return cmd
}

// printPlan writes what a migration would do.
func printPlan(w io.Writer, plan store.MigrationPlan, statements bool) error {
	if len(plan.Pending) == 0 {
		return printf(w, "store (%s) is at schema version %d, this trustgate's: nothing would run\n", plan.Engine, plan.Current)
	}
	if err := printf(w, "store (%s) is at schema version %d; migrate would apply %d migration(s), up to version %d:\n",
		plan.Engine, plan.Current, len(plan.Pending), plan.Pending[len(plan.Pending)-1].Version); err != nil {
		return err
	}
	for _, m := range plan.Pending {
		if err := printf(w, "  %04d_%s\n", m.Version, m.Name); err != nil {
			return err
		}
		if !statements {
			continue
		}
		for _, st := range m.Statements {
			if err := printf(w, "      %s;\n", strings.ReplaceAll(st, "\n", "\n      ")); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseDuration(flag, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q: want a positive duration such as 30s or 2m", flag, v)
	}
	return d, nil
}
