package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

// The relationship outbox's quarantine: changes the authorization backend refused for good,
// which the relationship writer set aside so that the changes behind them are applied. Their
// hosts refuse every call (pending_change) until an operator retries or discards them. Like
// `token create --global`, these commands work on the store itself (--data-dir or --database,
// as serve), and every replica sees the result within a sync interval.

// quarantinedDoc is a quarantined change as -o json prints it.
type quarantinedDoc struct {
	ID            int64     `json:"id"`
	Host          string    `json:"host"`
	Op            string    `json:"op"`
	Relationship  string    `json:"relationship"`
	CreatedAt     time.Time `json:"created_at"`
	QuarantinedAt time.Time `json:"quarantined_at"`
	Reason        string    `json:"reason"`
}

func quarantinedDocOf(c store.QuarantinedChange) quarantinedDoc {
	return quarantinedDoc{ID: c.ID, Host: c.Host, Op: string(c.Op), Relationship: c.Relationship.String(),
		CreatedAt: c.CreatedAt, QuarantinedAt: c.QuarantinedAt, Reason: c.Reason}
}

func newAdminOutboxCommand(o *adminOptions) *cobra.Command {
	var stores storeFlags
	cmd := groupCommand("outbox", "Relationship changes the authorization backend refused for good: list, retry or discard them (on the store, like token create --global)",
		newOutboxListCommand(o, &stores), newOutboxRetryCommand(o, &stores), newOutboxDiscardCommand(o, &stores))
	stores.register(cmd.PersistentFlags())
	return cmd
}

func newOutboxListCommand(o *adminOptions, stores *storeFlags) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the relationship changes set aside, oldest first (their hosts refuse every call until resolved)",
		Args:  argsNamed(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := o.jsonOutput()
			if err != nil {
				return err
			}
			st, err := openExistingStore(cmd, *stores)
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := st.ListQuarantinedChanges(cmd.Context(), host)
			if err != nil {
				return err
			}
			docs := make([]quarantinedDoc, len(list))
			for i, c := range list {
				docs[i] = quarantinedDocOf(c)
			}
			if isJSON {
				return writeJSON(cmd.OutOrStdout(), docs)
			}
			rows := make([][]string, len(docs))
			for i, d := range docs {
				rows[i] = []string{strconv.FormatInt(d.ID, 10), d.Host, d.Op, d.Relationship, d.QuarantinedAt.Format(time.RFC3339), d.Reason}
			}
			return writeTable(cmd.OutOrStdout(), []string{"id", "host", "op", "relationship", "set aside", "reason"}, rows)
		},
	}
	cmd.Flags().StringVar(&host, "for-host", "", "only this host's changes (default: every host's)")
	return cmd
}

func newOutboxRetryCommand(o *adminOptions, stores *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Queue again what the store implies now for a set-aside change's relationship (a touch if the store derives it, else a delete)",
		Long: `retry takes the change out of the quarantine and queues, at the end of the outbox,
what the store implies for its relationship now: changes made to it since then were applied,
so the old change itself is not replayed. The gateways apply it within a sync interval; if the
authorization backend refuses it again, it is set aside again.`,
		Args: argsNamed("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return resolveQuarantined(cmd, o, stores, args[0], "relationship.retry",
				func(ctx context.Context, st store.Store, id int64) (store.QuarantinedChange, string, error) {
					c, op, err := st.RetryQuarantinedChange(ctx, id)
					return c, string(op), err
				})
		},
	}
}

func newOutboxDiscardCommand(o *adminOptions, stores *storeFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "discard ID --yes",
		Short: "Remove a set-aside change without applying it (the authorization backend may then differ from the store for its relationship)",
		Long: `discard removes the change from the quarantine and applies nothing: its host's calls
are decided by the authorization backend again, which does not hold this change. Do it only
once you know the change does not matter (the backend does not accept it, and the store's
current state is applied otherwise), or restart the gateways: the start-up reconciliation
writes every relationship the store implies. --yes acknowledges this.`,
		Args: argsNamed("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("discarding leaves the authorization backend without this change: acknowledge with --yes (or use retry)")
			}
			return resolveQuarantined(cmd, o, stores, args[0], "relationship.discard",
				func(ctx context.Context, st store.Store, id int64) (store.QuarantinedChange, string, error) {
					c, err := st.DiscardQuarantinedChange(ctx, id)
					return c, "", err
				})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "acknowledge that the change is not applied")
	return cmd
}

// resolveQuarantined runs do on the change of id, writes its audit entry (actor cli) and
// prints what was done.
func resolveQuarantined(cmd *cobra.Command, o *adminOptions, stores *storeFlags, arg, action string,
	do func(context.Context, store.Store, int64) (store.QuarantinedChange, string, error)) error {
	isJSON, err := o.jsonOutput()
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("ID %q: want the id `trustgate admin outbox list` shows", arg)
	}
	ctx := cmd.Context()
	st, err := openExistingStore(cmd, *stores)
	if err != nil {
		return err
	}
	defer st.Close()
	c, queued, err := do(ctx, st, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no relationship change %d is set aside (see trustgate admin outbox list)", id)
	}
	if err != nil {
		return err
	}
	log := audit.NewLog(st, audit.Options{})
	entry := audit.Entry{Host: c.Host, Time: time.Now(), Decision: audit.Admin, Actor: "cli", Action: action,
		Object: c.Relationship.Key(), OldValue: string(c.Op) + " (set aside: " + c.Reason + ")", NewValue: queued}
	if err := log.Append(ctx, entry); err != nil {
		return fmt.Errorf("the change was resolved, but its audit entry was not written: %w", err)
	}
	if err := log.Close(ctx); err != nil {
		return fmt.Errorf("the change was resolved, but its audit entry was not written: %w", err)
	}
	if isJSON {
		return writeJSON(cmd.OutOrStdout(), struct {
			quarantinedDoc
			Queued string `json:"queued,omitempty"`
		}{quarantinedDocOf(c), queued})
	}
	if queued != "" {
		return printf(cmd.OutOrStdout(), "queued %s %s (what the store implies now) for host %s\n", queued, c.Relationship.Key(), c.Host)
	}
	return printf(cmd.OutOrStdout(), "discarded change %d (%s %s) of host %s\n", c.ID, c.Op, c.Relationship.Key(), c.Host)
}
