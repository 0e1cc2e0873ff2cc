package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

const consentColumns = "host_key, agent_id, server_key, level, updated_at"

func scanConsent(r row) (Consent, error) {
	var c Consent
	var level string
	var updated int64
	if err := r.Scan(&c.Host, &c.AgentID, &c.Server, &level, &updated); err != nil {
		return Consent{}, err
	}
	l, err := schema.ParseLevel(level)
	if err != nil {
		return Consent{}, fmt.Errorf("consent %s/%s/%s: %w", c.Host, c.AgentID, c.Server, err)
	}
	c.Level = l
	c.UpdatedAt = fromMillis(updated)
	return c, nil
}

func consentTuple(c Consent) schema.Relationship {
	return schema.Grant(c.Host, c.Server, c.AgentID, c.Level)
}

// consentCeilingTuple is the agent's copy of its human's ceiling on the consent's server: one per
// consent of an enabled agent whose human has a grant there, so that a check reads the agent's
// relationships instead of every human with a ceiling on the server.
func consentCeilingTuple(c Consent, ceiling schema.Level) schema.Relationship {
	return schema.Ceiling(c.Host, c.Server, c.AgentID, ceiling)
}

// ErrNotGranted: a consent's level is not allowed by the human's grant on the server (no grant,
// or a level above the ceiling). It is an ErrConflict, with the same text.
var ErrNotGranted = fmt.Errorf("%w", ErrConflict)

// SetConsent records the level a human gives their agent on a server. The agent must not be
// disabled, the human must have a grant on the server, and the level may not exceed its ceiling.
func (s *sqlStore) SetConsent(ctx context.Context, c Consent) (Consent, error) {
	if err := validLevel("consent level", c.Level); err != nil {
		return Consent{}, fmt.Errorf("set consent %s/%s/%s: %w", c.Host, c.AgentID, c.Server, err)
	}
	c.UpdatedAt = now()
	err := s.controlTx(ctx, func(q querier) error {
		agent, err := selectAgent(ctx, q, c.Host, c.AgentID)
		if err != nil {
			return err
		}
		if agent.Disabled {
			return fmt.Errorf("agent %s is disabled: %w", c.AgentID, ErrConflict)
		}
		if err := requireServer(ctx, q, c.Host, c.Server); err != nil {
			return err
		}
		grant, err := scanGrant(q.queryRow(ctx, "SELECT "+grantColumns+" FROM grants WHERE host_key = ? AND server_key = ? AND user_id = ?",
			c.Host, c.Server, agent.UserID))
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("user %s has no grant on server %s, so their agent can be given no level there: %w",
				agent.UserID, c.Server, ErrNotGranted)
		}
		if err != nil {
			return err
		}
		if c.Level > grant.Ceiling {
			return fmt.Errorf("level %s is above user %s's ceiling %s on server %s: %w",
				c.Level, agent.UserID, grant.Ceiling, c.Server, ErrNotGranted)
		}
		old, err := scanConsent(q.queryRow(ctx, "SELECT "+consentColumns+" FROM consents WHERE host_key = ? AND agent_id = ? AND server_key = ?",
			c.Host, c.AgentID, c.Server))
		found := err == nil
		if err != nil && !errors.Is(err, errNoRows) {
			return err
		}
		if found {
			_, err = q.exec(ctx, "UPDATE consents SET level = ?, updated_at = ? WHERE host_key = ? AND agent_id = ? AND server_key = ?",
				c.Level.String(), toMillis(c.UpdatedAt), c.Host, c.AgentID, c.Server)
		} else {
			_, err = q.exec(ctx, "INSERT INTO consents ("+consentColumns+") VALUES (?, ?, ?, ?, ?)",
				c.Host, c.AgentID, c.Server, c.Level.String(), toMillis(c.UpdatedAt))
		}
		if err != nil {
			return writeErr(err)
		}
		var cs changeSet
		if found && old.Level != c.Level {
			cs.delete(consentTuple(old))
		}
		cs.touch(consentTuple(c), consentCeilingTuple(c, grant.Ceiling))
		return cs.write(ctx, q, c.UpdatedAt)
	})
	if err != nil {
		return Consent{}, fmt.Errorf("set consent %s/%s/%s: %w", c.Host, c.AgentID, c.Server, err)
	}
	return c, nil
}

func (s *sqlStore) GetConsent(ctx context.Context, host, agentID, server string) (Consent, error) {
	c, err := scanConsent(s.db.q().queryRow(ctx, "SELECT "+consentColumns+" FROM consents WHERE host_key = ? AND agent_id = ? AND server_key = ?",
		host, agentID, server))
	if errors.Is(err, errNoRows) {
		return Consent{}, fmt.Errorf("get consent %s/%s/%s: %w", host, agentID, server, ErrNotFound)
	}
	if err != nil {
		return Consent{}, fmt.Errorf("get consent %s/%s/%s: %w", host, agentID, server, err)
	}
	return c, nil
}

func (s *sqlStore) ListConsents(ctx context.Context, host, agentID string) ([]Consent, error) {
	var out []Consent
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		if agentID == "" {
			out, err = selectConsents(ctx, q, "host_key = ? ORDER BY agent_id, server_key", host)
			return err
		}
		if err := requireAgent(ctx, q, host, agentID); err != nil {
			return err
		}
		out, err = selectConsents(ctx, q, "host_key = ? AND agent_id = ? ORDER BY server_key", host, agentID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list consents of %s: %w", host, err)
	}
	return out, nil
}

func selectConsents(ctx context.Context, q querier, where string, args ...any) ([]Consent, error) {
	rs, err := q.query(ctx, "SELECT "+consentColumns+" FROM consents WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Consent{}
	for rs.Next() {
		c, err := scanConsent(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rs.Err()
}

func (s *sqlStore) DeleteConsent(ctx context.Context, host, agentID, server string) error {
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
		where := "host_key = ? AND agent_id = ? AND server_key = ?"
		ok, err := exists(ctx, q, "SELECT 1 FROM consents WHERE "+where, host, agentID, server)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		var cs changeSet
		if err := deleteConsents(ctx, q, &cs, where, host, agentID, server); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete consent %s/%s/%s: %w", host, agentID, server, err)
	}
	return nil
}

// deleteConsents removes the consents matching where, recording their tuples' deletion: the
// grant's and the agent's copy of its human's ceiling. It must run before the grants and agents
// the copies derive from are deleted.
func deleteConsents(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	consents, err := selectConsents(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read consents: %w", err)
	}
	ceilings, err := consentCeilings(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read consents' ceilings: %w", err)
	}
	for _, c := range consents {
		cs.delete(consentTuple(c))
	}
	cs.delete(ceilings...)
	if _, err := q.exec(ctx, "DELETE FROM consents WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete consents: %w", err)
	}
	return nil
}

// consentCeilings are the ceiling copies of the consents matching where (a condition on the
// consents table): one per consent of an enabled agent whose human has a grant on its server.
func consentCeilings(ctx context.Context, q querier, where string, args ...any) ([]schema.Relationship, error) {
	rs, err := q.query(ctx, "SELECT c.host_key, c.agent_id, c.server_key, g.ceiling FROM (SELECT host_key, agent_id, server_key FROM consents WHERE "+where+") c"+
		" JOIN agents a ON a.host_key = c.host_key AND a.id = c.agent_id"+
		" JOIN grants g ON g.host_key = c.host_key AND g.server_key = c.server_key AND g.user_id = a.user_id"+
		" WHERE a.disabled = ?", append(args, false)...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []schema.Relationship
	for rs.Next() {
		var c Consent
		var level string
		if err := rs.Scan(&c.Host, &c.AgentID, &c.Server, &level); err != nil {
			return nil, err
		}
		ceiling, err := schema.ParseLevel(level)
		if err != nil {
			return nil, fmt.Errorf("grant of agent %s/%s's human on %s: %w", c.Host, c.AgentID, c.Server, err)
		}
		out = append(out, consentCeilingTuple(c, ceiling))
	}
	return out, rs.Err()
}
