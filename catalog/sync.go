package catalog

import (
	"context"
	"errors"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/store"
)

// SyncResult is what a sync changed.
type SyncResult struct {
	Added     []string // new tools recorded (disabled until reviewed unless the host auto-enables them)
	Changed   []string // tools flagged: their definition changed since it was approved
	Removed   []string // tools gone upstream, deleted
	Unchanged int
	Tools     []store.Tool // the server's tools after the sync
	// ClientDependentTools are the tools the server lists only to clients declaring the roots,
	// sampling or elicitation capability (SyncServer only).
	ClientDependentTools []string
}

// SyncServer discovers the tools of a stored server (DiscoverServer) and syncs them (Sync).
// Discovery errors match the sentinels of package discovery; nothing is written then.
func (c *Catalog) SyncServer(ctx context.Context, s store.Server, src Source) (SyncResult, error) {
	found, err := c.DiscoverServer(ctx, s)
	if err != nil {
		return SyncResult{}, err
	}
	res, err := c.Sync(ctx, s.Host, s.Key, found.Tools, src)
	if err != nil {
		return SyncResult{}, err
	}
	res.ClientDependentTools = found.ClientDependentTools
	return res, nil
}

// Sync brings the stored tools of a server in line with found, what the upstream lists now, in
// one transaction: new tools are added (disabled until reviewed unless the host auto-enables
// them), tools whose definition changed since approval are disabled and flagged (ReviewTool
// decides, as for the proxy's tools/list check), tools gone upstream are removed. The added and
// flagged tools are audited and counted once the transaction committed.
func (c *Catalog) Sync(ctx context.Context, host, server string, found []discovery.Tool, src Source) (SyncResult, error) {
	var res SyncResult
	var written []Review
	err := c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		res = SyncResult{Added: []string{}, Changed: []string{}, Removed: []string{}}
		written = written[:0]
		h, err := tx.GetHost(ctx, host)
		if err != nil {
			return err
		}
		existing, err := tx.ListTools(ctx, host, server)
		if err != nil {
			return err
		}
		byName := make(map[string]store.Tool, len(existing))
		for _, t := range existing {
			byName[t.Name] = t
		}
		for _, ft := range found {
			old, ok := byName[ft.Name]
			delete(byName, ft.Name)
			review := ReviewTool(host, server, old, ok, ft, h.Settings.AutoEnableNewTools)
			wrote, err := applyReview(ctx, tx, review)
			if err != nil {
				return err
			}
			switch {
			case review.Outcome == Unchanged:
				res.Unchanged++
			case review.Outcome == Added && wrote:
				res.Added = append(res.Added, ft.Name)
				written = append(written, review)
			case review.Outcome == Changed && wrote:
				res.Changed = append(res.Changed, ft.Name)
				written = append(written, review)
			}
		}
		for name := range byName {
			if err := tx.DeleteTool(ctx, host, server, name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			res.Removed = append(res.Removed, name)
		}
		res.Tools, err = tx.ListTools(ctx, host, server)
		return err
	})
	if err != nil {
		return SyncResult{}, err
	}
	for _, r := range written {
		c.recordReview(ctx, r, src)
	}
	return res, nil
}
