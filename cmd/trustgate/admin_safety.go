package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// The host's safety policies from the command line: the emergency stop and the rate limits
// (argument validation is a host update flag).

func newHostStopCommand(o *adminOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "stop HOST",
		Short: "Emergency stop: refuse every call on the host, on every replica, until 'host resume'",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.StopHost(a.ctx, args[0], reason)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, h)
			}
			return a.done("Stopped host %s: every call is refused until 'trustgate admin host resume %s'.\n", h.Key, h.Key)
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown to agents and in the audit log)")
	return cmd
}

func newHostResumeCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "resume HOST",
		Short: "Lift the host's emergency stop",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.LiftHostStop(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, h)
			}
			return a.done("Host %s runs again.\n", h.Key)
		}),
	}
}

func newHostLimitCommand(o *adminOptions) *cobra.Command {
	return groupCommand("limit", "Manage a host's rate limits on tools/call (token buckets)",
		newHostLimitListCommand(o), newHostLimitSetCommand(o), newHostLimitRemoveCommand(o))
}

// limitFlags name one rule: its scope, server and tool.
type limitFlags struct {
	scope, server, tool string
	perMinute, burst    int
}

func (l *limitFlags) register(cmd *cobra.Command, withRate bool) {
	cmd.Flags().StringVar(&l.scope, "scope", "", "whose calls share a bucket: agent, agent_tool, human or host")
	cmd.Flags().StringVar(&l.server, "server", "", "only calls to this server")
	cmd.Flags().StringVar(&l.tool, "tool", "", "only calls of this tool (with --server)")
	if withRate {
		cmd.Flags().IntVar(&l.perMinute, "per-minute", 0, "tokens added per minute")
		cmd.Flags().IntVar(&l.burst, "burst", 0, "most tokens held at once (default: --per-minute)")
	}
}

func (l *limitFlags) rule() (sdk.RateLimit, error) {
	scope, err := oneOf("--scope", l.scope, "agent", "agent_tool", "human", "host")
	if err != nil {
		return sdk.RateLimit{}, err
	}
	if l.tool != "" && l.server == "" {
		return sdk.RateLimit{}, fmt.Errorf("--tool %s: name its server with --server", l.tool)
	}
	return sdk.RateLimit{Scope: scope, Server: l.server, Tool: l.tool, PerMinute: l.perMinute, Burst: l.burst}, nil
}

func sameRule(a, b sdk.RateLimit) bool {
	return a.Scope == b.Scope && a.Server == b.Server && a.Tool == b.Tool
}

func newHostLimitListCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list HOST",
		Short: "List the host's rate limits",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, h.Settings.RateLimits)
			}
			return writeRateLimits(a, h.Settings.RateLimits)
		}),
	}
}

func writeRateLimits(a *adminCall, limits []sdk.RateLimit) error {
	rows := make([][]string, 0, len(limits))
	for _, l := range limits {
		burst := l.Burst
		if burst == 0 {
			burst = l.PerMinute
		}
		rows = append(rows, []string{l.Scope, orDash(l.Server), orDash(l.Tool), strconv.Itoa(l.PerMinute), strconv.Itoa(burst)})
	}
	return writeTable(a.out, []string{"scope", "server", "tool", "per minute", "burst"}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newHostLimitSetCommand(o *adminOptions) *cobra.Command {
	var l limitFlags
	cmd := &cobra.Command{
		Use:   "set HOST --scope SCOPE --per-minute N",
		Short: "Add or change a rate limit (per host, or for one server or tool)",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			rule, err := l.rule()
			if err != nil {
				return err
			}
			limits, _, err := limitsWithout(a, args[0], rule)
			if err != nil {
				return err
			}
			return updateLimits(a, args[0], append(limits, rule))
		}),
	}
	l.register(cmd, true)
	return cmd
}

func newHostLimitRemoveCommand(o *adminOptions) *cobra.Command {
	var l limitFlags
	cmd := &cobra.Command{
		Use:   "remove HOST --scope SCOPE",
		Short: "Remove a rate limit",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			rule, err := l.rule()
			if err != nil {
				return err
			}
			limits, found, err := limitsWithout(a, args[0], rule)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("host %s has no rate limit of scope %s on %s/%s", args[0], rule.Scope, orDash(rule.Server), orDash(rule.Tool))
			}
			return updateLimits(a, args[0], limits)
		}),
	}
	l.register(cmd, false)
	return cmd
}

// limitsWithout reads the host's rate limits and returns those other than rule (same scope,
// server and tool), and whether rule was among them.
func limitsWithout(a *adminCall, host string, rule sdk.RateLimit) ([]sdk.RateLimit, bool, error) {
	h, err := a.client.GetHost(a.ctx, host)
	if err != nil {
		return nil, false, err
	}
	limits, found := []sdk.RateLimit{}, false
	for _, x := range h.Settings.RateLimits {
		if sameRule(x, rule) {
			found = true
			continue
		}
		limits = append(limits, x)
	}
	return limits, found, nil
}

func updateLimits(a *adminCall, host string, limits []sdk.RateLimit) error {
	h, err := a.client.UpdateHost(a.ctx, host, sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{RateLimits: &limits}})
	if err != nil {
		return err
	}
	if a.json {
		return writeJSON(a.out, h.Settings.RateLimits)
	}
	return writeRateLimits(a, h.Settings.RateLimits)
}
