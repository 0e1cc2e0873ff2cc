package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/audit"
)

func newAuditCommand() *cobra.Command {
	return groupCommand("audit", "Check the audit log (directly in the store)", newAuditVerifyCommand())
}

func newAuditVerifyCommand() *cobra.Command {
	var (
		stores storeFlags
		host   string
	)
	cmd := &cobra.Command{
		Use:   "verify [--host HOST]",
		Short: "Walk the audit log's hash chain and name the first broken entry",
		Long: `verify reads every audit entry of a host (or of every host, deleted ones included),
recomputes each entry's hash from its content and the previous entry's hash, and checks
that the sequence numbers have no gap and that the log still ends at the last entry written.

It exits 0 when every chain is intact. Otherwise it names, per host, the first broken
entry: an edited row (its hash no longer matches), a deleted row (a gap, or a prev_hash that
matches nothing), or rows cut from the end; and exits 1.

It reads the store directly, so run it where the gateway's database is reachable, with the
--data-dir or --database that serve uses. It does not need the gateway to be running.`,
		Args: argsNamed(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openExistingStore(cmd, stores)
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			heads, err := st.AuditHeads(ctx)
			if err != nil {
				return err
			}
			if host != "" {
				var only []audit.Head
				for _, h := range heads {
					if h.Host == host {
						only = append(only, h)
					}
				}
				if len(only) == 0 {
					// No head: there should be no entries either; Verify checks that.
					only = []audit.Head{{Host: host}}
				}
				heads = only
			}
			out := cmd.OutOrStdout()
			var broken []string
			for _, h := range heads {
				sum, err := audit.Verify(ctx, st, h.Host, &h)
				var be *audit.BrokenError
				switch {
				case errors.As(err, &be):
					broken = append(broken, be.Error())
					if err := printf(out, "%s: BROKEN at entry %d: %s\n", h.Host, be.Seq, be.Reason); err != nil {
						return err
					}
				case err != nil:
					return err
				default:
					if err := printf(out, "%s: %d entries, chain intact (last hash %s)\n", h.Host, sum.Entries, shortHash(sum.LastHash)); err != nil {
						return err
					}
				}
			}
			if len(heads) == 0 {
				if err := printf(out, "No audit entries.\n"); err != nil {
					return err
				}
			}
			if len(broken) > 0 {
				return fmt.Errorf("the audit log is not intact: %s", broken[0])
			}
			return nil
		},
	}
	f := cmd.Flags()
	stores.register(f)
	f.StringVar(&host, "host", "", "verify only this host's log (default: every host's)")
	return cmd
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	if h == "" {
		return "-"
	}
	return h
}
