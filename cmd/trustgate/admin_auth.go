package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// trustgate admin host auth list|set|delete: a host's sign-in methods.

func newHostAuthCommand(o *adminOptions) *cobra.Command {
	return groupCommand("auth", "Manage a host's sign-in methods (password, email_otp, passkey, oidc, google, github, microsoft, saml)",
		newHostAuthListCommand(o), newHostAuthSetCommand(o), newHostAuthDeleteCommand(o))
}

func newHostAuthListCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list HOST",
		Short: "List a host's sign-in methods and allowed sign-in domains (secrets only as set / not set)",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			s, err := a.client.GetAuthSettings(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, s)
			}
			if err := printf(a.out, "Sign-in domains: %s\n\n", listOr(s.SignInDomains, "any")); err != nil {
				return err
			}
			rows := make([][]string, 0, len(s.Methods))
			for _, m := range s.Methods {
				force := "-"
				if len(m.ForceRedirectDomains) > 0 {
					force = strings.Join(m.ForceRedirectDomains, ",")
				}
				rows = append(rows, []string{m.Method, yesNo(m.Enabled), listOr(m.AllowedDomains, "any"), force,
					firstLine(compactJSON(m.Config), 60), m.Secret})
			}
			if err := writeTable(a.out, []string{"method", "enabled", "allowed domains", "force redirect", "config", "secret"}, rows); err != nil {
				return err
			}
			for _, m := range s.Methods {
				if m.ServiceProvider != nil {
					if err := printServiceProvider(a.out, m.ServiceProvider); err != nil {
						return err
					}
				}
			}
			return nil
		}),
	}
}

func newHostAuthSetCommand(o *adminOptions) *cobra.Command {
	var (
		enable, disable, clearSecret  bool
		allowed, force                []string
		config, secretFile, secretEnv string
	)
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "set HOST METHOD",
		Short: "Change a sign-in method's settings (flags not given keep their value)",
		Long: "Change a sign-in method's settings. Flags not given keep their current value.\n" +
			"The provider secret is read from a file (--secret-file, - for stdin) or an environment\n" +
			"variable (--secret-env), never from the command line; it is sealed with the master key\n" +
			"and never shown again (list says set / not set).",
		Example: "  trustgate admin host auth set acme email_otp --enable                  # sign in with a code sent by email (needs --smtp-url)\n" +
			"  trustgate admin host auth set acme saml --enable --config @saml.json   # {\"idp_metadata_url\":\"https://idp.example.com/metadata\"}\n" +
			"  trustgate admin host auth set acme oidc --enable --config '{\"issuer\":\"https://idp.example.com\",\"client_id\":\"trustgate\"}' --secret-env OIDC_SECRET\n" +
			"  trustgate admin host auth set acme oidc --force-redirect-domains acme.com\n" +
			"  trustgate admin host auth set acme password --disable",
		Args: argsNamed("HOST", "METHOD"),
		RunE: o.api(func(a *adminCall, args []string) error {
			host, method := args[0], strings.ToLower(args[1])
			f := cmd.Flags()
			if enable && disable {
				return fmt.Errorf("--enable and --disable: give one")
			}
			current, err := a.client.GetAuthSettings(a.ctx, host)
			if err != nil {
				return err
			}
			var req sdk.AuthMethodSet
			found := false
			for _, m := range current.Methods {
				if m.Method == method {
					found = true
					req = sdk.AuthMethodSet{Enabled: m.Enabled, AllowedDomains: m.AllowedDomains, ForceRedirectDomains: m.ForceRedirectDomains, Config: m.Config}
				}
			}
			if !found {
				names := make([]string, 0, len(current.Methods))
				for _, m := range current.Methods {
					names = append(names, m.Method)
				}
				return fmt.Errorf("sign-in method %q: want one of %s", method, strings.Join(names, ", "))
			}
			if enable || disable {
				req.Enabled = enable
			}
			if f.Changed("allowed-domains") {
				if req.AllowedDomains, err = domainList("--allowed-domains", allowed); err != nil {
					return err
				}
			}
			if f.Changed("force-redirect-domains") {
				if req.ForceRedirectDomains, err = domainList("--force-redirect-domains", force); err != nil {
					return err
				}
			}
			if f.Changed("config") {
				raw := []byte(config)
				if path, ok := strings.CutPrefix(config, "@"); ok {
					if raw, err = os.ReadFile(path); err != nil {
						return fmt.Errorf("--config: %w", err)
					}
				}
				if !json.Valid(raw) {
					return fmt.Errorf("--config: not valid JSON (give a JSON object, or @FILE)")
				}
				req.Config = raw
			}
			switch {
			case clearSecret && (secretFile != "" || secretEnv != ""):
				return fmt.Errorf("--clear-secret and a new secret: give one")
			case clearSecret:
				empty := ""
				req.Secret = &empty
			case secretFile != "" && secretEnv != "":
				return fmt.Errorf("--secret-file and --secret-env: give one")
			case secretFile != "":
				var b []byte
				if secretFile == "-" {
					b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
				} else {
					b, err = os.ReadFile(secretFile)
				}
				if err != nil {
					return fmt.Errorf("--secret-file: %w", err)
				}
				s := strings.TrimRight(string(b), "\r\n")
				req.Secret = &s
			case secretEnv != "":
				s, ok := os.LookupEnv(secretEnv)
				if !ok || s == "" {
					return fmt.Errorf("--secret-env: the environment variable %s is not set", secretEnv)
				}
				req.Secret = &s
			}
			m, err := a.client.SetAuthMethod(a.ctx, host, method, req)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, m)
			}
			if err := printf(a.out, "Sign-in method %s of %s: %s; allowed domains %s; force redirect %s; secret %s.\n",
				m.Method, host, map[bool]string{true: "enabled", false: "disabled"}[m.Enabled],
				listOr(m.AllowedDomains, "any"), listOr(m.ForceRedirectDomains, "none"), m.Secret); err != nil {
				return err
			}
			if m.ServiceProvider != nil {
				return printServiceProvider(a.out, m.ServiceProvider)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&enable, "enable", false, "turn the method on")
	f.BoolVar(&disable, "disable", false, "turn the method off")
	f.StringSliceVar(&allowed, "allowed-domains", nil, "email domains that may use the method, comma-separated (--allowed-domains= allows all)")
	f.StringSliceVar(&force, "force-redirect-domains", nil, "single sign-on methods: email domains sent straight to this provider (--force-redirect-domains= for none)")
	f.StringVar(&config, "config", "", "the method's settings as a JSON object, or @FILE")
	f.StringVar(&secretFile, "secret-file", "", "read the provider secret from FILE (- for stdin)")
	f.StringVar(&secretEnv, "secret-env", "", "read the provider secret from the environment variable VAR")
	f.BoolVar(&clearSecret, "clear-secret", false, "remove the stored provider secret")
	return cmd
}

func newHostAuthDeleteCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete HOST METHOD",
		Short: "Remove a sign-in method's settings: back to its default (password on, every other method off)",
		Args:  argsNamed("HOST", "METHOD"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteAuthMethod(a.ctx, args[0], strings.ToLower(args[1])); err != nil {
				return err
			}
			return a.done("Sign-in method %s of %s is back to its default.\n", strings.ToLower(args[1]), args[0])
		}),
	}
}

// printServiceProvider prints the SAML SP details an IdP's administrator enters.
func printServiceProvider(w io.Writer, sp *sdk.SAMLServiceProvider) error {
	return printf(w, "\nSAML service provider (enter these at the identity provider, or give it the metadata):\n"+
		"  entity ID (audience): %s\n  ACS URL (HTTP-POST):  %s\n  metadata:             %s\n", sp.EntityID, sp.ACSURL, sp.MetadataURL)
}

// domainList cleans a list of email domains given on the command line.
func domainList(flag string, in []string) ([]string, error) {
	out := []string{}
	for _, d := range in {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" {
			continue
		}
		if strings.ContainsAny(d, "@/ \t") {
			return nil, fmt.Errorf("%s: %q is not an email domain such as example.com", flag, d)
		}
		out = append(out, d)
	}
	return out, nil
}
