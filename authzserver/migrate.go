package authzserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	spicedbcmd "github.com/authzed/spicedb/pkg/cmd"
)

// MigrateDatastore brings SpiceDB's own tables in a PostgreSQL or CockroachDB database to the
// head migration. SpiceDB offers its migrations only through its command tree, so the command
// is built and run in process.
func MigrateDatastore(ctx context.Context, engine, uri string) error {
	root, err := spicedbcmd.BuildRootCommand()
	if err != nil {
		return fmt.Errorf("build SpiceDB migrate command: %w", err)
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{
		"datastore", "migrate", "head",
		"--datastore-engine=" + engine,
		"--datastore-conn-uri=" + uri,
		"--skip-release-check=true",
		"--log-level=warn",
	})
	root.SilenceUsage = true
	root.SilenceErrors = true
	if err := root.ExecuteContext(ctx); err != nil {
		detail := strings.TrimSpace(out.String())
		if detail != "" {
			err = fmt.Errorf("%w: %s", err, detail)
		}
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
