package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

func newAdminAuditCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("audit", "Read a host's audit log: list, export as JSON Lines, follow live",
		newAuditListCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newAuditListCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		q        sdk.AuditQuery
		limit    int
		all      bool
		follow   bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries (the latest --limit, or --all), optionally --follow new ones",
		Long: `list prints a host's audit log entries matching the filters, oldest first: the latest
--limit of them, or with --all every one (streamed, however long the log).

--follow then keeps printing new entries as they are written until interrupted (Ctrl-C).

Output: a table, -o json (a JSON array; with --follow one JSON object per line), or
-o jsonl (one JSON object per line: the export format).`,
		Args: argsNamed(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		jsonl := strings.EqualFold(strings.TrimSpace(o.output), "jsonl")
		if jsonl {
			o.output = "json"
		}
		return o.api(func(a *adminCall, _ []string) error {
			if limit < 1 || limit > sdk.MaxPageLimit {
				return fmt.Errorf("--limit %d: want 1 to %d", limit, sdk.MaxPageLimit)
			}
			if q.Decision != "" {
				d, err := oneOf("--decision", q.Decision, "allowed", "denied", "error", "admin", "result", "identity", "approval")
				if err != nil {
					return err
				}
				q.Decision = d
			}
			lineMode := jsonl || (a.json && follow)
			p := auditPrinter{out: a.out, jsonl: lineMode}
			var entries []sdk.AuditEntry
			var last int64
			emit := func(e sdk.AuditEntry) error {
				last = max(last, e.Seq)
				if a.json && !lineMode {
					entries = append(entries, e)
					return nil
				}
				return p.print(e)
			}
			if all {
				if err := a.client.ExportAudit(a.ctx, *host, q, "", emit); err != nil {
					return err
				}
			} else {
				desc := q
				desc.Descending = true
				page, err := a.client.ListAudit(a.ctx, *host, desc, sdk.PageRequest{Limit: limit})
				if err != nil {
					return err
				}
				slices.Reverse(page.Items)
				for _, e := range page.Items {
					if err := emit(e); err != nil {
						return err
					}
				}
			}
			if !follow {
				if a.json && !lineMode {
					return writeJSON(a.out, orEmptyEntries(entries))
				}
				if len(entries) == 0 && !p.headerDone && !lineMode {
					return printf(a.out, "No audit entries.\n")
				}
				return nil
			}
			// Follow: poll for entries after the last one printed.
			if last == 0 {
				// Nothing matched yet: start after the newest entry of the host.
				page, err := a.client.ListAudit(a.ctx, *host, sdk.AuditQuery{Descending: true}, sdk.PageRequest{Limit: 1})
				if err != nil {
					return err
				}
				if len(page.Items) > 0 {
					last = page.Items[0].Seq
				}
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-a.ctx.Done():
					return nil
				case <-t.C:
				}
				err := a.client.ExportAudit(a.ctx, *host, q, sdk.AuditCursor(last), emit)
				if a.ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
			}
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringVar(&q.Human, "human", "", "only entries of this human (id or email)")
	f.StringVar(&q.Agent, "agent", "", "only entries of this agent (id)")
	f.StringVar(&q.Server, "server", "", "only entries of this server")
	f.StringVar(&q.Tool, "tool", "", "only entries of this tool")
	f.StringVar(&q.Decision, "decision", "", "only entries with this decision: allowed, denied, error, admin or result")
	f.StringVar(&q.Flag, "flag", "", "only entries with this anomaly flag: new_tool, new_server, off_hours, rate_spike or denial_streak")
	f.StringVar(&q.Since, "since", "", "only entries at or after this time: RFC 3339, or a duration back from now (24h)")
	f.StringVar(&q.Until, "until", "", "only entries before this time: RFC 3339, or a duration back from now")
	f.IntVar(&limit, "limit", 50, "how many of the latest entries to list (without --all)")
	f.BoolVar(&all, "all", false, "list every matching entry, oldest first")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new entries as they are written, until interrupted")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often --follow asks for new entries")
	return cmd
}

func orEmptyEntries(es []sdk.AuditEntry) []sdk.AuditEntry {
	if es == nil {
		return []sdk.AuditEntry{}
	}
	return es
}

// auditPrinter prints entries one at a time: as JSON lines, or as table rows of fixed width
// (so rows printed later, by --follow, line up with the first ones).
type auditPrinter struct {
	out        io.Writer
	jsonl      bool
	headerDone bool
}

const auditRowFormat = "%-7s %-20s %-8s %-24s %-14s %-24s %s\n"

func (p *auditPrinter) print(e sdk.AuditEntry) error {
	if p.jsonl {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	if !p.headerDone {
		p.headerDone = true
		if err := printf(p.out, auditRowFormat, "SEQ", "TIME", "DECISION", "WHO", "SERVER", "TOOL/METHOD", "DETAIL"); err != nil {
			return err
		}
	}
	who := e.ClientName
	switch {
	case e.Decision == "admin":
		who = e.Actor
	case e.Decision == "identity":
		who = e.UserEmail
	case who == "":
		who = e.AgentID
	}
	what := e.Tool
	if what == "" {
		what = e.Method
	}
	detail := e.Reason
	switch {
	case e.Decision == "admin":
		detail = strings.TrimSpace(fmt.Sprintf("%s %s %s", e.Action, e.Object, arrow(e.OldValue, e.NewValue)))
	case e.Decision == "identity", e.Decision == "approval":
		detail = strings.TrimSpace(e.Action + " " + e.Reason)
	case e.Decision == "result":
		detail = strings.TrimSpace(fmt.Sprintf("HTTP %d in %dms %s", e.UpstreamStatus, e.LatencyMS, e.Reason))
	case e.Decision == "denied" && e.RequiredLevel != "":
		detail = fmt.Sprintf("needs %s; agent has %s (ceiling %s)", e.RequiredLevel, e.AgentLevel, e.Ceiling)
	}
	if len(e.Flags) > 0 {
		detail = strings.TrimSpace(detail + " [flags: " + strings.Join(e.Flags, ", ") + "]")
	}
	return printf(p.out, auditRowFormat, fmt.Sprint(e.Seq), e.Time.Local().Format("2006-01-02 15:04:05"), e.Decision,
		firstLine(cell(who), 24), firstLine(cell(e.Server), 14), firstLine(cell(what), 24), firstLine(cell(detail), 100))
}

func arrow(old, new string) string {
	if old == "" && new == "" {
		return ""
	}
	return cell(old) + " → " + cell(new)
}
