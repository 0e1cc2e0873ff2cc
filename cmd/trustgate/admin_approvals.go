package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// The host's approval policy and the calls it holds, from the command line.

func newHostApprovalsCommand(o *adminOptions) *cobra.Command {
	return groupCommand("approvals", "Manage the calls a person must approve: the policy's rules, the held calls, the standing approvals",
		newApprovalRulesCommand(o), newApprovalRuleAddCommand(o), newApprovalRuleRemoveCommand(o),
		newHeldListCommand(o), newHeldDecideCommand(o, true), newHeldDecideCommand(o, false),
		newStandingListCommand(o), newStandingRevokeCommand(o))
}

func newApprovalRulesCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rules HOST",
		Short: "List the host's approval rules (the first that matches a call applies)",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			return writeApprovalRules(a, h.Settings.ApprovalRules)
		}),
	}
}

func writeApprovalRules(a *adminCall, rules []sdk.ApprovalRule) error {
	if a.json {
		return writeJSON(a.out, rules)
	}
	rows := make([][]string, 0, len(rules))
	for i, r := range rules {
		approvers := "the agent's human"
		if len(r.Approvers) > 0 {
			approvers = strings.Join(r.Approvers, ", ")
		}
		approval := "once"
		if r.StandingHours > 0 {
			approval = fmt.Sprintf("%d h", r.StandingHours)
		}
		timeout := 120
		if r.TimeoutSeconds > 0 {
			timeout = r.TimeoutSeconds
		}
		level := orDash(r.Level)
		if r.Level != "" && r.Level != "high" {
			level += "+"
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), level, orDash(r.Server), orDash(r.Tool), orDash(r.AgentType), approvers, approval, (time.Duration(timeout) * time.Second).String()})
	}
	return writeTable(a.out, []string{"#", "level", "server", "tool", "agent type", "approvers", "approval", "timeout"}, rows)
}

func newApprovalRuleAddCommand(o *adminOptions) *cobra.Command {
	var r sdk.ApprovalRule
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "add HOST [--level L] [--server S [--tool T]] [--agent-type T]",
		Short: "Add an approval rule: the calls it matches wait for a person's approval",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if r.Level == "" && r.Server == "" && r.Tool == "" && r.AgentType == "" {
				return fmt.Errorf("name the calls the rule holds: --level, --server, --tool or --agent-type")
			}
			if r.Tool != "" && r.Server == "" {
				return fmt.Errorf("--tool %s: name its server with --server", r.Tool)
			}
			if timeout != 0 {
				if timeout%time.Second != 0 {
					return fmt.Errorf("--timeout %s: want whole seconds", timeout)
				}
				r.TimeoutSeconds = int(timeout / time.Second)
			}
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			rules := append(h.Settings.ApprovalRules, r)
			return updateApprovalRules(a, args[0], rules)
		}),
	}
	cmd.Flags().StringVar(&r.Level, "level", "", "calls of tools at this level or above: low, medium or high")
	cmd.Flags().StringVar(&r.Server, "server", "", "calls to this server")
	cmd.Flags().StringVar(&r.Tool, "tool", "", "calls of this tool (with --server)")
	cmd.Flags().StringVar(&r.AgentType, "agent-type", "", "calls by agents of this type: chat, proactive or ambient")
	cmd.Flags().StringSliceVar(&r.Approvers, "approver", nil, "email of a person who may approve (repeat; default: the human who owns the agent)")
	cmd.Flags().IntVar(&r.StandingHours, "standing-hours", 0, "an approval also lets the agent's calls of that tool through for this many hours (0: approve once)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "how long a call waits before it is denied (5s to 15m; default 2m)")
	return cmd
}

func newApprovalRuleRemoveCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove HOST N",
		Short: "Remove the approval rule numbered N in 'approvals rules'",
		Args:  argsNamed("HOST", "N"),
		RunE: o.api(func(a *adminCall, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("rule number %q: want the rule's number in 'trustgate admin host approvals rules %s'", args[1], args[0])
			}
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			rules := h.Settings.ApprovalRules
			if n < 1 || n > len(rules) {
				return fmt.Errorf("host %s has %d approval rules: no rule %d", args[0], len(rules), n)
			}
			rules = append(append([]sdk.ApprovalRule{}, rules[:n-1]...), rules[n:]...)
			return updateApprovalRules(a, args[0], rules)
		}),
	}
}

func updateApprovalRules(a *adminCall, host string, rules []sdk.ApprovalRule) error {
	if rules == nil {
		rules = []sdk.ApprovalRule{}
	}
	h, err := a.client.UpdateHost(a.ctx, host, sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{ApprovalRules: &rules}})
	if err != nil {
		return err
	}
	return writeApprovalRules(a, h.Settings.ApprovalRules)
}

func newHeldListCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list HOST",
		Short: "List the calls waiting for a person's approval",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			var calls []sdk.HeldCall
			for p := (sdk.PageRequest{}); ; {
				page, err := a.client.ListHeldCalls(a.ctx, args[0], p)
				if err != nil {
					return err
				}
				calls = append(calls, page.Items...)
				if page.NextCursor == "" {
					break
				}
				p.Cursor = page.NextCursor
			}
			if a.json {
				return writeJSON(a.out, calls)
			}
			rows := make([][]string, 0, len(calls))
			for _, c := range calls {
				agent := c.AgentName
				if agent == "" {
					agent = c.Agent
				}
				rows = append(rows, []string{c.ID, agent, c.Server + "/" + c.Tool, firstLine(string(c.Arguments), 60),
					strings.Join(c.Approvers, ", "), c.ExpiresAt.Local().Format("15:04:05")})
			}
			return writeTable(a.out, []string{"id", "agent", "tool", "arguments", "approvers", "waits until"}, rows)
		}),
	}
}

func newHeldDecideCommand(o *adminOptions, approve bool) *cobra.Command {
	use, short := "deny HOST ID", "Deny a held call: the agent gets the error"
	if approve {
		use, short = "approve HOST ID", "Approve a held call: it is forwarded now"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  argsNamed("HOST", "ID"),
		RunE: o.api(func(a *adminCall, args []string) error {
			decide := a.client.DenyHeldCall
			if approve {
				decide = a.client.ApproveHeldCall
			}
			c, err := decide(a.ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, c)
			}
			return a.done("Held call %s (%s on %s): %s.\n", c.ID, c.Tool, c.Server, c.Status)
		}),
	}
}

func newStandingListCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "standing HOST",
		Short: "List the approvals that let an agent's calls of a tool through for some hours",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			page, err := a.client.ListStandingApprovals(a.ctx, args[0], sdk.PageRequest{Limit: 500})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, page.Items)
			}
			rows := make([][]string, 0, len(page.Items))
			for _, s := range page.Items {
				rows = append(rows, []string{s.Agent, s.Server, s.Tool, s.ApprovedBy, s.ExpiresAt.Local().Format("2006-01-02 15:04")})
			}
			return writeTable(a.out, []string{"agent", "server", "tool", "approved by", "until"}, rows)
		}),
	}
}

func newStandingRevokeCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke HOST AGENT SERVER TOOL",
		Short: "Revoke a standing approval: the agent's next call of the tool waits for approval again",
		Args:  argsNamed("HOST", "AGENT", "SERVER", "TOOL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.RevokeStandingApproval(a.ctx, args[0], args[1], args[2], args[3]); err != nil {
				return err
			}
			return a.done("Revoked: %s's calls of %s on %s wait for approval again.\n", args[1], args[3], args[2])
		}),
	}
}
