package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

const serverColumns = "host_key, server_key, name, description, url, created_at"

func scanServer(r row) (Server, error) {
	var sv Server
	var created int64
	if err := r.Scan(&sv.Host, &sv.Key, &sv.Name, &sv.Description, &sv.URL, &created); err != nil {
		return Server{}, err
	}
	sv.CreatedAt = fromMillis(created)
	return sv, nil
}

func (s *sqlStore) CreateServer(ctx context.Context, sv Server) (Server, error) {
	if err := firstErr(
		validServerKey(sv.Key),
		validText("server name", sv.Name),
		validText("server description", sv.Description),
		validText("server URL", sv.URL),
	); err != nil {
		return Server{}, fmt.Errorf("create server in %s: %w", sv.Host, err)
	}
	sv.CreatedAt = now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, sv.Host); err != nil {
			return err
		}
		dup, err := exists(ctx, q, "SELECT 1 FROM servers WHERE host_key = ? AND server_key = ?", sv.Host, sv.Key)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("server already exists: %w", ErrConflict)
		}
		if _, err := q.exec(ctx, "INSERT INTO servers ("+serverColumns+") VALUES (?, ?, ?, ?, ?, ?)",
			sv.Host, sv.Key, sv.Name, sv.Description, sv.URL, toMillis(sv.CreatedAt)); err != nil {
			return writeErr(err)
		}
		var cs changeSet
		cs.touch(schema.ServerHost(sv.Host, sv.Key))
		return cs.write(ctx, q, sv.CreatedAt)
	})
	if err != nil {
		return Server{}, fmt.Errorf("create server %s/%s: %w", sv.Host, sv.Key, err)
	}
	return sv, nil
}

func (s *sqlStore) GetServer(ctx context.Context, host, key string) (Server, error) {
	sv, err := scanServer(s.db.q().queryRow(ctx,
		"SELECT "+serverColumns+" FROM servers WHERE host_key = ? AND server_key = ?", host, key))
	if errors.Is(err, errNoRows) {
		return Server{}, fmt.Errorf("get server %s/%s: %w", host, key, ErrNotFound)
	}
	if err != nil {
		return Server{}, fmt.Errorf("get server %s/%s: %w", host, key, err)
	}
	return sv, nil
}

func (s *sqlStore) ListServers(ctx context.Context, host string) ([]Server, error) {
	var out []Server
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		out, err = selectServers(ctx, q, "host_key = ? ORDER BY server_key", host)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list servers of %s: %w", host, err)
	}
	return out, nil
}

func selectServers(ctx context.Context, q querier, where string, args ...any) ([]Server, error) {
	rs, err := q.query(ctx, "SELECT "+serverColumns+" FROM servers WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Server{}
	for rs.Next() {
		sv, err := scanServer(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, sv)
	}
	return out, rs.Err()
}

// DeleteServer removes the server with its consents, grants and tools.
func (s *sqlStore) DeleteServer(ctx context.Context, host, key string) error {
	at := now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireServer(ctx, q, host, key); err != nil {
			return err
		}
		var cs changeSet
		where := "host_key = ? AND server_key = ?"
		if err := deleteConsents(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteGrants(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteTools(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteServers(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete server %s/%s: %w", host, key, err)
	}
	return nil
}

// deleteServers removes the servers matching where, recording their tuples' deletion. Their
// tools, grants and consents must be gone already.
func deleteServers(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	servers, err := selectServers(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read servers: %w", err)
	}
	for _, sv := range servers {
		cs.delete(schema.ServerHost(sv.Host, sv.Key))
	}
	if _, err := q.exec(ctx, "DELETE FROM servers WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete servers: %w", err)
	}
	return nil
}
