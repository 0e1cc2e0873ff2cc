package main

import (
	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/gateway"
	"github.com/trustgate/trustgate/tenant"
)

func newAdminSetupLinkCommand() *cobra.Command {
	var (
		stores    storeFlags
		publicURL string
	)
	cmd := &cobra.Command{
		Use:   "setup-link",
		Short: "Print a new one-time link with which the first operator sets up the dashboard",
		Long: `setup-link makes a new one-time setup link for the web dashboard and prints it: whoever
opens it first chooses the email and password of the gateway's first operator (an admin of
the default host, who administers every host). An earlier link stops working. Once an
operator exists there is nothing to set up and the command fails.

serve logs such a link once, at the first start without an operator. setup-link writes
directly into the store: run it on the gateway's machine with the --data-dir or --database
that serve uses, and --public-url as serve has it.`,
		Args: argsNamed(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if publicURL == "" {
				publicURL = "http://" + gateway.DefaultListen
			}
			urls, err := tenant.NewURLs(publicURL, false)
			if err != nil {
				return err
			}
			st, err := openExistingStore(cmd, stores)
			if err != nil {
				return err
			}
			defer st.Close()
			link, err := dashboard.IssueSetupLink(cmd.Context(), st, urls)
			if err != nil {
				return err
			}
			return printf(cmd.OutOrStdout(), "%s\n", link)
		},
	}
	f := cmd.Flags()
	stores.register(f)
	f.StringVar(&publicURL, "public-url", "", "the URL serve's --public-url names (default http://"+gateway.DefaultListen+")")
	bindEnv(f, "public-url", "TRUSTGATE_PUBLIC_URL")
	return cmd
}
