package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// defaultTokenName names a token created without --name.
const defaultTokenName = "cli"

func newAdminTokenCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("token", "Manage admin API tokens",
		newTokenCreateCommand(o, &host), newTokenListCommand(o, &host), newTokenRevokeCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newTokenCreateCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		name   string
		global bool
		scope  string
		stores storeFlags
	)
	cmd := &cobra.Command{
		Use:   "create (--global | --host HOST)",
		Short: "Create an admin API token; its secret is printed once",
		Long: `create makes an admin API token and prints it once, alone on the first line of
standard output (-o json: the whole document).

--global makes a token for every host. It does not use the API: it writes the token
directly into the store, so it needs no --token and is how the first token is made.
Run it on the gateway's machine with the --data-dir or --database that serve uses:

  trustgate admin token create --global --name bootstrap

--host HOST makes a token for one host through the API (with --token).

--scope check makes a token that may only ask for decisions (the API's check and
callable-tools routes, sdk.Client.Check and CallableTools), for a service that decides with
trustgate; every other route answers it 403. The default, --scope admin, administers.`,
		Args: argsNamed(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		tokenHost, err := tokenCreateScope(global, cmd.Flags().Changed("host"), *host)
		if err != nil {
			return err
		}
		if scope != sdk.ScopeAdmin && scope != sdk.ScopeCheck {
			return fmt.Errorf("--scope %q: want %s (administer) or %s (ask for decisions only)", scope, sdk.ScopeAdmin, sdk.ScopeCheck)
		}
		if tokenHost != "" {
			return o.api(func(a *adminCall, _ []string) error {
				t, err := a.client.CreateHostToken(a.ctx, tokenHost, sdk.TokenCreate{Name: name, Scope: scope})
				if err != nil {
					return err
				}
				return writeTokenCreated(a.out, a.errOut, t, a.json)
			})(cmd, args)
		}
		isJSON, err := o.jsonOutput()
		if err != nil {
			return err
		}
		t, err := bootstrapGlobalToken(cmd, stores, name, scope)
		if err != nil {
			return err
		}
		return writeTokenCreated(cmd.OutOrStdout(), cmd.ErrOrStderr(), t, isJSON)
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", defaultTokenName, "name to recognise the token by in listings")
	f.BoolVar(&global, "global", false, "a global token, written directly into the store (no --token needed)")
	f.StringVar(&scope, "scope", sdk.ScopeAdmin, "admin (administer) or check (may only ask for decisions)")
	stores.register(f)
	return cmd
}

// tokenCreateScope is the host a new token is for, or "" for a global one. --host counts as
// given when TRUSTGATE_HOST is set, unless --global is given too: then the variable is ignored.
func tokenCreateScope(global, hostGiven bool, host string) (string, error) {
	if global {
		if hostGiven {
			if env, ok := os.LookupEnv("TRUSTGATE_HOST"); !ok || env != host {
				return "", errors.New("--global and --host are mutually exclusive: a token is for every host or for one")
			}
		}
		return "", nil
	}
	if !hostGiven {
		return "", errors.New("say which token to create: --global (every host; written directly into the store, how the first token is made) or --host HOST (one host, through the API)")
	}
	return host, nil
}

// bootstrapGlobalToken creates a global token in the store itself.
func bootstrapGlobalToken(cmd *cobra.Command, stores storeFlags, name, scope string) (sdk.TokenCreated, error) {
	timeout, err := parseDuration("database-connect-timeout", stores.connectTimeout)
	if err != nil {
		return sdk.TokenCreated{}, err
	}
	if stores.database == "" {
		// Opening the store would create an empty database here: a token in it would be useless.
		if fi, err := os.Stat(stores.dataDir); err != nil || !fi.IsDir() {
			return sdk.TokenCreated{}, fmt.Errorf("no data directory %q: run this on the gateway's machine with the --data-dir (or --database) that trustgate serve uses", stores.dataDir)
		}
	}
	st, err := store.Open(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout})
	if err != nil {
		return sdk.TokenCreated{}, err
	}
	defer st.Close()
	secret, hash, prefix := admin.NewTokenSecret()
	storeScope := store.TokenScopeAdmin
	if scope == sdk.ScopeCheck {
		storeScope = store.TokenScopeCheck
	}
	t, err := st.CreateAPIToken(cmd.Context(), store.APIToken{Name: name, Hash: hash, Prefix: prefix, Scope: storeScope})
	if err != nil {
		return sdk.TokenCreated{}, err
	}
	return sdk.TokenCreated{
		Token:  sdk.Token{ID: t.ID, Name: t.Name, Host: t.Host, Prefix: t.Prefix, Scope: scope, CreatedAt: t.CreatedAt},
		Secret: secret,
	}, nil
}

// writeTokenCreated prints a new token: the secret alone on the first line (or the JSON
// document), then a note on stderr that it is shown once.
func writeTokenCreated(out, errOut io.Writer, t sdk.TokenCreated, isJSON bool) error {
	var err error
	if isJSON {
		err = writeJSON(out, t)
	} else {
		err = printf(out, "%s\n", t.Secret)
	}
	if err != nil {
		return err
	}
	scope := "global"
	if t.Host != "" {
		scope = "host " + t.Host
	}
	if t.Scope == sdk.ScopeCheck {
		scope += ", may only ask for decisions"
	}
	_ = printf(errOut, "This token (%s, id %s) is shown only once: store it now, and use it with --token or TRUSTGATE_TOKEN.\n", scope, t.ID)
	return nil
}

func newTokenListCommand(o *adminOptions, host *string) *cobra.Command {
	var global bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a host's API tokens (--global: the global ones)",
		Args:  argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			var tokens []sdk.Token
			var err error
			if global {
				tokens, err = sdk.Collect(a.client.GlobalTokens(a.ctx))
			} else {
				tokens, err = sdk.Collect(a.client.HostTokens(a.ctx, *host))
			}
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, tokens)
			}
			return writeTokenTable(a.out, tokens)
		}),
	}
	cmd.Flags().BoolVar(&global, "global", false, "list the global tokens (needs a global token)")
	return cmd
}

func newTokenRevokeCommand(o *adminOptions, host *string) *cobra.Command {
	var global bool
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token of a host (--global: a global one)",
		Args:  argsNamed("ID"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if global {
				if err := a.client.DeleteGlobalToken(a.ctx, args[0]); err != nil {
					return err
				}
				return a.done("Revoked global token %s.\n", args[0])
			}
			if err := a.client.DeleteHostToken(a.ctx, *host, args[0]); err != nil {
				return err
			}
			return a.done("Revoked token %s of host %s.\n", args[0], *host)
		}),
	}
	cmd.Flags().BoolVar(&global, "global", false, "the token is a global one")
	return cmd
}

func writeTokenTable(w io.Writer, tokens []sdk.Token) error {
	rows := make([][]string, 0, len(tokens))
	for _, t := range tokens {
		host := t.Host
		if host == "" {
			host = "(global)"
		}
		rows = append(rows, []string{t.ID, t.Name, host, t.Scope, t.Prefix + "…", formatTime(t.CreatedAt), formatTimePtr(t.LastUsedAt)})
	}
	return writeTable(w, []string{"id", "name", "host", "scope", "prefix", "created", "last used"}, rows)
}
