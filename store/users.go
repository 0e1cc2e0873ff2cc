package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trustgate/trustgate/schema"
)

const userColumns = "host_key, id, email, name, admin, created_at, last_active_at"

func scanUser(r row) (User, error) {
	var u User
	var created, active int64
	if err := r.Scan(&u.Host, &u.ID, &u.Email, &u.Name, &u.Admin, &created, &active); err != nil {
		return User{}, err
	}
	u.CreatedAt = fromMillis(created)
	u.LastActiveAt = fromMillisOpt(active)
	return u, nil
}

// userTuples are the relationships a human derives: membership, and administration when admin.
func userTuples(u User) []schema.Relationship {
	rels := []schema.Relationship{schema.HostMember(u.Host, u.ID)}
	if u.Admin {
		rels = append(rels, schema.HostAdmin(u.Host, u.ID))
	}
	return rels
}

func (s *sqlStore) CreateUser(ctx context.Context, u User) (User, error) {
	if u.ID == "" {
		u.ID = newID("u_")
	} else if err := validID("user", u.ID); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	email, err := normalizeEmail(u.Email)
	if err == nil {
		err = validText("user name", u.Name)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user in %s: %w", u.Host, err)
	}
	u.Email = email
	u.CreatedAt = now()
	u.LastActiveAt = normTime(u.LastActiveAt)
	err = s.controlTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, u.Host); err != nil {
			return err
		}
		dup, err := exists(ctx, q, "SELECT 1 FROM users WHERE host_key = ? AND id = ?", u.Host, u.ID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("user id %q already exists: %w", u.ID, ErrConflict)
		}
		dup, err = exists(ctx, q, "SELECT 1 FROM users WHERE host_key = ? AND email = ?", u.Host, u.Email)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("email %q is already taken: %w", u.Email, ErrConflict)
		}
		if _, err := q.exec(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			u.Host, u.ID, u.Email, u.Name, u.Admin, toMillis(u.CreatedAt), toMillisOpt(u.LastActiveAt)); err != nil {
			return writeErr(err)
		}
		var cs changeSet
		cs.touch(userTuples(u)...)
		return cs.write(ctx, q, u.CreatedAt)
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %s in %s: %w", u.Email, u.Host, err)
	}
	return u, nil
}

func (s *sqlStore) GetUser(ctx context.Context, host, id string) (User, error) {
	u, err := scanUser(s.db.q().queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE host_key = ? AND id = ?", host, id))
	if errors.Is(err, errNoRows) {
		return User{}, fmt.Errorf("get user %s/%s: %w", host, id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s/%s: %w", host, id, err)
	}
	return u, nil
}

func (s *sqlStore) GetUserByEmail(ctx context.Context, host, email string) (User, error) {
	email = strings.ToLower(email)
	u, err := scanUser(s.db.q().queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE host_key = ? AND email = ?", host, email))
	if errors.Is(err, errNoRows) {
		return User{}, fmt.Errorf("get user %q in %s: %w", email, host, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %q in %s: %w", email, host, err)
	}
	return u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context, host string) ([]User, error) {
	var out []User
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		out, err = selectUsers(ctx, q, "host_key = ? ORDER BY email", host)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users of %s: %w", host, err)
	}
	return out, nil
}

func selectUsers(ctx context.Context, q querier, where string, args ...any) ([]User, error) {
	rs, err := q.query(ctx, "SELECT "+userColumns+" FROM users WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []User{}
	for rs.Next() {
		u, err := scanUser(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rs.Err()
}

// DeleteUser removes the human with their consents, agents and grants.
func (s *sqlStore) DeleteUser(ctx context.Context, host, id string) error {
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, host, id); err != nil {
			return err
		}
		var cs changeSet
		if err := deleteConsents(ctx, q, &cs,
			"host_key = ? AND agent_id IN (SELECT id FROM agents WHERE host_key = ? AND user_id = ?)", host, host, id); err != nil {
			return err
		}
		if err := deleteAgents(ctx, q, &cs, "host_key = ? AND user_id = ?", host, id); err != nil {
			return err
		}
		if err := deleteGrants(ctx, q, "host_key = ? AND user_id = ?", host, id); err != nil {
			return err
		}
		if err := deleteUsers(ctx, q, &cs, "host_key = ? AND id = ?", host, id); err != nil {
			return err
		}
		// Deleting a human revokes every token of theirs in the same transaction.
		if _, err := revokeOAuthRequests(ctx, q, "host_key = ? AND subject = ?", host, id); err != nil {
			return err
		}
		if err := deleteUpstreamRows(ctx, q, "host_key = ? AND user_id = ?", host, id); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM browser_sessions WHERE host_key = ? AND user_id = ?", host, id); err != nil {
			return fmt.Errorf("delete browser sessions: %w", err)
		}
		if _, err := q.exec(ctx, "DELETE FROM passkeys WHERE host_key = ? AND user_id = ?", host, id); err != nil {
			return fmt.Errorf("delete passkeys: %w", err)
		}
		if err := deleteInvitations(ctx, q, "host_key = ? AND user_id = ?", host, id); err != nil {
			return err
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return fmt.Errorf("delete user %s/%s: %w", host, id, err)
	}
	return nil
}

// deleteUsers removes the users matching where, recording their tuples' deletion. Their agents
// and grants must be gone already.
func deleteUsers(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	users, err := selectUsers(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read users: %w", err)
	}
	for _, u := range users {
		cs.delete(userTuples(u)...)
		// A deleted human's dashboard sessions end with them.
		if _, err := q.exec(ctx, "DELETE FROM dashboard_sessions WHERE host_key = ? AND user_id = ?", u.Host, u.ID); err != nil {
			return fmt.Errorf("delete dashboard sessions: %w", err)
		}
	}
	if _, err := q.exec(ctx, "DELETE FROM users WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete users: %w", err)
	}
	return nil
}

// UpdateUser changes a human's name and admin flag; the email and the timestamps stay.
func (s *sqlStore) UpdateUser(ctx context.Context, u User) (User, error) {
	if err := validText("user name", u.Name); err != nil {
		return User{}, fmt.Errorf("update user %s/%s: %w", u.Host, u.ID, err)
	}
	at := now()
	var out User
	err := s.controlTx(ctx, func(q querier) error {
		old, err := scanUser(q.queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE host_key = ? AND id = ?", u.Host, u.ID))
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("user %s/%s: %w", u.Host, u.ID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, "UPDATE users SET name = ?, admin = ? WHERE host_key = ? AND id = ?",
			u.Name, u.Admin, u.Host, u.ID); err != nil {
			return err
		}
		out = old
		out.Name, out.Admin = u.Name, u.Admin
		var cs changeSet
		if out.Admin {
			cs.touch(schema.HostAdmin(out.Host, out.ID))
		} else if old.Admin {
			cs.delete(schema.HostAdmin(out.Host, out.ID))
		}
		return cs.write(ctx, q, at)
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %s/%s: %w", u.Host, u.ID, err)
	}
	return out, nil
}

// TouchUser records that the human was active at at. It writes only when the stored time is
// more than a minute older, so hot paths may call it on every request.
func (s *sqlStore) TouchUser(ctx context.Context, host, id string, at time.Time) error {
	if err := touch(ctx, s.db.q(), "users", "last_active_at", "host_key = ? AND id = ?", at, host, id); err != nil {
		return fmt.Errorf("touch user %s/%s: %w", host, id, err)
	}
	return nil
}

// touchInterval is how stale a last-activity time must be before a touch writes it.
const touchInterval = time.Minute

// touch sets column of the one row of table matching where to at, when the stored value is older
// than at minus touchInterval. It reads first, so the usual case (touched recently) writes
// nothing and, on SQLite, takes no write lock. It is ErrNotFound when no row matches.
func touch(ctx context.Context, q querier, table, column, where string, at time.Time, args ...any) error {
	if at.IsZero() {
		return invalid("activity time is zero")
	}
	ms := toMillis(normTime(at))
	threshold := ms - touchInterval.Milliseconds()
	var stored int64
	err := q.queryRow(ctx, "SELECT "+column+" FROM "+table+" WHERE "+where, args...).Scan(&stored)
	if errors.Is(err, errNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if stored >= threshold {
		return nil
	}
	// The same condition again: a concurrent touch may have written meanwhile, and the time
	// never moves back.
	_, err = q.exec(ctx, "UPDATE "+table+" SET "+column+" = ? WHERE "+where+" AND "+column+" < ?",
		append(append([]any{ms}, args...), threshold)...)
	return err
}
