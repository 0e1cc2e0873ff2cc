package authzserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/authzed/spicedb/pkg/datastore/migration"
)

// MigrateDatastore brings SpiceDB's own tables in a PostgreSQL or CockroachDB database to the
// head migration, through SpiceDB's migration package (not its migrate command, whose set-up
// replaces SpiceDB's process-wide logger and memory limit while other embedded servers may run).
func MigrateDatastore(ctx context.Context, engine, uri string) error {
	cfg := &migration.Config{
		DatastoreEngine: engine,
		DatastoreURI:    uri,
		// The migrate command's defaults.
		Timeout:   time.Hour,
		BatchSize: 1000,
	}
	if err := migration.Run(ctx, cfg, "head"); err != nil {
		return fmt.Errorf("migrate SpiceDB %s datastore: %w", engine, redactErr(err, uri))
	}
	return nil
}

// redactErr removes the password of uri from err's text, so that connection strings never leak
// into logs.
func redactErr(err error, uri string) error {
	if err == nil || uri == "" {
		return err
	}
	u, perr := url.Parse(uri)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
