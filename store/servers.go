package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/schema"
)

const serverColumns = "host_key, server_key, name, description, url, credential_kind, credentials, " +
	"connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, network, created_at, updated_at, dlp_mode"

func scanServer(r row) (Server, error) {
	var sv Server
	var creds string
	var created, updated, connectMS, firstByteMS, idleMS int64
	if err := r.Scan(&sv.Host, &sv.Key, &sv.Name, &sv.Description, &sv.URL, &sv.CredentialKind, &creds,
		&connectMS, &firstByteMS, &idleMS, &sv.Network, &created, &updated, &sv.DLPMode); err != nil {
		return Server{}, err
	}
	sv.ConnectTimeout = time.Duration(connectMS) * time.Millisecond
	sv.FirstByteTimeout = time.Duration(firstByteMS) * time.Millisecond
	sv.IdleTimeout = time.Duration(idleMS) * time.Millisecond
	b, err := decodeCredentials(creds)
	if err != nil {
		return Server{}, fmt.Errorf("server %s/%s: %w", sv.Host, sv.Key, err)
	}
	sv.Credentials = b
	sv.CreatedAt = fromMillis(created)
	sv.UpdatedAt = sv.CreatedAt // servers created before schema version 2 were never updated since
	if updated != 0 {
		sv.UpdatedAt = fromMillis(updated)
	}
	return sv, nil
}

// Credentials are kept as standard base64 text, "" for none.

func encodeCredentials(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeCredentials(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("stored credentials are not valid base64")
	}
	return b, nil
}

// validServerFields checks what CreateServer and UpdateServer take from the caller, and
// normalizes empty credentials to nil.
func validServerFields(sv *Server) error {
	if len(sv.Credentials) == 0 {
		sv.Credentials = nil
	} else {
		sv.Credentials = bytes.Clone(sv.Credentials)
	}
	if sv.Network == "" {
		sv.Network = NetworkHost // fail closed
	}
	var network error
	if sv.Network != NetworkHost && sv.Network != NetworkAny {
		network = fmt.Errorf("server network must be %q or %q: %w", NetworkHost, NetworkAny, ErrInvalid)
	}
	var dlpMode error
	if sv.DLPMode != "" && !dlp.ValidMode(sv.DLPMode) {
		dlpMode = fmt.Errorf("server DLP mode %q must be off, redact, block or empty (the host's): %w", sv.DLPMode, ErrInvalid)
	}
	return firstErr(
		network,
		dlpMode,
		validText("server name", sv.Name),
		validText("server description", sv.Description),
		validText("server URL", sv.URL),
		validCredentials(sv.CredentialKind, sv.Credentials),
		validTimeout("connect timeout", sv.ConnectTimeout),
		validTimeout("first-byte timeout", sv.FirstByteTimeout),
		validTimeout("idle timeout", sv.IdleTimeout),
	)
}

// MaxServerTimeout bounds each of a server's timeouts.
const MaxServerTimeout = 24 * time.Hour

// validTimeout: 0 (the default) up to MaxServerTimeout, in whole milliseconds.
func validTimeout(what string, d time.Duration) error {
	if d < 0 || d > MaxServerTimeout || d%time.Millisecond != 0 {
		return fmt.Errorf("%s must be between 0 (the default) and %s, in whole milliseconds: %w", what, MaxServerTimeout, ErrInvalid)
	}
	return nil
}

func (s *sqlStore) CreateServer(ctx context.Context, sv Server) (Server, error) {
	if err := prepareNewServer(&sv); err != nil {
		return Server{}, err
	}
	err := s.controlTx(ctx, func(q querier) error { return insertServer(ctx, q, sv) })
	if err != nil {
		return Server{}, fmt.Errorf("create server %s/%s: %w", sv.Host, sv.Key, err)
	}
	return sv, nil
}

// prepareNewServer checks a server to create and stamps its times.
func prepareNewServer(sv *Server) error {
	if err := firstErr(validServerKey(sv.Key), validServerFields(sv)); err != nil {
		return fmt.Errorf("create server in %s: %w", sv.Host, err)
	}
	sv.CreatedAt = now()
	sv.UpdatedAt = sv.CreatedAt
	return nil
}

// insertServer writes a prepared server and its tuple's outbox entry.
func insertServer(ctx context.Context, q querier, sv Server) error {
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
	if _, err := q.exec(ctx, "INSERT INTO servers ("+serverColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sv.Host, sv.Key, sv.Name, sv.Description, sv.URL, sv.CredentialKind, encodeCredentials(sv.Credentials),
		sv.ConnectTimeout.Milliseconds(), sv.FirstByteTimeout.Milliseconds(), sv.IdleTimeout.Milliseconds(),
		sv.Network, toMillis(sv.CreatedAt), toMillis(sv.UpdatedAt), string(sv.DLPMode)); err != nil {
		return writeErr(err)
	}
	var cs changeSet
	cs.touch(schema.ServerHost(sv.Host, sv.Key))
	return cs.write(ctx, q, sv.CreatedAt)
}

func (s *sqlStore) GetServer(ctx context.Context, host, key string) (Server, error) {
	return getServer(ctx, s.db.q(), host, key)
}

func getServer(ctx context.Context, q querier, host, key string) (Server, error) {
	sv, err := scanServer(q.queryRow(ctx,
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
		var err error
		out, err = listServers(ctx, q, host)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list servers of %s: %w", host, err)
	}
	return out, nil
}

func listServers(ctx context.Context, q querier, host string) ([]Server, error) {
	if err := requireHost(ctx, q, host); err != nil {
		return nil, err
	}
	return selectServers(ctx, q, "host_key = ? ORDER BY server_key", host)
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
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireServer(ctx, q, host, key); err != nil {
			return err
		}
		var cs changeSet
		where := "host_key = ? AND server_key = ?"
		if err := deleteConsents(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteGrants(ctx, q, where, host, key); err != nil {
			return err
		}
		if err := deleteTools(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteServers(ctx, q, &cs, where, host, key); err != nil {
			return err
		}
		if err := deleteUpstreamRows(ctx, q, where, host, key); err != nil {
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

// UpdateServer replaces the name, description, URL, credentials, timeouts, network and DLP mode
// of an existing server.
func (s *sqlStore) UpdateServer(ctx context.Context, sv Server) (Server, error) {
	if err := validServerFields(&sv); err != nil {
		return Server{}, fmt.Errorf("update server %s/%s: %w", sv.Host, sv.Key, err)
	}
	sv.UpdatedAt = now()
	err := s.controlTx(ctx, func(q querier) error {
		old, err := scanServer(q.queryRow(ctx, "SELECT "+serverColumns+" FROM servers WHERE host_key = ? AND server_key = ?", sv.Host, sv.Key))
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("server %s/%s: %w", sv.Host, sv.Key, ErrNotFound)
		}
		if err != nil {
			return err
		}
		sv.CreatedAt = old.CreatedAt
		_, err = q.exec(ctx, "UPDATE servers SET name = ?, description = ?, url = ?, credential_kind = ?, credentials = ?, "+
			"connect_timeout_ms = ?, first_byte_timeout_ms = ?, idle_timeout_ms = ?, network = ?, updated_at = ?, dlp_mode = ? "+
			"WHERE host_key = ? AND server_key = ?",
			sv.Name, sv.Description, sv.URL, sv.CredentialKind, encodeCredentials(sv.Credentials),
			sv.ConnectTimeout.Milliseconds(), sv.FirstByteTimeout.Milliseconds(), sv.IdleTimeout.Milliseconds(),
			sv.Network, toMillis(sv.UpdatedAt), string(sv.DLPMode), sv.Host, sv.Key)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("update server %s/%s: %w", sv.Host, sv.Key, err)
	}
	return sv, nil
}
