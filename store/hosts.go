package store

import (
	"context"
	"errors"
	"fmt"
)

func (s *sqlStore) CreateHost(ctx context.Context, h Host) (Host, error) {
	if err := firstErr(validHostKey(h.Key), validText("host name", h.Name)); err != nil {
		return Host{}, fmt.Errorf("create host: %w", err)
	}
	h.CreatedAt = now()
	err := s.db.writeTx(ctx, func(q querier) error {
		dup, err := exists(ctx, q, "SELECT 1 FROM hosts WHERE host_key = ?", h.Key)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("host %q already exists: %w", h.Key, ErrConflict)
		}
		_, err = q.exec(ctx, "INSERT INTO hosts (host_key, name, created_at) VALUES (?, ?, ?)",
			h.Key, h.Name, toMillis(h.CreatedAt))
		return writeErr(err)
	})
	if err != nil {
		return Host{}, fmt.Errorf("create host %s: %w", h.Key, err)
	}
	return h, nil
}

func (s *sqlStore) GetHost(ctx context.Context, key string) (Host, error) {
	var h Host
	var created int64
	err := s.db.q().queryRow(ctx, "SELECT host_key, name, created_at FROM hosts WHERE host_key = ?", key).
		Scan(&h.Key, &h.Name, &created)
	if errors.Is(err, errNoRows) {
		return Host{}, fmt.Errorf("get host %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Host{}, fmt.Errorf("get host %q: %w", key, err)
	}
	h.CreatedAt = fromMillis(created)
	return h, nil
}

func (s *sqlStore) ListHosts(ctx context.Context) ([]Host, error) {
	rs, err := s.db.q().query(ctx, "SELECT host_key, name, created_at FROM hosts ORDER BY host_key")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rs.Close()
	var out []Host
	for rs.Next() {
		var h Host
		var created int64
		if err := rs.Scan(&h.Key, &h.Name, &created); err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		h.CreatedAt = fromMillis(created)
		out = append(out, h)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return out, nil
}

// DeleteHost removes everything in the host child-first, leaving a delete in the outbox for
// every tuple that goes with it.
func (s *sqlStore) DeleteHost(ctx context.Context, key string) error {
	at := now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, key); err != nil {
			return err
		}
		var cs changeSet
		if err := deleteConsents(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if err := deleteAgents(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if err := deleteGrants(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if err := deleteTools(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if err := deleteServers(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if err := deleteUsers(ctx, q, &cs, "host_key = ?", key); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM hosts WHERE host_key = ?", key); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete host %s: %w", key, err)
	}
	return nil
}
