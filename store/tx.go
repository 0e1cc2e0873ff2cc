package store

import (
	"context"
	"errors"
	"fmt"
)

// A change of the catalog (a server with its tools, a sync of a server's tools, a server a
// human connects with their grant) is several of the store's writes that commit together:
// ReadWriteTx runs them in one transaction.

// Tx is one read-write transaction on the control plane's servers, tools and grants. Its writes
// check their input, append their relationship changes to the outbox and return the errors
// that the Store methods of the same names return; everything commits together or not at all.
// Reads see the transaction's own writes.
type Tx interface {
	GetHost(ctx context.Context, key string) (Host, error)
	GetServer(ctx context.Context, host, key string) (Server, error)
	ListServers(ctx context.Context, host string) ([]Server, error)
	GetTool(ctx context.Context, host, server, name string) (Tool, error)
	ListTools(ctx context.Context, host, server string) ([]Tool, error)
	GetGrant(ctx context.Context, host, server, userID string) (Grant, error)

	CreateServer(ctx context.Context, s Server) (Server, error)
	PutTool(ctx context.Context, t Tool) (Tool, error)
	AddTool(ctx context.Context, t Tool) (added bool, err error)
	FlagTool(ctx context.Context, t Tool, approvedHash string) (flagged bool, err error)
	DeleteTool(ctx context.Context, host, server, name string) error
	SetGrant(ctx context.Context, g Grant) (Grant, error)
}

// Transactor runs read-write transactions on the control plane.
type Transactor interface {
	// ReadWriteTx runs fn in one serializable transaction and commits it when fn returns nil;
	// when fn returns an error nothing of it is kept (no row, no outbox entry, no new
	// generation) and ReadWriteTx returns that error. fn may run more than once (the engine
	// retries a transaction that lost a conflict), so it must not act outside tx (send
	// messages, append audit entries) before ReadWriteTx returned: collect, and act after.
	// The control-plane generation grows with the commit when fn wrote anything.
	ReadWriteTx(ctx context.Context, fn func(tx Tx) error) error
}

func (s *sqlStore) ReadWriteTx(ctx context.Context, fn func(tx Tx) error) error {
	return s.db.writeTx(ctx, func(q querier) error {
		tx := &sqlTx{q: q}
		if err := fn(tx); err != nil {
			return err
		}
		if !tx.wrote {
			return nil
		}
		return advanceGeneration(ctx, q)
	})
}

// sqlTx is one attempt of a ReadWriteTx.
type sqlTx struct {
	q     querier
	wrote bool
}

var _ Tx = (*sqlTx)(nil)

func (t *sqlTx) GetHost(ctx context.Context, key string) (Host, error) { return getHost(ctx, t.q, key) }

func (t *sqlTx) GetServer(ctx context.Context, host, key string) (Server, error) {
	return getServer(ctx, t.q, host, key)
}

func (t *sqlTx) ListServers(ctx context.Context, host string) ([]Server, error) {
	out, err := listServers(ctx, t.q, host)
	if err != nil {
		return nil, fmt.Errorf("list servers of %s: %w", host, err)
	}
	return out, nil
}

func (t *sqlTx) GetTool(ctx context.Context, host, server, name string) (Tool, error) {
	return getTool(ctx, t.q, host, server, name)
}

func (t *sqlTx) ListTools(ctx context.Context, host, server string) ([]Tool, error) {
	out, err := listTools(ctx, t.q, host, server)
	if err != nil {
		return nil, fmt.Errorf("list tools of %s/%s: %w", host, server, err)
	}
	return out, nil
}

func (t *sqlTx) GetGrant(ctx context.Context, host, server, userID string) (Grant, error) {
	return getGrant(ctx, t.q, host, server, userID)
}

func (t *sqlTx) CreateServer(ctx context.Context, sv Server) (Server, error) {
	if err := prepareNewServer(&sv); err != nil {
		return Server{}, err
	}
	if err := insertServer(ctx, t.q, sv); err != nil {
		return Server{}, fmt.Errorf("create server %s/%s: %w", sv.Host, sv.Key, err)
	}
	t.wrote = true
	return sv, nil
}

func (t *sqlTx) PutTool(ctx context.Context, tool Tool) (Tool, error) {
	if err := preparePutTool(&tool); err != nil {
		return Tool{}, err
	}
	if err := putTool(ctx, t.q, tool); err != nil {
		return Tool{}, fmt.Errorf("put tool %s/%s/%s: %w", tool.Host, tool.Server, tool.Name, err)
	}
	t.wrote = true
	return tool, nil
}

func (t *sqlTx) AddTool(ctx context.Context, tool Tool) (bool, error) {
	if err := prepareAddTool(&tool); err != nil {
		return false, err
	}
	// The insert does nothing when the name is taken: nothing to undo, the transaction goes on.
	err := addTool(ctx, t.q, tool)
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add tool %s/%s/%s: %w", tool.Host, tool.Server, tool.Name, err)
	}
	t.wrote = true
	return true, nil
}

func (t *sqlTx) FlagTool(ctx context.Context, tool Tool, approvedHash string) (bool, error) {
	if err := prepareFlagTool(&tool, approvedHash); err != nil {
		return false, err
	}
	// When the condition no longer holds the update matched nothing: nothing to undo.
	err := flagTool(ctx, t.q, tool)
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flag tool %s/%s/%s: %w", tool.Host, tool.Server, tool.Name, err)
	}
	t.wrote = true
	return true, nil
}

func (t *sqlTx) DeleteTool(ctx context.Context, host, server, name string) error {
	if err := deleteTool(ctx, t.q, host, server, name); err != nil {
		return fmt.Errorf("delete tool %s/%s/%s: %w", host, server, name, err)
	}
	t.wrote = true
	return nil
}

func (t *sqlTx) SetGrant(ctx context.Context, g Grant) (Grant, error) {
	if err := prepareGrant(&g); err != nil {
		return Grant{}, err
	}
	if err := setGrant(ctx, t.q, g); err != nil {
		return Grant{}, fmt.Errorf("set grant %s/%s/%s: %w", g.Host, g.Server, g.UserID, err)
	}
	t.wrote = true
	return g, nil
}
