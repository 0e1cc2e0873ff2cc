package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// A host's incoming webhook from the command line: the URL is a secret (whoever holds it may
// post to the channel), so it is read from a file, stdin or an environment variable, never
// from the command line.

func newHostWebhookCommand(o *adminOptions) *cobra.Command {
	return groupCommand("webhook", "Manage a host's Slack-compatible incoming webhook (approvals and anomaly flags post to it)",
		newHostWebhookShowCommand(o), newHostWebhookSetCommand(o), newHostWebhookTestCommand(o), newHostWebhookRemoveCommand(o))
}

func newHostWebhookShowCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show HOST",
		Short: "Say whether the host's webhook is set (its URL is never shown)",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			st, err := a.client.GetWebhook(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, st)
			}
			if !st.Set {
				return printf(a.out, "Host %s has no webhook.\n", args[0])
			}
			return printf(a.out, "Host %s's webhook is set (since %s).\n", args[0], st.UpdatedAt.Format("2006-01-02 15:04:05 MST"))
		}),
	}
}

func newHostWebhookSetCommand(o *adminOptions) *cobra.Command {
	var urlFile, urlEnv string
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "set HOST (--url-env NAME | --url-file FILE)",
		Short: "Set the host's webhook URL (sealed in the store, never shown again)",
		Long: "Set the host's Slack-compatible incoming webhook URL. The URL is read from an environment\n" +
			"variable (--url-env) or a file (--url-file, - for stdin), never from the command line.\n\n" +
			"  SLACK_HOOK=https://hooks.slack.com/services/T…/B…/… trustgate admin host webhook set acme --url-env SLACK_HOOK",
		Args: argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			var url string
			switch {
			case urlFile != "" && urlEnv != "":
				return fmt.Errorf("--url-file and --url-env: give one")
			case urlFile != "":
				var b []byte
				var err error
				if urlFile == "-" {
					b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 8<<10))
				} else {
					b, err = os.ReadFile(urlFile)
				}
				if err != nil {
					return fmt.Errorf("--url-file: %w", err)
				}
				url = strings.TrimSpace(string(b))
			case urlEnv != "":
				v, ok := os.LookupEnv(urlEnv)
				if !ok || v == "" {
					return fmt.Errorf("--url-env: the environment variable %s is not set", urlEnv)
				}
				url = strings.TrimSpace(v)
			default:
				return fmt.Errorf("give the URL with --url-env NAME or --url-file FILE (- for stdin)")
			}
			st, err := a.client.SetWebhook(a.ctx, args[0], url)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, st)
			}
			return a.done("Host %s's webhook is set; try it with 'trustgate admin host webhook test %s'.\n", args[0], args[0])
		}),
	}
	cmd.Flags().StringVar(&urlEnv, "url-env", "", "read the URL from this environment variable")
	cmd.Flags().StringVar(&urlFile, "url-file", "", "read the URL from FILE (- for stdin)")
	return cmd
}

func newHostWebhookTestCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "test HOST",
		Short: "Post a test message to the host's webhook now and report the outcome",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			res, err := a.client.TestWebhook(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.json {
				if err := writeJSON(a.out, res); err != nil {
					return err
				}
			} else if res.Delivered {
				if err := printf(a.out, "Delivered a test message to host %s's webhook.\n", args[0]); err != nil {
					return err
				}
			}
			if !res.Delivered {
				return fmt.Errorf("the test message was not delivered: %s", res.Error)
			}
			return nil
		}),
	}
}

func newHostWebhookRemoveCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove HOST",
		Short: "Remove the host's webhook",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteWebhook(a.ctx, args[0]); err != nil {
				return err
			}
			return a.done("Host %s has no webhook now.\n", args[0])
		}),
	}
}
