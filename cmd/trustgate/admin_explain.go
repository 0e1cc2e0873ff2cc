package main

import (
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
