package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

const grantColumns = "host_key, server_key, user_id, ceiling, updated_at"

func scanGrant(r row) (Grant, error) {
	var g Grant
	var level string
	var updated int64
	if err := r.Scan(&g.Host, &g.Server, &g.UserID, &level, &updated); err != nil {
		return Grant{}, err
	}
	l, err := schema.ParseLevel(level)
	if err != nil {
		return Grant{}, fmt.Errorf("grant %s/%s/%s: %w", g.Host, g.Server, g.UserID, err)
	}
	g.Ceiling = l
	g.UpdatedAt = fromMillis(updated)
	return g, nil
}

func grantTuple(g Grant) schema.Relationship {
	return schema.Ceiling(g.Host, g.Server, g.UserID, g.Ceiling)
}

func (s *sqlStore) SetGrant(ctx context.Context, g Grant) (Grant, error) {
	if err := prepareGrant(&g); err != nil {
		return Grant{}, err
	}
	err := s.controlTx(ctx, func(q querier) error { return setGrant(ctx, q, g) })
	if err != nil {
		return Grant{}, fmt.Errorf("set grant %s/%s/%s: %w", g.Host, g.Server, g.UserID, err)
	}
	return g, nil
}

// prepareGrant checks a grant to set and stamps its time.
func prepareGrant(g *Grant) error {
	if err := validLevel("ceiling", g.Ceiling); err != nil {
		return fmt.Errorf("set grant %s/%s/%s: %w", g.Host, g.Server, g.UserID, err)
	}
	g.UpdatedAt = now()
	return nil
}

// setGrant creates or changes a prepared grant, with its tuple changes.
func setGrant(ctx context.Context, q querier, g Grant) error {
	if err := requireServer(ctx, q, g.Host, g.Server); err != nil {
		return err
	}
	if err := requireUser(ctx, q, g.Host, g.UserID); err != nil {
		return err
	}
	old, err := scanGrant(q.queryRow(ctx, "SELECT "+grantColumns+" FROM grants WHERE host_key = ? AND server_key = ? AND user_id = ?",
		g.Host, g.Server, g.UserID))
	found := err == nil
	if err != nil && !errors.Is(err, errNoRows) {
		return err
	}
	if found {
		_, err = q.exec(ctx, "UPDATE grants SET ceiling = ?, updated_at = ? WHERE host_key = ? AND server_key = ? AND user_id = ?",
			g.Ceiling.String(), toMillis(g.UpdatedAt), g.Host, g.Server, g.UserID)
	} else {
		_, err = q.exec(ctx, "INSERT INTO grants ("+grantColumns+") VALUES (?, ?, ?, ?, ?)",
			g.Host, g.Server, g.UserID, g.Ceiling.String(), toMillis(g.UpdatedAt))
	}
	if err != nil {
		return writeErr(err)
	}
	var cs changeSet
	if found && old.Ceiling != g.Ceiling {
		cs.delete(grantTuple(old))
	}
	cs.touch(grantTuple(g))
	return cs.write(ctx, q, g.UpdatedAt)
}

func (s *sqlStore) GetGrant(ctx context.Context, host, server, userID string) (Grant, error) {
	return getGrant(ctx, s.db.q(), host, server, userID)
}

func getGrant(ctx context.Context, q querier, host, server, userID string) (Grant, error) {
	g, err := scanGrant(q.queryRow(ctx, "SELECT "+grantColumns+" FROM grants WHERE host_key = ? AND server_key = ? AND user_id = ?",
		host, server, userID))
	if errors.Is(err, errNoRows) {
		return Grant{}, fmt.Errorf("get grant %s/%s/%s: %w", host, server, userID, ErrNotFound)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("get grant %s/%s/%s: %w", host, server, userID, err)
	}
	return g, nil
}

func (s *sqlStore) ListGrants(ctx context.Context, host, userID string) ([]Grant, error) {
	var out []Grant
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		if userID == "" {
			out, err = selectGrants(ctx, q, "host_key = ? ORDER BY user_id, server_key", host)
			return err
		}
		if err := requireUser(ctx, q, host, userID); err != nil {
			return err
		}
		out, err = selectGrants(ctx, q, "host_key = ? AND user_id = ? ORDER BY server_key", host, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", host, err)
	}
	return out, nil
}

func selectGrants(ctx context.Context, q querier, where string, args ...any) ([]Grant, error) {
	rs, err := q.query(ctx, "SELECT "+grantColumns+" FROM grants WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Grant{}
	for rs.Next() {
		g, err := scanGrant(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rs.Err()
}

// DeleteGrant removes the ceiling and, in the same transaction, the consents the human gave
// their agents on the server: revoking access ends it, so a later grant gives the agents
// nothing until the human consents again.
func (s *sqlStore) DeleteGrant(ctx context.Context, host, server, userID string) error {
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
		where := "host_key = ? AND server_key = ? AND user_id = ?"
		ok, err := exists(ctx, q, "SELECT 1 FROM grants WHERE "+where, host, server, userID)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		var cs changeSet
		if err := deleteGrants(ctx, q, &cs, where, host, server, userID); err != nil {
			return err
		}
		if err := deleteConsents(ctx, q, &cs, "host_key = ? AND server_key = ? AND agent_id IN (SELECT id FROM agents WHERE host_key = ? AND user_id = ?)",
			host, server, host, userID); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete grant %s/%s/%s: %w", host, server, userID, err)
	}
	return nil
}

// deleteGrants removes the grants matching where, recording their tuples' deletion.
func deleteGrants(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	grants, err := selectGrants(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read grants: %w", err)
	}
	for _, g := range grants {
		cs.delete(grantTuple(g))
	}
	if _, err := q.exec(ctx, "DELETE FROM grants WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete grants: %w", err)
	}
	return nil
}
