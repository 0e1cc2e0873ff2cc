package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/trustgate/trustgate/schema"
)

const userColumns = "host_key, id, email, name, created_at"

func scanUser(r row) (User, error) {
	var u User
	var created int64
	if err := r.Scan(&u.Host, &u.ID, &u.Email, &u.Name, &created); err != nil {
		return User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
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
	err = s.db.writeTx(ctx, func(q querier) error {
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
		if _, err := q.exec(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?)",
			u.Host, u.ID, u.Email, u.Name, toMillis(u.CreatedAt)); err != nil {
			return writeErr(err)
		}
		var cs changeSet
		cs.touch(schema.HostMember(u.Host, u.ID))
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
	err := s.db.writeTx(ctx, func(q querier) error {
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
		if err := deleteGrants(ctx, q, &cs, "host_key = ? AND user_id = ?", host, id); err != nil {
			return err
		}
		if err := deleteUsers(ctx, q, &cs, "host_key = ? AND id = ?", host, id); err != nil {
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
		cs.delete(schema.HostMember(u.Host, u.ID))
	}
	if _, err := q.exec(ctx, "DELETE FROM users WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete users: %w", err)
	}
	return nil
}
