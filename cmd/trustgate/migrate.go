package main

import (
	"fmt"
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
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's pending database migrations and exit",
		Long: `migrate applies the migrations embedded in this binary to the store (serve also
applies them at start). A database migrated by a newer trustgate is refused.`,
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
	cmd.Flags().StringVar(&spicedbURI, "spicedb-datastore-uri", "", "database URL of the embedded SpiceDB's own tables (default: the store's database, schema trustgate_spicedb)")
	bindEnv(cmd.Flags(), "spicedb-datastore-uri", "TRUSTGATE_SPICEDB_DATASTORE_URI")
	return cmd
}

func parseDuration(flag, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q: want a positive duration such as 30s or 2m", flag, v)
	}
	return d, nil
}
