package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/sdk"
)

// defaultAdminURL is where `trustgate serve` listens by default.
const defaultAdminURL = "http://127.0.0.1:8080"

// defaultHostKey is the host every gateway has from its first start.
const defaultHostKey = "default"

// errNoToken explains how to get the first token.
var errNoToken = errors.New(`no admin API token: pass --token or set TRUSTGATE_TOKEN.
To create the first one, run on the gateway's machine (with the --data-dir or --database that serve uses):
  trustgate admin token create --global`)

// adminOptions are the flags every admin command shares.
type adminOptions struct {
	url    string
	token  string
	output string
}

// adminCall is what one admin command runs with.
type adminCall struct {
	ctx    context.Context
	client *sdk.Client
	out    io.Writer
	errOut io.Writer
	json   bool
}

func newAdminCommand() *cobra.Command {
	o := &adminOptions{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage hosts, MCP servers, tools, humans, agents and API tokens through the admin API",
		Long: `admin talks to a running gateway's admin API (/api/v1) with an admin API token.

Host-scoped commands act on --host (default "default"). Tables are for people;
-o json prints the API's documents (lists as one JSON array of every item).

The first token is created directly in the store, on the gateway's machine:
  trustgate admin token create --global`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.url, "url", defaultAdminURL, "URL of the gateway's admin API")
	f.StringVar(&o.token, "token", "", "admin API token")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json (audit list: also jsonl)")
	bindEnv(f, "url", "TRUSTGATE_URL")
	bindEnv(f, "token", "TRUSTGATE_TOKEN")
	cmd.AddCommand(
		newAdminHostCommand(o),
		newAdminServerCommand(o),
		newAdminToolCommand(o),
		newAdminHumanCommand(o),
		newAdminAgentCommand(o),
		newAdminTokenCommand(o),
		newAdminKeysCommand(o),
		newAdminAuditCommand(o),
		newAdminExplainCommand(o),
		newAdminInsightsCommand(o),
		newAdminSetupLinkCommand(),
		newAdminOutboxCommand(o),
	)
	return cmd
}

// jsonOutput reports whether -o asks for JSON.
func (o *adminOptions) jsonOutput() (bool, error) {
	switch strings.ToLower(strings.TrimSpace(o.output)) {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--output %q: want table or json", o.output)
}

// api makes a RunE that calls the admin API: it checks the output format and the token, makes
// the client, runs fn and turns the API's errors into their problem detail.
func (o *adminOptions) api(fn func(a *adminCall, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		isJSON, err := o.jsonOutput()
		if err != nil {
			return err
		}
		token := strings.TrimSpace(o.token)
		if token == "" {
			return errNoToken
		}
		client, err := sdk.NewClient(o.url, token)
		if err != nil {
			return fmt.Errorf("%w (set --url or TRUSTGATE_URL)", err)
		}
		a := &adminCall{ctx: cmd.Context(), client: client, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: isJSON}
		return o.explain(fn(a, args))
	}
}

// explain turns an API error into its problem detail (main prints "trustgate: <detail>"), and a
// transport error into one that names the URL it could not reach.
func (o *adminOptions) explain(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *sdk.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Problem.Detail
		if msg == "" {
			msg = apiErr.Error()
		}
		if apiErr.Status == http.StatusUnauthorized {
			msg += " (check --token or TRUSTGATE_TOKEN)"
		}
		return errors.New(msg)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) && !errors.Is(err, context.Canceled) {
		if urlErr.Timeout() {
			return fmt.Errorf("the admin API at %s did not answer in time: %v", o.url, urlErr.Err)
		}
		return fmt.Errorf("cannot reach the admin API at %s (set --url or TRUSTGATE_URL): %v", o.url, urlErr.Err)
	}
	return err
}

// addHostFlag gives a command group the --host flag of its host-scoped commands.
func addHostFlag(cmd *cobra.Command, host *string) {
	f := cmd.PersistentFlags()
	f.StringVar(host, "host", defaultHostKey, "host (tenant) to act on")
	bindEnv(f, "host", "TRUSTGATE_HOST")
}

// groupCommand is a command that only holds subcommands. Run alone it prints its help; an
// unknown subcommand is an error (a group without RunE would print help and exit 0).
func groupCommand(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(subs...)
	return cmd
}

// argsNamed accepts exactly the named positional arguments, none of them empty.
func argsNamed(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			what := "no arguments"
			if len(names) > 0 {
				what = strings.Join(names, " ")
			}
			return fmt.Errorf("%s takes %s; got %d argument(s) (usage: %s)", cmd.CommandPath(), what, len(args), cmd.UseLine())
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return fmt.Errorf("%s: %s must not be empty", cmd.CommandPath(), names[i])
			}
		}
		return nil
	}
}

// requireYes refuses a destructive command run without --yes, saying what it would delete.
func requireYes(yes bool, what string) error {
	if yes {
		return nil
	}
	return fmt.Errorf("this would delete %s; run again with --yes to do it", what)
}

// parseLevel validates a trust level flag or argument and returns its canonical name.
func parseLevel(what, s string) (string, error) {
	l, err := schema.ParseLevel(s)
	if err != nil {
		return "", fmt.Errorf("%s %q: want low, medium or high", what, s)
	}
	return l.String(), nil
}

// oneOf validates s against the allowed values (case-insensitive) and returns it lowercased.
func oneOf(what, s string, allowed ...string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s %q: want %s", what, s, orList(allowed))
}

// orList renders ["a" "b" "c"] as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// errNothingToUpdate names the flags an update command takes.
func errNothingToUpdate(cmd *cobra.Command, flags ...string) error {
	return fmt.Errorf("%s: nothing to change; give at least one of --%s", cmd.CommandPath(), strings.Join(flags, ", --"))
}
