package store

import (
	"context"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

// Relationships derives every tuple from the current rows, with the same constructors the
// mutations use for the outbox, so replaying the whole outbox into an empty set gives exactly
// this set. The rows are read in one snapshot; fn is called after that transaction ends, so a
// slow fn holds no lock.
func (s *sqlStore) Relationships(ctx context.Context, fn func(schema.Relationship) error) error {
	var rels []schema.Relationship
	err := s.db.readTx(ctx, func(q querier) error {
		var err error
		rels, err = derivedRelationships(ctx, q)
		return err
	})
	if err != nil {
		return fmt.Errorf("derive relationships: %w", err)
	}
	for _, r := range rels {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// derivedRelationships reads the rows in q and derives every tuple (see Relationships).
func derivedRelationships(ctx context.Context, q querier) ([]schema.Relationship, error) {
	var rels []schema.Relationship
	users, err := selectUsers(ctx, q, "1 = 1 ORDER BY host_key, id")
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	for _, u := range users {
		rels = append(rels, userTuples(u)...)
	}
	agents, err := selectAgents(ctx, q, "1 = 1 ORDER BY host_key, id")
	if err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	disabled := map[[2]string]bool{}
	owners := make(map[[2]string]string, len(agents))
	for _, a := range agents {
		owners[[2]string{a.Host, a.ID}] = a.UserID
		if a.Disabled {
			disabled[[2]string{a.Host, a.ID}] = true
		}
		rels = append(rels, agentTuples(a)...)
	}
	servers, err := selectServers(ctx, q, "1 = 1 ORDER BY host_key, server_key")
	if err != nil {
		return nil, fmt.Errorf("read servers: %w", err)
	}
	for _, sv := range servers {
		rels = append(rels, schema.ServerHost(sv.Host, sv.Key))
	}
	tools, err := selectTools(ctx, q, "enabled = ? ORDER BY host_key, server_key, name", true)
	if err != nil {
		return nil, fmt.Errorf("read tools: %w", err)
	}
	for _, t := range tools {
		if rel, ok := toolTuple(t); ok {
			rels = append(rels, rel)
		}
	}
	grants, err := selectGrants(ctx, q, "1 = 1 ORDER BY host_key, server_key, user_id")
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	ceilings := make(map[[3]string]schema.Level, len(grants)) // (host, server, user) → ceiling
	for _, g := range grants {
		ceilings[[3]string{g.Host, g.Server, g.UserID}] = g.Ceiling
	}
	consents, err := selectConsents(ctx, q, "1 = 1 ORDER BY host_key, agent_id, server_key")
	if err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	for _, c := range consents {
		// A disabled agent has no consent (KillAgent deleted them, SetConsent refuses
		// new ones); were one left, it would still grant nothing.
		if disabled[[2]string{c.Host, c.AgentID}] {
			continue
		}
		rels = append(rels, consentTuple(c))
		// The agent's copy of its human's ceiling (none without a grant, which
		// DeleteGrant and SetConsent never leave).
		if ceiling, ok := ceilings[[3]string{c.Host, c.Server, owners[[2]string{c.Host, c.AgentID}]}]; ok {
			rels = append(rels, consentCeilingTuple(c, ceiling))
		}
	}
	return rels, nil
}
