package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

const hostColumns = "host_key, name, settings, created_at"

func scanHost(r row) (Host, error) {
	var h Host
	var settings string
	var created int64
	if err := r.Scan(&h.Key, &h.Name, &settings, &created); err != nil {
		return Host{}, err
	}
	hs, err := decodeHostSettings(settings)
	if err != nil {
		return Host{}, fmt.Errorf("host %s: %w", h.Key, err)
	}
	h.Settings = hs
	h.CreatedAt = fromMillis(created)
	return h, nil
}

func encodeHostSettings(hs HostSettings) (string, error) {
	b, err := json.Marshal(hs)
	if err != nil {
		return "", fmt.Errorf("encode host settings: %w", err)
	}
	return string(b), nil
}

func decodeHostSettings(s string) (HostSettings, error) {
	var hs HostSettings
	if s == "" {
		return hs, nil
	}
	if err := json.Unmarshal([]byte(s), &hs); err != nil {
		return HostSettings{}, fmt.Errorf("decode settings: %w", err)
	}
	if len(hs.AllowedEmailDomains) == 0 {
		hs.AllowedEmailDomains = nil
	}
	if len(hs.SignInDomains) == 0 {
		hs.SignInDomains = nil
	}
	return hs, nil
}

// prepareHost validates a host to create and returns it normalized, with its settings encoded.
func prepareHost(h Host) (Host, string, error) {
	if err := firstErr(validHostKey(h.Key), validText("host name", h.Name)); err != nil {
		return Host{}, "", err
	}
	hs, err := normalizeHostSettings(h.Settings)
	if err != nil {
		return Host{}, "", err
	}
	h.Settings = hs
	settings, err := encodeHostSettings(hs)
	if err != nil {
		return Host{}, "", err
	}
	return h, settings, nil
}

func insertHost(ctx context.Context, q querier, h Host, settings string) error {
	_, err := q.exec(ctx, "INSERT INTO hosts ("+hostColumns+") VALUES (?, ?, ?, ?)",
		h.Key, h.Name, settings, toMillis(h.CreatedAt))
	return writeErr(err)
}

func (s *sqlStore) CreateHost(ctx context.Context, h Host) (Host, error) {
	h, settings, err := prepareHost(h)
	if err != nil {
		return Host{}, fmt.Errorf("create host: %w", err)
	}
	h.CreatedAt = now()
	err = s.controlTx(ctx, func(q querier) error {
		dup, err := exists(ctx, q, "SELECT 1 FROM hosts WHERE host_key = ?", h.Key)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("host %q already exists: %w", h.Key, ErrConflict)
		}
		return insertHost(ctx, q, h, settings)
	})
	if err != nil {
		return Host{}, fmt.Errorf("create host %s: %w", h.Key, err)
	}
	return h, nil
}

// EnsureHost creates the host unless it exists, and returns the host as stored: an existing host
// is returned unchanged, whatever h says. Processes starting together may all call it.
func (s *sqlStore) EnsureHost(ctx context.Context, h Host) (Host, error) {
	h, settings, err := prepareHost(h)
	if err != nil {
		return Host{}, fmt.Errorf("ensure host: %w", err)
	}
	h.CreatedAt = now()
	var out Host
	err = s.controlTx(ctx, func(q querier) error {
		old, err := scanHost(q.queryRow(ctx, "SELECT "+hostColumns+" FROM hosts WHERE host_key = ?", h.Key))
		if err == nil {
			out = old
			return nil
		}
		if !errors.Is(err, errNoRows) {
			return err
		}
		if err := insertHost(ctx, q, h, settings); err != nil {
			return err
		}
		out = h
		return nil
	})
	if errors.Is(err, ErrConflict) {
		// Another process inserted the host between this transaction's read and its write (an
		// engine that reports that as a unique violation rather than retrying): it exists now.
		if got, gerr := s.GetHost(ctx, h.Key); gerr == nil {
			return got, nil
		}
	}
	if err != nil {
		return Host{}, fmt.Errorf("ensure host %s: %w", h.Key, err)
	}
	return out, nil
}

// UpdateHost changes the name and settings of an existing host.
func (s *sqlStore) UpdateHost(ctx context.Context, h Host) (Host, error) {
	h, settings, err := prepareHost(h)
	if err != nil {
		return Host{}, fmt.Errorf("update host: %w", err)
	}
	err = s.controlTx(ctx, func(q querier) error {
		old, err := scanHost(q.queryRow(ctx, "SELECT "+hostColumns+" FROM hosts WHERE host_key = ?", h.Key))
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("host %q: %w", h.Key, ErrNotFound)
		}
		if err != nil {
			return err
		}
		h.CreatedAt = old.CreatedAt
		_, err = q.exec(ctx, "UPDATE hosts SET name = ?, settings = ? WHERE host_key = ?", h.Name, settings, h.Key)
		return err
	})
	if err != nil {
		return Host{}, fmt.Errorf("update host %s: %w", h.Key, err)
	}
	return h, nil
}

func (s *sqlStore) GetHost(ctx context.Context, key string) (Host, error) {
	return getHost(ctx, s.db.q(), key)
}

func getHost(ctx context.Context, q querier, key string) (Host, error) {
	h, err := scanHost(q.queryRow(ctx, "SELECT "+hostColumns+" FROM hosts WHERE host_key = ?", key))
	if errors.Is(err, errNoRows) {
		return Host{}, fmt.Errorf("get host %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Host{}, fmt.Errorf("get host %q: %w", key, err)
	}
	return h, nil
}

func (s *sqlStore) ListHosts(ctx context.Context) ([]Host, error) {
	rs, err := s.db.q().query(ctx, "SELECT "+hostColumns+" FROM hosts ORDER BY host_key")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rs.Close()
	var out []Host
	for rs.Next() {
		h, err := scanHost(rs)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
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
	err := s.controlTx(ctx, func(q querier) error {
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
		if err := deleteGrants(ctx, q, "host_key = ?", key); err != nil {
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
		if _, err := q.exec(ctx, "DELETE FROM api_tokens WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete API tokens: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM browser_sessions WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete browser sessions: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM passkeys WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete passkeys: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM auth_methods WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete sign-in methods: %w", err)
		}
		if err := deleteInvitations(ctx, q, "host_key = ?", key); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM used_once WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete used identifiers: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM authorize_requests WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete pending authorization requests: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM oauth_requests WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete OAuth tokens: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM oauth_clients WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete OAuth clients: %w", err)
		}
		if err := deleteUpstreamRows(ctx, q, "host_key = ?", key); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM upstream_clients WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete upstream clients: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM sso_states WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete sign-ins in progress: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM email_codes WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete email codes: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM held_calls WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete held calls: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM standing_approvals WHERE host_key = ?", key); err != nil {
			return fmt.Errorf("delete standing approvals: %w", err)
		}
		if err := releaseHostQuarantine(ctx, q, &cs, key); err != nil {
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
