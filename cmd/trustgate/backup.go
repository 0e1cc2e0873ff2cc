package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/store"
)

func newBackupCommand() *cobra.Command {
	var (
		stores storeFlags
		out    string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent snapshot of the store to a file (while the gateway serves)",
		Long: `backup reads every table of the store (hosts, servers and their sealed credentials,
tools, humans, grants, agents, consents, OAuth clients and tokens, signing keys, API tokens,
the audit log, ...) in one read-only transaction, a consistent snapshot, and writes it to FILE
(mode 0600) as JSON Lines ending with a SHA-256 checksum. The gateway may keep serving
meanwhile, on SQLite as on PostgreSQL. The database must be at this binary's schema version;
backup changes nothing in it.

The master key is NOT in the backup: sealed credentials and signing keys stay sealed. Keep
the master key (--master-key, or the key file in --data-dir) safe beside the backup: a restored
store needs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("backup needs --out FILE")
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("%s exists: choose another file, or pass --force to replace it", out)
			}
			timeout, err := parseDuration("database-connect-timeout", stores.connectTimeout)
			if err != nil {
				return err
			}
			if stores.database == "" {
				if fi, err := os.Stat(stores.dataDir); err != nil || !fi.IsDir() {
					return fmt.Errorf("no data directory %q: run this with the --data-dir (or --database) that trustgate serve uses", stores.dataDir)
				}
			}
			st, err := store.Open(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout, NoMigrate: true})
			if err != nil {
				return err
			}
			defer st.Close()
			// Written beside the target and renamed into place once complete: FILE is never a
			// partial backup.
			tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*")
			if err != nil {
				return fmt.Errorf("create the backup file: %w", err)
			}
			defer func() { _ = os.Remove(tmp.Name()) }()
			defer tmp.Close()
			if err := tmp.Chmod(0o600); err != nil {
				return fmt.Errorf("create the backup file: %w", err)
			}
			sum, err := store.Backup(cmd.Context(), st, tmp)
			if err != nil {
				return err
			}
			if err := tmp.Sync(); err != nil {
				return fmt.Errorf("write the backup file: %w", err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("write the backup file: %w", err)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("write the backup file: %w", err)
			}
			return printf(cmd.OutOrStdout(), "backed up the store (%s, schema version %d): %d tables, %d rows, %d audit entries, to %s\nsha256 %s\nThe master key is not in the backup: keep it with it.\n",
				sum.Engine, sum.SchemaVersion, sum.Tables, sum.Rows, sum.RowsByTable["audit_entries"], out, sum.SHA256)
		},
	}
	f := cmd.Flags()
	stores.register(f)
	f.StringVar(&out, "out", "", "file to write the backup to (required)")
	f.BoolVar(&force, "force", false, "replace --out when it exists")
	return cmd
}

func newRestoreCommand() *cobra.Command {
	var stores storeFlags
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup into an empty store",
		Long: `restore checks the whole of FILE (format, schema version, columns, every value, the
checksum) and then loads it into the store in one transaction. The store must be empty: a new
--data-dir, or an empty database (trustgate migrate may have run on it, trustgate serve must
not have). It must be at the schema version of the backup: restore with the trustgate release
that made the backup, then start the newer release, which migrates the store.

The relationships in SpiceDB are not in a backup: trustgate serve rebuilds them from the store
at start (the embedded SpiceDB, or a remote one, by the start-up reconciliation). Start it with
the master key of the backed-up gateway.`,
		Args: argsNamed("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			timeout, err := parseDuration("database-connect-timeout", stores.connectTimeout)
			if err != nil {
				return err
			}
			st, err := store.Open(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout})
			if err != nil {
				return err
			}
			defer st.Close()
			sum, err := store.Restore(cmd.Context(), st, f)
			if err != nil {
				return err
			}
			return printf(cmd.OutOrStdout(), "restored %d rows of %d tables (backup of %s, schema version %d, made %s) into the store (%s)\nStart trustgate serve with the backed-up gateway's master key; SpiceDB is rebuilt from the store at start.\n",
				sum.Rows, sum.Tables, sum.Engine, sum.SchemaVersion, sum.CreatedAt.Format("2006-01-02 15:04:05 MST"), st.Engine())
		},
	}
	stores.register(cmd.Flags())
	return cmd
}
