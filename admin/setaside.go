package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/trustgate/trustgate/store"
)

// Set-aside changes: relationship changes the authorization backend refused for good, which the
// relationship writer took out of the outbox so that the changes behind them are applied
// (store.SetAside). A host with one refuses every call (reason pending_change) until it is
// retried or discarded, here or with `trustgate admin outbox` — with the same store functions,
// and audited alike (relationship.retry, relationship.discard), the actor being the API's caller.

func setAsideDoc(c store.QuarantinedChange) SetAsideChange {
	return SetAsideChange{ID: c.ID, Op: string(c.Op), Relationship: c.Relationship.String(),
		CreatedAt: c.CreatedAt, SetAsideAt: c.QuarantinedAt, Reason: c.Reason}
}

// countSetAside fills in each host's count of set-aside changes, from one read of the
// quarantine (it holds a handful of changes, if any), and whether its calls are refused
// because its relationship changes are not applied (Config.Behind).
func (a *API) countSetAside(ctx context.Context, docs []Host) error {
	host := ""
	if len(docs) == 1 {
		host = docs[0].Key
	}
	list, err := a.cfg.Store.ListQuarantinedChanges(ctx, host)
	if err != nil {
		return err
	}
	byHost := map[string]int{}
	for _, c := range list {
		byHost[c.Host]++
	}
	for i := range docs {
		docs[i].SetAsideChanges = byHost[docs[i].Key]
		docs[i].RelationshipsBehind = a.cfg.Behind != nil && a.cfg.Behind(docs[i].Key)
	}
	return nil
}

// hostDocCounted is hostDoc with the host's count of set-aside changes.
func (a *API) hostDocCounted(ctx context.Context, h store.Host, withClients bool) (Host, error) {
	docs := []Host{a.hostDoc(h, withClients)}
	err := a.countSetAside(ctx, docs)
	return docs[0], err
}

// changedHostDoc is hostDocCounted after a change of the host: the change is committed (and is
// audited), so a failure to count is logged rather than answered.
func (a *API) changedHostDoc(ctx context.Context, h store.Host, withClients bool) Host {
	doc, err := a.hostDocCounted(ctx, h, withClients)
	if err != nil {
		a.log.Warn("count the host's set-aside relationship changes", "host", h.Key, "err", err)
	}
	return doc
}

func (a *API) listSetAsideChanges(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	list, err := a.cfg.Store.ListQuarantinedChanges(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	docs := make([]SetAsideChange, len(list))
	for i, c := range list {
		docs[i] = setAsideDoc(c)
	}
	// Ids only grow: zero-padded, their text sorts as the numbers do (oldest first).
	page, err := paginate(r, docs, func(c SetAsideChange) string { return fmt.Sprintf("%019d", c.ID) })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// setAsideOf finds the set-aside change of the path's id on the path's host, with every change
// set aside on the host: an id of another host's change is not found, as an id that does not
// exist.
func (a *API) setAsideOf(r *http.Request) (store.QuarantinedChange, []store.QuarantinedChange, error) {
	host, raw := r.PathValue("host"), r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return store.QuarantinedChange{}, nil, problemf(http.StatusBadRequest, "set-aside change id %q is not a positive number: use an id that GET %s/%s/set-aside-changes lists", truncate(raw, 64), pHosts, host)
	}
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return store.QuarantinedChange{}, nil, hostNotFound(err, host)
	}
	list, err := a.cfg.Store.ListQuarantinedChanges(r.Context(), host)
	if err != nil {
		return store.QuarantinedChange{}, nil, err
	}
	for _, c := range list {
		if c.ID == id {
			return c, list, nil
		}
	}
	return store.QuarantinedChange{}, nil, setAsideNotFound(host, id)
}

func setAsideNotFound(host string, id int64) error {
	return problemf(http.StatusNotFound, "no relationship change %d is set aside on host %s (it may have been retried or discarded already)", id, host)
}

// noteSetAside notes the audit entry of resolving c, as the CLI writes it.
func noteSetAside(ch *change, c store.QuarantinedChange, queued string) {
	ch.object = c.Relationship.Key()
	ch.old = string(c.Op) + " (set aside: " + c.Reason + ")"
	ch.new = queued
}

// retrySetAsideChange takes the change out of the set-aside list and queues what the store
// implies for its relationship now (store.RetryQuarantinedChange), then applies it: the answer
// says whether the authorization backend refused it again.
func (a *API) retrySetAsideChange(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	q, before, err := a.setAsideOf(r)
	if err != nil {
		return 0, nil, err
	}
	id := q.ID
	q, op, err := a.cfg.Store.RetryQuarantinedChange(ctx, id)
	if errors.Is(err, store.ErrNotFound) { // resolved meanwhile
		return 0, nil, setAsideNotFound(r.PathValue("host"), id)
	}
	if err != nil {
		return 0, nil, err
	}
	noteSetAside(&c.change, q, string(op))
	out := SetAsideRetry{Change: setAsideDoc(q), Queued: string(op)}
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	// Refused again: the queued change is set aside with an id of its own, which was not set
	// aside before the retry.
	after, err := a.cfg.Store.ListQuarantinedChanges(ctx, q.Host)
	if err != nil {
		return 0, nil, err
	}
	for _, n := range after {
		if n.Relationship.Key() == q.Relationship.Key() && !slices.ContainsFunc(before, func(b store.QuarantinedChange) bool { return b.ID == n.ID }) {
			doc := setAsideDoc(n)
			out.SetAsideAgain = &doc
		}
	}
	return http.StatusOK, out, nil
}

// discardSetAsideChange removes the change without applying anything
// (store.DiscardQuarantinedChange); the sync that follows records at once which hosts still
// have changes pending, so a host with nothing else set aside has its calls decided again.
func (a *API) discardSetAsideChange(r *http.Request, c *caller) (int, any, error) {
	q, _, err := a.setAsideOf(r)
	if err != nil {
		return 0, nil, err
	}
	id := q.ID
	q, err = a.cfg.Store.DiscardQuarantinedChange(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) { // resolved meanwhile
		return 0, nil, setAsideNotFound(r.PathValue("host"), id)
	}
	if err != nil {
		return 0, nil, err
	}
	noteSetAside(&c.change, q, "")
	return http.StatusNoContent, nil, a.sync(r.Context())
}
