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
	// The ceiling is enforced through each consenting agent's copy of it: change every copy.
	var cs changeSet
	if found && old.Ceiling != g.Ceiling {
		copies, err := consentCeilings(ctx, q, "host_key = ? AND server_key = ? AND agent_id IN (SELECT id FROM agents WHERE host_key = ? AND user_id = ?)",
			g.Host, g.Server, g.Host, g.UserID)
		if err != nil {
			return fmt.Errorf("read consents' ceilings: %w", err)
		}
		for _, r := range copies {
			r.Relation = "ceiling_" + old.Ceiling.String()
			cs.delete(r)
			r.Relation = "ceiling_" + g.Ceiling.String()
			cs.touch(r)
		}
	}
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
		if err := deleteConsents(ctx, q, &cs, "host_key = ? AND server_key = ? AND agent_id IN (SELECT id FROM agents WHERE host_key = ? AND user_id = ?)",
			host, server, host, userID); err != nil {
			return err
		}
		if err := deleteGrants(ctx, q, where, host, server, userID); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete grant %s/%s/%s: %w", host, server, userID, err)
	}
	return nil
}

// deleteGrants removes the grants matching where. A grant has no relationship of its own (its
// ceiling is copied to the consents of the human's agents): their consents must be gone already.
func deleteGrants(ctx context.Context, q querier, where string, args ...any) error {
	if _, err := q.exec(ctx, "DELETE FROM grants WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete grants: %w", err)
	}
	return nil
}
