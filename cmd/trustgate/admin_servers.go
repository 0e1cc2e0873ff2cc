package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/sdk"
)

func newAdminServerCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("server", "Import and manage upstream MCP servers",
		newServerImportCommand(o, &host), newServerListCommand(o, &host), newServerShowCommand(o, &host),
		newServerUpdateCommand(o, &host), newServerSyncCommand(o, &host), newServerDeleteCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newServerImportCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		req      sdk.ServerImport
		creds    credentialFlags
		timeouts timeoutFlags
		disabled bool
	)
	cmd := &cobra.Command{
		Use:   "import URL",
		Short: "Import an MCP server: connect to it, list its tools and classify their trust levels",
		Long: `import connects to the MCP server at URL, lists its tools and proposes a trust level
for each (low: read, medium: write, high: destructive). Tools are enabled at once
unless --disabled. --dry-run shows what would be imported and saves nothing.`,
		Args: argsNamed("URL"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		var err error
		if req.Header, req.OAuthClient, err = creds.parse(cmd.Flags()); err != nil {
			return err
		}
		req.URL = args[0]
		c, fb, idle := timeouts.parse(cmd.Flags())
		for _, t := range []struct {
			src *int64
			dst *int64
		}{{c, &req.ConnectTimeoutMS}, {fb, &req.FirstByteTimeoutMS}, {idle, &req.IdleTimeoutMS}} {
			if t.src != nil {
				*t.dst = *t.src
			}
		}
		if disabled {
			f := false
			req.EnableTools = &f
		}
		res, err := a.client.ImportServer(a.ctx, *host, req)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, res)
		}
		return writeImport(a.out, *host, res)
	})
	f := cmd.Flags()
	f.StringVar(&req.Key, "key", "", "server key, a short slug (default: derived from the server's name)")
	f.StringVar(&req.Name, "name", "", "display name (default: the name the server reports)")
	f.StringVar(&req.Description, "description", "", "description shown to humans at consent")
	creds.register(f)
	timeouts.register(f)
	f.BoolVar(&disabled, "disabled", false, "import every tool disabled, to enable them one by one")
	f.BoolVar(&req.UpstreamSignIn, "upstream-sign-in", false, "each human signs in at the server at consent, the gateway registering itself at its authorization server (no --oauth-client-id needed); a server that answers 401 is imported without tools")
	f.StringVar(&req.DiscoveryToken, "discovery-token", "", "with --upstream-sign-in or --oauth-client-id: an access token of your own at the server, used to discover its tools now and never stored")
	f.BoolVar(&req.DryRun, "dry-run", false, "show what would be imported without saving anything")
	f.StringVar(&req.Network, "network", "", networkHelp+" (default: any with a global token, host with a host's token)")
	return cmd
}

func newServerListCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List MCP servers",
		Args:  argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			servers, err := sdk.Collect(a.client.Servers(a.ctx, *host))
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, servers)
			}
			rows := make([][]string, 0, len(servers))
			for _, s := range servers {
				rows = append(rows, []string{s.Key, s.Name, s.URL, s.Network, credentialKind(s.CredentialKind),
					strconv.Itoa(s.Tools), strconv.Itoa(s.EnabledTools), strconv.Itoa(s.FlaggedTools)})
			}
			return writeTable(a.out, []string{"key", "name", "url", "network", "credentials", "tools", "enabled", "flagged"}, rows)
		}),
	}
}

func newServerShowCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show SERVER",
		Short: "Show an MCP server and its tools (-o json: the server document)",
		Args:  argsNamed("SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			s, err := a.client.GetServer(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, s)
			}
			tools, err := sdk.Collect(a.client.Tools(a.ctx, *host, args[0]))
			if err != nil {
				return err
			}
			if err := writeFields(a.out, serverFields(s)); err != nil {
				return err
			}
			if err := printf(a.out, "\n"); err != nil {
				return err
			}
			return writeToolTable(a.out, tools, false)
		}),
	}
}

func newServerUpdateCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		name, description, serverURL string
		creds                        credentialFlags
		timeouts                     timeoutFlags
		clearCreds                   bool
		network, dlpMode             string
	)
	cmd := &cobra.Command{
		Use:   "update SERVER",
		Short: "Rename, describe, move or re-credential an MCP server (only the flags given change)",
		Args:  argsNamed("SERVER"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		f := cmd.Flags()
		var req sdk.ServerUpdate
		if f.Changed("name") {
			req.Name = &name
		}
		if f.Changed("description") {
			req.Description = &description
		}
		if f.Changed("server-url") {
			req.URL = &serverURL
		}
		if f.Changed("network") {
			req.Network = &network
		}
		if f.Changed("dlp-mode") {
			if dlpMode == "host" {
				dlpMode = ""
			}
			req.DLPMode = &dlpMode
		}
		var err error
		if req.Header, req.OAuthClient, err = creds.parse(f); err != nil {
			return err
		}
		if clearCreds && (req.Header != nil || req.OAuthClient != nil) {
			return errors.New("--clear-credentials cannot be combined with --header or --oauth-client-id")
		}
		req.ClearCredentials = clearCreds
		req.ConnectTimeoutMS, req.FirstByteTimeoutMS, req.IdleTimeoutMS = timeouts.parse(f)
		if req == (sdk.ServerUpdate{}) {
			return errNothingToUpdate(cmd, "name", "description", "server-url", "header", "oauth-client-id", "clear-credentials",
				"connect-timeout", "first-byte-timeout", "idle-timeout", "network", "dlp-mode")
		}
		s, err := a.client.UpdateServer(a.ctx, *host, args[0], req)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, s)
		}
		return writeFields(a.out, serverFields(s))
	})
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&description, "description", "", "description shown to humans at consent")
	// Not --url: that is the admin API's URL on every admin command.
	f.StringVar(&serverURL, "server-url", "", "the server's new MCP URL")
	creds.register(f)
	timeouts.register(f)
	f.BoolVar(&clearCreds, "clear-credentials", false, "remove the stored credentials")
	f.StringVar(&network, "network", "", networkHelp)
	f.StringVar(&dlpMode, "dlp-mode", "", "the server's result filter: off, redact, block, or host to follow the host's (admin host dlp)")
	return cmd
}

func newServerSyncCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "sync SERVER",
		Short: "Re-discover an MCP server's tools: add new ones, flag changed ones, drop removed ones",
		Args:  argsNamed("SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			res, err := a.client.SyncServer(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, res)
			}
			return writeSync(a.out, *host, args[0], res)
		}),
	}
}

func newServerDeleteCommand(o *adminOptions, host *string) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete SERVER",
		Short: "Delete an MCP server with its tools, grants and consents",
		Args:  argsNamed("SERVER"),
		PreRunE: func(_ *cobra.Command, args []string) error {
			return requireYes(yes, fmt.Sprintf("server %q of host %q with its tools, every human's grant on it and every agent's consent", args[0], *host))
		},
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteServer(a.ctx, *host, args[0]); err != nil {
				return err
			}
			return a.done("Deleted server %s of host %s.\n", args[0], *host)
		}),
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete")
	return cmd
}

// ---- tools

func newAdminToolCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("tool", "Review the tools of MCP servers: levels, enablement, approval",
		newToolListCommand(o, &host), newToolShowCommand(o, &host), newToolUpdateCommand(o, &host), newToolConditionCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newToolListCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list SERVER",
		Short: "List a server's tools",
		Args:  argsNamed("SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			tools, err := sdk.Collect(a.client.Tools(a.ctx, *host, args[0]))
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, tools)
			}
			return writeToolTable(a.out, tools, true)
		}),
	}
}

func newToolShowCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show SERVER TOOL",
		Short: "Show a tool with its definition",
		Args:  argsNamed("SERVER", "TOOL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			t, err := a.client.GetTool(a.ctx, *host, args[0], args[1])
			if err != nil {
				return err
			}
			return a.printTool(t)
		}),
	}
}

func newToolUpdateCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		level                    string
		enable, disable, approve bool
	)
	cmd := &cobra.Command{
		Use:   "update SERVER TOOL",
		Short: "Set a tool's level, enable or disable it, or approve its changed definition",
		Long: `update changes one tool. --level overrides the classifier (a sync keeps it).
--approve accepts a flagged tool's new definition and enables it (unless --disable).`,
		Args: argsNamed("SERVER", "TOOL"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		var req sdk.ToolUpdate
		if cmd.Flags().Changed("level") {
			l, err := parseLevel("--level", level)
			if err != nil {
				return err
			}
			req.Level = &l
		}
		if enable && disable {
			return errors.New("--enable and --disable are mutually exclusive")
		}
		if enable || disable {
			v := enable
			req.Enabled = &v
		}
		req.Approve = approve
		if req == (sdk.ToolUpdate{}) {
			return errNothingToUpdate(cmd, "level", "enable", "disable", "approve")
		}
		t, err := a.client.UpdateTool(a.ctx, *host, args[0], args[1], req)
		if err != nil {
			return err
		}
		return a.printTool(t)
	})
	f := cmd.Flags()
	f.StringVar(&level, "level", "", "trust level the tool requires: low, medium or high")
	f.BoolVar(&enable, "enable", false, "enable the tool")
	f.BoolVar(&disable, "disable", false, "disable the tool")
	f.BoolVar(&approve, "approve", false, "approve the tool's current definition (clears its flag)")
	return cmd
}

// ---- credentials

// credentialFlags are the upstream credential flags of server import and update.
type credentialFlags struct {
	header, clientID, clientSecret string
}

func (c *credentialFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.header, "header", "", `static header sent to the server with every call, as "Name: value"`)
	f.StringVar(&c.clientID, "oauth-client-id", "", "client id registered at the server's OAuth authorization server")
	f.StringVar(&c.clientSecret, "oauth-client-secret", "", "that client's secret (with --oauth-client-id)")
}

// parse returns the credential the flags give, if any.
func (c *credentialFlags) parse(f *pflag.FlagSet) (*sdk.CredentialHeader, *sdk.OAuthClient, error) {
	hasHeader, hasID := f.Changed("header"), f.Changed("oauth-client-id")
	if hasHeader && hasID {
		return nil, nil, errors.New("--header and --oauth-client-id are mutually exclusive: a server has one kind of credential")
	}
	if f.Changed("oauth-client-secret") && !hasID {
		return nil, nil, errors.New("--oauth-client-secret needs --oauth-client-id")
	}
	switch {
	case hasHeader:
		h, err := parseHeader(c.header)
		if err != nil {
			return nil, nil, err
		}
		return &h, nil, nil
	case hasID:
		id := strings.TrimSpace(c.clientID)
		if id == "" {
			return nil, nil, errors.New("--oauth-client-id must not be empty")
		}
		return nil, &sdk.OAuthClient{ClientID: id, ClientSecret: c.clientSecret}, nil
	}
	return nil, nil, nil
}

// parseHeader reads a --header "Name: value". The value is a secret, so errors never quote it
// (nor the part before the colon when that is not a header name, since it may be the value).
func parseHeader(s string) (sdk.CredentialHeader, error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return sdk.CredentialHeader{}, errors.New(`--header: want "Name: value", such as "Authorization: Bearer <key>"`)
	}
	if !validHeaderName(name) {
		return sdk.CredentialHeader{}, errors.New("--header: the part before the colon is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
	}
	if value == "" {
		return sdk.CredentialHeader{}, fmt.Errorf("--header %s: the value after the colon is empty", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return sdk.CredentialHeader{}, fmt.Errorf("--header %s: the value must be one line", name)
	}
	return sdk.CredentialHeader{Name: name, Value: value}, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// ---- rendering

func credentialKind(kind string) string {
	switch kind {
	case "":
		return "none"
	case "header":
		return "header"
	case "oauth_client":
		return "OAuth client"
	}
	return kind
}

// networkHelp explains --network of server import and update.
const networkHelp = `addresses the gateway may connect to for the server: "host" (public addresses and the networks of serve --upstream-allow-cidr) or "any" (every address; needs a global API token)`

func serverFields(s sdk.Server) []field {
	fields := []field{
		{"Key", s.Key},
		{"Name", s.Name},
		{"Description", s.Description},
		{"URL", s.URL},
		{"Credentials", credentialKind(s.CredentialKind)},
		{"Network", s.Network},
		{"Result filter (DLP)", orText(s.DLPMode, "the host's")},
		{"Tools", fmt.Sprintf("%d (%d enabled, %d flagged)", s.Tools, s.EnabledTools, s.FlaggedTools)},
		{"Timeouts", fmt.Sprintf("connect %s, first byte %s, idle stream %s",
			timeoutText(s.ConnectTimeoutMS), timeoutText(s.FirstByteTimeoutMS), timeoutText(s.IdleTimeoutMS))},
	}
	if !s.CreatedAt.IsZero() {
		fields = append(fields, field{"Created", formatTime(s.CreatedAt)}, field{"Updated", formatTime(s.UpdatedAt)})
	}
	return fields
}

// writeToolTable lists tools; long adds whether an admin set the level and the description.
func writeToolTable(w io.Writer, tools []sdk.Tool, long bool) error {
	header := []string{"name", "level", "enabled", "flagged"}
	if long {
		header = []string{"name", "level", "set by", "enabled", "flagged", "description"}
	}
	rows := make([][]string, 0, len(tools))
	for _, t := range tools {
		flagged := yesNo(t.Flagged)
		if t.Flagged && t.FlagReason != "" {
			flagged += ": " + t.FlagReason
		}
		if long {
			setBy := "classifier"
			if t.LevelOverridden {
				setBy = "admin"
			}
			rows = append(rows, []string{t.Name, t.Level, setBy, yesNo(t.Enabled), flagged, firstLine(t.Description, 60)})
		} else {
			rows = append(rows, []string{t.Name, t.Level, yesNo(t.Enabled), flagged})
		}
	}
	return writeTable(w, header, rows)
}

func (a *adminCall) printTool(t sdk.Tool) error {
	if a.json {
		return writeJSON(a.out, t)
	}
	level := t.Level + " (classified)"
	if t.LevelOverridden {
		level = t.Level + " (set by an admin)"
	}
	flagged := yesNo(t.Flagged)
	if t.Flagged && t.FlagReason != "" {
		flagged += ": " + t.FlagReason
	}
	return writeFields(a.out, []field{
		{"Server", t.Server},
		{"Name", t.Name},
		{"Title", t.Title},
		{"Description", firstLine(t.Description, 200)},
		{"Level", level},
		{"Enabled", yesNo(t.Enabled)},
		{"Flagged", flagged},
		{"Updated", formatTime(t.UpdatedAt)},
		{"Input schema", compactJSON(t.InputSchema)},
		{"Output schema", compactJSON(t.OutputSchema)},
		{"Annotations", compactJSON(t.Annotations)},
		{"Conditions", describeConditions(t.Conditions)},
	})
}

func writeImport(w io.Writer, host string, r sdk.ImportResult) error {
	if err := writeFields(w, serverFields(r.Server)); err != nil {
		return err
	}
	if err := printf(w, "\n"); err != nil {
		return err
	}
	if err := writeToolTable(w, r.Tools, false); err != nil {
		return err
	}
	if err := writeNote(w, r.Note); err != nil {
		return err
	}
	if r.DryRun {
		return printf(w, "\nDry run: nothing was saved. Run again without --dry-run to import.\n")
	}
	enabled := 0
	for _, t := range r.Tools {
		if t.Enabled {
			enabled++
		}
	}
	return printf(w, "\nImported %d tool(s), %d enabled. Give humans access with:\n  trustgate admin human grant%s EMAIL %s --level LEVEL\n",
		len(r.Tools), enabled, hostArg(host), r.Server.Key)
}

// writeNote prints the API's note on a result, when it has one.
func writeNote(w io.Writer, note string) error {
	if note == "" {
		return nil
	}
	return printf(w, "\nNote: %s\n", note)
}

func writeSync(w io.Writer, host, server string, r sdk.SyncResult) error {
	err := writeFields(w, []field{
		{"Added", listOr(r.Added, "none")},
		{"Changed", listOr(r.Changed, "none")},
		{"Removed", listOr(r.Removed, "none")},
		{"Unchanged", strconv.Itoa(r.Unchanged)},
	})
	if err != nil {
		return err
	}
	if err := writeNote(w, r.Note); err != nil {
		return err
	}
	if len(r.Changed) > 0 {
		if err := printf(w, "\nChanged tools are disabled and flagged until approved:\n  trustgate admin tool update%s %s TOOL --approve\n", hostArg(host), server); err != nil {
			return err
		}
	}
	if len(r.Added) > 0 {
		return printf(w, "\nNew tools are disabled unless the host auto-enables them; review and enable with:\n  trustgate admin tool update%s %s TOOL --enable\n", hostArg(host), server)
	}
	return nil
}

// hostArg is the --host argument of a suggested command ("" for the default host).
func hostArg(host string) string {
	if host == defaultHostKey {
		return ""
	}
	return " --host " + host
}

// timeoutFlags are a server's upstream timeouts on import and update.
type timeoutFlags struct{ connect, firstByte, idle time.Duration }

func (t *timeoutFlags) register(f *pflag.FlagSet) {
	f.DurationVar(&t.connect, "connect-timeout", 0, "upstream connect timeout, e.g. 5s (0: the default, 10s)")
	f.DurationVar(&t.firstByte, "first-byte-timeout", 0, "wait for the upstream's response header, e.g. 2m (0: the default, 60s)")
	f.DurationVar(&t.idle, "idle-timeout", 0, "end a streaming response silent this long, e.g. 10m (0: the default, 5m)")
}

// parse returns the flags given, in milliseconds (nil: not given).
func (t *timeoutFlags) parse(f *pflag.FlagSet) (connect, firstByte, idle *int64) {
	ms := func(name string, d time.Duration) *int64 {
		if !f.Changed(name) {
			return nil
		}
		v := d.Milliseconds()
		return &v
	}
	return ms("connect-timeout", t.connect), ms("first-byte-timeout", t.firstByte), ms("idle-timeout", t.idle)
}

func timeoutText(ms int64) string {
	if ms == 0 {
		return "default"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}
