package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/sdk"
)

func newAdminHostCommand(o *adminOptions) *cobra.Command {
	return groupCommand("host", "Manage hosts (tenants)",
		newHostCreateCommand(o), newHostListCommand(o), newHostShowCommand(o),
		newHostUpdateCommand(o), newHostDLPCommand(o), newHostDeleteCommand(o), newHostAuthCommand(o),
		newHostStopCommand(o), newHostResumeCommand(o), newHostLimitCommand(o), newHostWebhookCommand(o), newHostAnomalyCommand(o), newHostApprovalsCommand(o))
}

func newHostCreateCommand(o *adminOptions) *cobra.Command {
	var req sdk.HostCreate
	cmd := &cobra.Command{
		Use:   "create PREFIX",
		Short: "Create a host (key: PREFIX plus a random suffix, such as acme-round-moccasin-19)",
		Args:  argsNamed("PREFIX"),
		RunE: o.api(func(a *adminCall, args []string) error {
			req.Key = args[0]
			h, err := a.client.CreateHost(a.ctx, req)
			if err != nil {
				return err
			}
			return a.printHost(h)
		}),
	}
	cmd.Flags().BoolVar(&req.Exact, "exact", false, "use PREFIX as the key as it is, without a random suffix")
	cmd.Flags().StringVar(&req.Name, "name", "", "display name")
	return cmd
}

func newHostListCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List hosts",
		Args:  argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			hosts, err := sdk.Collect(a.client.Hosts(a.ctx))
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, hosts)
			}
			rows := make([][]string, 0, len(hosts))
			for _, h := range hosts {
				rows = append(rows, []string{h.Key, h.Name, h.MCPURL, formatTime(h.CreatedAt)})
			}
			return writeTable(a.out, []string{"key", "name", "mcp url", "created"}, rows)
		}),
	}
}

func newHostShowCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show HOST",
		Short: "Show a host: its MCP URL, settings and ready-to-paste client configurations",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			return a.printHost(h)
		}),
	}
}

func newHostUpdateCommand(o *adminOptions) *cobra.Command {
	var u hostUpdateFlags
	cmd := &cobra.Command{
		Use:   "update HOST",
		Short: "Change a host's name or settings (only the flags given change)",
		Args:  argsNamed("HOST"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		req, err := u.update(cmd.Flags())
		if err != nil {
			return err
		}
		if req.Name == nil && req.Settings == nil {
			return errNothingToUpdate(cmd, hostUpdateFlagNames...)
		}
		h, err := a.client.UpdateHost(a.ctx, args[0], req)
		if err != nil {
			return err
		}
		return a.printHost(h)
	})
	u.register(cmd.Flags())
	return cmd
}

func newHostDeleteCommand(o *adminOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete HOST",
		Short: "Delete a host and everything in it",
		Args:  argsNamed("HOST"),
		PreRunE: func(_ *cobra.Command, args []string) error {
			return requireYes(yes, fmt.Sprintf("host %q and everything in it: its MCP servers and tools, humans, agents, grants, consents and API tokens", args[0]))
		},
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteHost(a.ctx, args[0]); err != nil {
				return err
			}
			return a.done("Deleted host %s.\n", args[0])
		}),
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete")
	return cmd
}

// hostUpdateFlagNames are the flags of host update, in the order help lists them.
var hostUpdateFlagNames = []string{"name", "allowed-domains", "sign-in-domains", "dynamic-mcps", "auto-enable-tools", "access-token-ttl",
	"session-idle-ttl", "session-max-ttl", "tool-visibility", "audit-arguments", "denial-format", "argument-validation"}

// hostUpdateFlags are host update's flags; only those given go into the patch.
type hostUpdateFlags struct {
	name                       string
	domains, signInDomains     []string
	dynamic, autoEnable, audit bool
	accessTTL, idleTTL, maxTTL time.Duration
	visibility, denialFormat   string
	argValidation              string
}

func (u *hostUpdateFlags) register(f *pflag.FlagSet) {
	f.StringVar(&u.name, "name", "", "display name")
	f.StringSliceVar(&u.domains, "allowed-domains", nil, "email domains whose people may sign up, comma-separated (--allowed-domains= turns sign-up off)")
	f.StringSliceVar(&u.signInDomains, "sign-in-domains", nil, "email domains that may sign in at all, whatever the method, comma-separated (--sign-in-domains= allows every domain)")
	f.BoolVar(&u.dynamic, "dynamic-mcps", false, "let humans connect MCP servers by URL at consent time (true or false)")
	f.BoolVar(&u.autoEnable, "auto-enable-tools", false, "enable tools a sync finds at once instead of after review (true or false)")
	f.DurationVar(&u.accessTTL, "access-token-ttl", 0, "lifetime of access tokens, such as 1h")
	f.DurationVar(&u.idleTTL, "session-idle-ttl", 0, "end a gateway session unused this long, such as 720h")
	f.DurationVar(&u.maxTTL, "session-max-ttl", 0, "end a gateway session this long after consent, such as 2160h")
	f.StringVar(&u.visibility, "tool-visibility", "", "tools/list shows the tools an agent may call (callable) or every enabled tool (all)")
	f.BoolVar(&u.audit, "audit-arguments", false, "store (redacted) tool-call arguments in the audit log (true or false)")
	f.StringVar(&u.denialFormat, "denial-format", "", "a denied tools/call is a tool result with isError that the model reads (tool_result) or a JSON-RPC error (jsonrpc_error)")
	f.StringVar(&u.argValidation, "argument-validation", "", "check a tools/call's arguments against the tool's approved input schema (on) or not (off)")
}

// update builds the patch of the flags that were given.
func (u *hostUpdateFlags) update(f *pflag.FlagSet) (sdk.HostUpdate, error) {
	var req sdk.HostUpdate
	var s sdk.HostSettingsPatch
	settings := false
	if f.Changed("name") {
		req.Name = &u.name
	}
	if f.Changed("allowed-domains") {
		domains := []string{}
		for _, d := range u.domains {
			d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
			if d == "" {
				continue
			}
			if strings.ContainsAny(d, "@/ \t") {
				return req, fmt.Errorf("--allowed-domains: %q is not an email domain such as example.com", d)
			}
			domains = append(domains, d)
		}
		s.AllowedEmailDomains, settings = &domains, true
	}
	if f.Changed("sign-in-domains") {
		domains, err := domainList("--sign-in-domains", u.signInDomains)
		if err != nil {
			return req, err
		}
		s.SignInDomains, settings = &domains, true
	}
	bools := []struct {
		flag string
		v    *bool
		dst  **bool
	}{
		{"dynamic-mcps", &u.dynamic, &s.DynamicMCPs},
		{"auto-enable-tools", &u.autoEnable, &s.AutoEnableNewTools},
		{"audit-arguments", &u.audit, &s.AuditArguments},
	}
	for _, b := range bools {
		if f.Changed(b.flag) {
			v := *b.v
			*b.dst, settings = &v, true
		}
	}
	ttls := []struct {
		flag string
		v    time.Duration
		dst  **int
	}{
		{"access-token-ttl", u.accessTTL, &s.AccessTokenTTLSeconds},
		{"session-idle-ttl", u.idleTTL, &s.SessionIdleTTLSeconds},
		{"session-max-ttl", u.maxTTL, &s.SessionMaxTTLSeconds},
	}
	for _, t := range ttls {
		if !f.Changed(t.flag) {
			continue
		}
		if t.v < time.Second || t.v%time.Second != 0 {
			return req, fmt.Errorf("--%s %s: want a whole number of seconds, at least 1s (such as 90s, 1h or 720h)", t.flag, t.v)
		}
		secs := int(t.v / time.Second)
		*t.dst, settings = &secs, true
	}
	if f.Changed("tool-visibility") {
		v, err := oneOf("--tool-visibility", u.visibility, "callable", "all")
		if err != nil {
			return req, err
		}
		s.ToolVisibility, settings = &v, true
	}
	if f.Changed("denial-format") {
		v, err := oneOf("--denial-format", u.denialFormat, "tool_result", "jsonrpc_error")
		if err != nil {
			return req, err
		}
		s.DenialFormat, settings = &v, true
	}
	if f.Changed("argument-validation") {
		v, err := oneOf("--argument-validation", u.argValidation, "on", "off")
		if err != nil {
			return req, err
		}
		s.ArgumentValidation, settings = &v, true
	}
	if settings {
		req.Settings = &s
	}
	return req, nil
}

// printHost prints a host: JSON, or its fields then each client configuration.
func (a *adminCall) printHost(h sdk.Host) error {
	if a.json {
		return writeJSON(a.out, h)
	}
	return writeHost(a.out, h)
}

func writeHost(w io.Writer, h sdk.Host) error {
	s := h.Settings
	err := writeFields(w, []field{
		{"Key", h.Key},
		{"Name", h.Name},
		{"MCP URL", h.MCPURL},
		{"Created", formatTime(h.CreatedAt)},
		{"Sign-up email domains", listOr(s.AllowedEmailDomains, "none (sign-up off)")},
		{"Sign-in email domains", listOr(s.SignInDomains, "any")},
		{"Dynamic MCPs", yesNo(s.DynamicMCPs)},
		{"Auto-enable new tools", yesNo(s.AutoEnableNewTools)},
		{"Access token TTL", formatSeconds(s.AccessTokenTTLSeconds)},
		{"Session idle TTL", formatSeconds(s.SessionIdleTTLSeconds)},
		{"Session max TTL", formatSeconds(s.SessionMaxTTLSeconds)},
		{"Tool visibility", s.ToolVisibility},
		{"Audit arguments", yesNo(s.AuditArguments)},
		{"Denial format", s.DenialFormat},
		{"Result filter (DLP)", dlpText(s.DLP)},
		{"Argument validation", s.ArgumentValidation},
		{"Rate limits", rateLimitsLine(s.RateLimits)},
		{"Emergency stop", emergencyStopLine(s.EmergencyStop)},
		{"Relationship changes", appliedLine(h.RelationshipsBehind)},
		{"Set-aside changes", setAsideLine(h.SetAsideChanges)},
	})
	if err != nil {
		return err
	}
	for _, key := range clientOrder(h.Clients) {
		c := h.Clients[key]
		heading := clientName(key) + " — add to " + c.Where + ":"
		if c.Where == "shell" {
			heading = clientName(key) + " — run in a shell:"
		}
		snippet := "  " + strings.ReplaceAll(strings.TrimRight(c.Snippet, "\n"), "\n", "\n  ")
		if err := printf(w, "\n%s\n%s\n", heading, snippet); err != nil {
			return err
		}
	}
	return nil
}

// knownClients are the MCP clients the API configures, in the order they are shown.
var knownClients = []struct{ key, name string }{
	{"cursor", "Cursor"},
	{"claude_desktop", "Claude Desktop"},
	{"vscode", "VS Code"},
	{"claude_code", "Claude Code"},
}

func clientName(key string) string {
	for _, c := range knownClients {
		if c.key == key {
			return c.name
		}
	}
	return key
}

// clientOrder lists the known clients first, then any others by key.
func clientOrder(clients map[string]sdk.ClientConfig) []string {
	var keys, others []string
	for _, c := range knownClients {
		if _, ok := clients[c.key]; ok {
			keys = append(keys, c.key)
		}
	}
	for k := range clients {
		if clientName(k) == k {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	return append(keys, others...)
}

// done prints a confirmation line (nothing with -o json: the API returned no document).
func (a *adminCall) done(format string, args ...any) error {
	if a.json {
		return nil
	}
	return printf(a.out, format, args...)
}

func rateLimitsLine(limits []sdk.RateLimit) string {
	if len(limits) == 0 {
		return "none"
	}
	parts := make([]string, len(limits))
	for i, l := range limits {
		where := ""
		if l.Server != "" {
			where = " on " + l.Server
			if l.Tool != "" {
				where += "/" + l.Tool
			}
		}
		parts[i] = fmt.Sprintf("%s %d/min%s", l.Scope, l.PerMinute, where)
	}
	return strings.Join(parts, ", ")
}

// appliedLine says whether the host's calls are refused because its relationship changes are not
// applied (as the replica that answered sees it).
func appliedLine(behind bool) string {
	if behind {
		return "NOT APPLIED — every call on the host is refused (pending_change) until the authorization backend applies them"
	}
	return "applied"
}

// setAsideLine says whether relationship changes the backend refused make the host refuse calls.
func setAsideLine(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d — every call on the host is refused until they are retried or discarded (trustgate admin outbox list)", n)
}

func emergencyStopLine(s *sdk.EmergencyStop) string {
	if s == nil {
		return "off"
	}
	line := "STOPPED since " + formatTime(s.Since)
	if s.By != "" {
		line += " by " + s.By
	}
	if s.Reason != "" {
		line += ": " + s.Reason
	}
	return line
}
