package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/schema"
)

const agentColumns = "host_key, id, user_id, client_id, name, redirect_uris, agent_type, disabled, created_at, last_active_at"

func scanAgent(r row) (Agent, error) {
	var a Agent
	var uris string
	var created, active int64
	if err := r.Scan(&a.Host, &a.ID, &a.UserID, &a.ClientID, &a.Name, &uris, &a.Type, &a.Disabled, &created, &active); err != nil {
		return Agent{}, err
	}
	if uris != "" {
		if err := json.Unmarshal([]byte(uris), &a.RedirectURIs); err != nil {
			return Agent{}, fmt.Errorf("agent %s/%s: decode redirect URIs: %w", a.Host, a.ID, err)
		}
	}
	if len(a.RedirectURIs) == 0 {
		a.RedirectURIs = nil
	}
	a.CreatedAt = fromMillis(created)
	a.LastActiveAt = fromMillisOpt(active)
	return a, nil
}

func encodeRedirectURIs(uris []string) (string, error) {
	if len(uris) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(uris)
	if err != nil {
		return "", fmt.Errorf("encode redirect URIs: %w", err)
	}
	return string(b), nil
}

// agentTuples are the relationships an agent derives: none when it is disabled.
func agentTuples(a Agent) []schema.Relationship {
	if a.Disabled {
		return nil
	}
	return schema.AgentTuples(a.Host, a.ID, a.UserID)
}

func selectAgent(ctx context.Context, q querier, host, id string) (Agent, error) {
	a, err := scanAgent(q.queryRow(ctx, "SELECT "+agentColumns+" FROM agents WHERE host_key = ? AND id = ?", host, id))
	if errors.Is(err, errNoRows) {
		return Agent{}, fmt.Errorf("agent %s/%s: %w", host, id, ErrNotFound)
	}
	return a, err
}

func (s *sqlStore) CreateAgent(ctx context.Context, a Agent) (Agent, error) {
	if a.ID == "" {
		a.ID = newID("a_")
	} else if err := validID("agent", a.ID); err != nil {
		return Agent{}, fmt.Errorf("create agent in %s: %w", a.Host, err)
	}
	if err := firstErr(
		validText("agent client id", a.ClientID),
		validText("agent name", a.Name),
		validAgentType(a.Type),
		validRedirectURIs(a.RedirectURIs),
	); err != nil {
		return Agent{}, fmt.Errorf("create agent %s/%s: %w", a.Host, a.ID, err)
	}
	if len(a.RedirectURIs) == 0 {
		a.RedirectURIs = nil
	} else {
		a.RedirectURIs = append([]string(nil), a.RedirectURIs...)
	}
	uris, err := encodeRedirectURIs(a.RedirectURIs)
	if err != nil {
		return Agent{}, fmt.Errorf("create agent %s/%s: %w", a.Host, a.ID, err)
	}
	a.CreatedAt = now()
	a.LastActiveAt = normTime(a.LastActiveAt)
	err = s.controlTx(ctx, func(q querier) error {
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
		if _, err := q.exec(ctx, "INSERT INTO agents ("+agentColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			a.Host, a.ID, a.UserID, a.ClientID, a.Name, uris, a.Type, a.Disabled,
			toMillis(a.CreatedAt), toMillisOpt(a.LastActiveAt)); err != nil {
			return writeErr(err)
		}
		var cs changeSet
		cs.touch(agentTuples(a)...)
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

// UpdateAgent changes an agent's name and type; nothing else of it.
func (s *sqlStore) UpdateAgent(ctx context.Context, a Agent) (Agent, error) {
	if err := firstErr(validText("agent name", a.Name), validAgentType(a.Type)); err != nil {
		return Agent{}, fmt.Errorf("update agent %s/%s: %w", a.Host, a.ID, err)
	}
	var out Agent
	err := s.controlTx(ctx, func(q querier) error {
		old, err := selectAgent(ctx, q, a.Host, a.ID)
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, "UPDATE agents SET name = ?, agent_type = ? WHERE host_key = ? AND id = ?",
			a.Name, a.Type, a.Host, a.ID); err != nil {
			return err
		}
		out = old
		out.Name, out.Type = a.Name, a.Type
		return nil
	})
	if err != nil {
		return Agent{}, fmt.Errorf("update agent %s/%s: %w", a.Host, a.ID, err)
	}
	return out, nil
}

// KillAgent deletes the agent's consents and disables it, in one transaction: the agent keeps its
// row (for the audit trail and the admin's view) but no relationship at all.
func (s *sqlStore) KillAgent(ctx context.Context, host, id string) (Agent, error) {
	at := now()
	var out Agent
	err := s.controlTx(ctx, func(q querier) error {
		old, err := selectAgent(ctx, q, host, id)
		if err != nil {
			return err
		}
		var cs changeSet
		if err := deleteConsents(ctx, q, &cs, "host_key = ? AND agent_id = ?", host, id); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "UPDATE agents SET disabled = ? WHERE host_key = ? AND id = ?", true, host, id); err != nil {
			return fmt.Errorf("disable agent: %w", err)
		}
		// The kill switch revokes every token of the agent in the same transaction.
		if _, err := revokeOAuthRequests(ctx, q, "host_key = ? AND agent_id = ?", host, id); err != nil {
			return err
		}
		cs.delete(agentTuples(old)...)
		out = old
		out.Disabled = true
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return Agent{}, fmt.Errorf("kill agent %s/%s: %w", host, id, err)
	}
	return out, nil
}

// TouchAgent records that the agent was active at at (written at most once a minute).
func (s *sqlStore) TouchAgent(ctx context.Context, host, id string, at time.Time) error {
	if err := touch(ctx, s.db.q(), "agents", "last_active_at", "host_key = ? AND id = ?", at, host, id); err != nil {
		return fmt.Errorf("touch agent %s/%s: %w", host, id, err)
	}
	return nil
}

// DeleteAgent removes the agent with its consents.
func (s *sqlStore) DeleteAgent(ctx context.Context, host, id string) error {
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
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
		if _, err := revokeOAuthRequests(ctx, q, "host_key = ? AND agent_id = ?", host, id); err != nil {
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
		cs.delete(agentTuples(a)...)
	}
	if _, err := q.exec(ctx, "DELETE FROM agents WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete agents: %w", err)
	}
	return nil
}
