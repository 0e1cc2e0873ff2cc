package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

const agentColumns = "host_key, id, user_id, client_id, name, created_at"

func scanAgent(r row) (Agent, error) {
	var a Agent
	var created int64
	if err := r.Scan(&a.Host, &a.ID, &a.UserID, &a.ClientID, &a.Name, &created); err != nil {
		return Agent{}, err
	}
	a.CreatedAt = fromMillis(created)
	return a, nil
}

func (s *sqlStore) CreateAgent(ctx context.Context, a Agent) (Agent, error) {
	if a.ID == "" {
		a.ID = newID("a_")
	} else if err := validID("agent", a.ID); err != nil {
		return Agent{}, fmt.Errorf("create agent in %s: %w", a.Host, err)
	}
	if err := firstErr(validText("agent client id", a.ClientID), validText("agent name", a.Name)); err != nil {
		return Agent{}, fmt.Errorf("create agent %s/%s: %w", a.Host, a.ID, err)
	}
	a.CreatedAt = now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, a.Host, a.UserID); err != nil {
			return err
		}
		dup, err := exists(ctx, q, "SELECT 1 FROM agents WHERE host_key = ? AND id = ?", a.Host, a.ID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("agent already exists: %w", ErrConflict)
		}
		if _, err := q.exec(ctx, "INSERT INTO agents ("+agentColumns+") VALUES (?, ?, ?, ?, ?, ?)",
			a.Host, a.ID, a.UserID, a.ClientID, a.Name, toMillis(a.CreatedAt)); err != nil {
			return writeErr(err)
		}
		var cs changeSet
		cs.touch(schema.AgentTuples(a.Host, a.ID, a.UserID)...)
		return cs.write(ctx, q, a.CreatedAt)
	})
	if err != nil {
		return Agent{}, fmt.Errorf("create agent %s/%s: %w", a.Host, a.ID, err)
	}
	return a, nil
}

func (s *sqlStore) GetAgent(ctx context.Context, host, id string) (Agent, error) {
	a, err := scanAgent(s.db.q().queryRow(ctx, "SELECT "+agentColumns+" FROM agents WHERE host_key = ? AND id = ?", host, id))
	if errors.Is(err, errNoRows) {
		return Agent{}, fmt.Errorf("get agent %s/%s: %w", host, id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("get agent %s/%s: %w", host, id, err)
	}
	return a, nil
}

func (s *sqlStore) ListAgents(ctx context.Context, host, userID string) ([]Agent, error) {
	var out []Agent
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		if userID == "" {
			out, err = selectAgents(ctx, q, "host_key = ? ORDER BY user_id, id", host)
			return err
		}
		if err := requireUser(ctx, q, host, userID); err != nil {
			return err
		}
		out, err = selectAgents(ctx, q, "host_key = ? AND user_id = ? ORDER BY id", host, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list agents of %s: %w", host, err)
	}
	return out, nil
}

func selectAgents(ctx context.Context, q querier, where string, args ...any) ([]Agent, error) {
	rs, err := q.query(ctx, "SELECT "+agentColumns+" FROM agents WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Agent{}
	for rs.Next() {
		a, err := scanAgent(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rs.Err()
}

// DeleteAgent removes the agent with its consents.
func (s *sqlStore) DeleteAgent(ctx context.Context, host, id string) error {
	at := now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireAgent(ctx, q, host, id); err != nil {
			return err
		}
		var cs changeSet
		if err := deleteConsents(ctx, q, &cs, "host_key = ? AND agent_id = ?", host, id); err != nil {
			return err
		}
		if err := deleteAgents(ctx, q, &cs, "host_key = ? AND id = ?", host, id); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete agent %s/%s: %w", host, id, err)
	}
	return nil
}

// deleteAgents removes the agents matching where, recording their tuples' deletion. Their
// consents must be gone already.
func deleteAgents(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	agents, err := selectAgents(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read agents: %w", err)
	}
	for _, a := range agents {
		cs.delete(schema.AgentTuples(a.Host, a.ID, a.UserID)...)
	}
	if _, err := q.exec(ctx, "DELETE FROM agents WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete agents: %w", err)
	}
	return nil
}
