package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

func newAdminExplainCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "explain AGENT SERVER TOOL",
		Short: "Why? Whether an agent may call a tool now, and the path that decided it",
		Long: `explain asks the gateway whether AGENT (an agent id) may call TOOL of SERVER now, as the
proxy would decide its tools/call, and prints the path that decided it: the agent, its host
membership, the server, the tool and its level, the human's ceiling and the agent's grant,
each held or not, with the relationships they rest on and the authorization engine's trace
of the check (SpiceDB; the Permit backend cannot trace and says so).`,
		Args: argsNamed("AGENT", "SERVER", "TOOL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			x, err := a.client.Explain(a.ctx, host, args[0], args[1], args[2])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, x)
			}
			return writeExplanation(a, x)
		}),
	}
	addHostFlag(cmd, &host)
	return cmd
}

func writeExplanation(a *adminCall, x sdk.Explanation) error {
	if err := printf(a.out, "%s\n\n", x.Summary); err != nil {
		return err
	}
	for _, s := range x.Steps {
		mark := "ok  "
		if !s.Held {
			mark = "NO  "
		}
		if s.Decisive {
			mark = "NO ▶"
		}
		if err := printf(a.out, "%s %-16s %s\n", mark, s.Kind, s.Text); err != nil {
			return err
		}
		for _, r := range s.Relationships {
			if err := printf(a.out, "     %-16s %s\n", "", r); err != nil {
				return err
			}
		}
	}
	for _, n := range x.Notes {
		if err := printf(a.out, "\nNote: %s\n", n); err != nil {
			return err
		}
	}
	if len(x.Relationships) > 0 {
		if err := printf(a.out, "\nRelationships (at revision %s):\n", x.Revision); err != nil {
			return err
		}
		rows := make([][]string, 0, len(x.Relationships))
		for _, r := range x.Relationships {
			rows = append(rows, []string{r.Relationship, r.Meaning})
		}
		if err := writeTable(a.out, []string{"relationship", "meaning"}, rows); err != nil {
			return err
		}
	}
	if x.Trace != nil {
		if err := printf(a.out, "\nSpiceDB's trace of the check:\n"); err != nil {
			return err
		}
		if err := writeTrace(a, *x.Trace, 1); err != nil {
			return err
		}
	}
	if x.TraceNote != "" {
		return printf(a.out, "\n%s\n", x.TraceNote)
	}
	return nil
}

func writeTrace(a *adminCall, t sdk.TraceStep, depth int) error {
	cached := ""
	if t.Cached {
		cached = " (cached)"
	}
	if err := printf(a.out, "%s%s#%s (%s) → %s%s\n", strings.Repeat("  ", depth), t.Object, t.Name, t.Kind, t.Result, cached); err != nil {
		return err
	}
	for _, s := range t.Steps {
		if err := writeTrace(a, s, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func newAdminInsightsCommand(o *adminOptions) *cobra.Command {
	var host string
	var all bool
	cmd := &cobra.Command{
		Use:   "insights",
		Short: "Who may do what on a host, and over-permission: unused levels and ceilings, tools no agent can call",
		Long: `insights prints the host's over-permission — agents holding a level whose tools they have
not used in 30 days, ceilings above every level the human's agents hold, enabled tools no
agent can call — with the counts. --all also prints who may do what: each human's agents,
the servers they hold a level on and the tools that level reaches. -o json prints the API's
document (one page of humans; the findings cover the whole host).`,
		Args: argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			x, err := a.client.Insights(a.ctx, host, sdk.PageRequest{})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, x)
			}
			return writeInsights(a, x, all, host)
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "also print who may do what, for every human")
	addHostFlag(cmd, &host)
	return cmd
}

func writeInsights(a *adminCall, x sdk.Insights, all bool, host string) error {
	c := x.Counts
	err := printf(a.out, "%d humans, %d agents, %d servers, %d tools; usage from %d audit entries since %s%s.\n",
		c.Humans, c.Agents, c.Servers, c.Tools, x.AuditRead, formatTime(x.UsageSince), truncatedNote(x.AuditTruncated, x.AuditLimit))
	if err != nil {
		return err
	}
	if err := printf(a.out, "Over-permission: %d unused levels, %d unused ceilings, %d tools no agent can call.\n\n", c.UnusedLevels, c.UnusedCeilings, c.UncallableTools); err != nil {
		return err
	}
	rows := make([][]string, 0, len(x.Findings))
	for _, f := range x.Findings {
		rows = append(rows, []string{f.Kind, f.Text})
	}
	if err := writeTable(a.out, []string{"finding", "what"}, rows); err != nil {
		return err
	}
	if x.FindingsTruncated {
		if err := printf(a.out, "(the first %d findings)\n", x.FindingsLimit); err != nil {
			return err
		}
	}
	if !all {
		return nil
	}
	if err := printf(a.out, "\nWho may do what:\n"); err != nil {
		return err
	}
	var who [][]string
	for {
		for _, h := range x.Humans {
			for _, ag := range h.Agents {
				for _, s := range ag.Servers {
					who = append(who, []string{h.Email, ag.Name, s.Server, s.Effective, listOr(s.Tools, "-"), listOr(s.Used, "nothing")})
				}
			}
		}
		if x.NextCursor == "" {
			break
		}
		next, err := a.client.Insights(a.ctx, host, sdk.PageRequest{Cursor: x.NextCursor})
		if err != nil {
			return err
		}
		x = next
	}
	return writeTable(a.out, []string{"human", "agent", "server", "effective", "tools", "used in 30 days"}, who)
}

func truncatedNote(truncated bool, limit int) string {
	if !truncated {
		return ""
	}
	return fmt.Sprintf(" (the newest %d only)", limit)
}
