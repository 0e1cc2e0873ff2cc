package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Calls held for a person's approval (the host's approval policy, ApprovalRule) and the
// standing approvals that let an agent's calls of a tool through for some hours. The replica
// that holds a client's request waits on its row and renews its heartbeat (SeenAt); any replica
// may decide it. Only a pending call changes, once; a call whose wait ended or whose holder
// went away is expired, never approved.

// The states of a held call.
const (
	HeldPending  = "pending"
	HeldApproved = "approved"
	HeldDenied   = "denied"
	HeldExpired  = "expired"
)

// HeldHeartbeatStale is how old a pending call's heartbeat may be before the call counts as
// abandoned (its replica went away): it is expired, never approved.
const HeldHeartbeatStale = 15 * time.Second

// heldKeep is how long decided calls are kept (for the approvers' links and pages) before
// they are pruned.
const heldKeep = 24 * time.Hour

// Bounds of a held call.
const (
	maxHeldArguments = 64 << 10
	maxHeldID        = 64
)

// HeldCall is a tools/call waiting for (or decided by) a person.
type HeldCall struct {
	ID        string
	Host      string
	AgentID   string
	AgentName string
	UserID    string // the agent's human
	Server    string
	Tool      string
	// Arguments are the call's arguments as JSON text while it is pending ("" once decided).
	Arguments string
	// Approvers are the emails of who may decide (empty: the agent's human).
	Approvers     []string
	StandingHours int
	Status        string
	// DecidedBy names who decided (an email, or "" for an expiry); Channel how (email,
	// dashboard, api, elicitation).
	DecidedBy, Channel string
	CreatedAt          time.Time
	ExpiresAt          time.Time
	SeenAt             time.Time
	DecidedAt          time.Time
}

// StandingApproval lets an agent's calls of one tool through without holding them until
// ExpiresAt.
type StandingApproval struct {
	Host, AgentID, Server, Tool string
	ApprovedBy                  string
	CreatedAt, ExpiresAt        time.Time
}

// Approvals is the store's part for held calls and standing approvals.
type Approvals interface {
	// CreateHeldCall stores a new pending call (ErrNotFound: no such host; ErrConflict: the
	// id is taken).
	CreateHeldCall(ctx context.Context, c HeldCall) (HeldCall, error)
	GetHeldCall(ctx context.Context, host, id string) (HeldCall, error)
	// ListHeldCalls lists the host's pending calls still waiting at now, oldest first.
	ListHeldCalls(ctx context.Context, host string, now time.Time) ([]HeldCall, error)
	// HeartbeatHeldCall records that the call's holder still waits (when it is pending) and
	// returns the call.
	HeartbeatHeldCall(ctx context.Context, host, id string, now time.Time) (HeldCall, error)
	// DecideHeldCall sets a pending call's outcome (HeldApproved, HeldDenied or HeldExpired),
	// once. A call that is no longer waiting at now (its wait ended, or its holder went away)
	// cannot be approved or denied: it is expired instead and the answer is ErrConflict with
	// the call as it is now. Approving a call with StandingHours stores the standing approval
	// in the same transaction.
	DecideHeldCall(ctx context.Context, host, id, status, by, channel string, now time.Time) (HeldCall, error)
	// ExpireHeldCalls expires every pending call no longer waiting at now and returns them;
	// decided calls older than a day and expired standing approvals are pruned on the way.
	ExpireHeldCalls(ctx context.Context, now time.Time) ([]HeldCall, error)

	// StandingApprovalFor is the approval standing at now for the agent's calls of tool on
	// server (ErrNotFound: none).
	StandingApprovalFor(ctx context.Context, host, agentID, server, tool string, now time.Time) (StandingApproval, error)
	// ListStandingApprovals lists the host's approvals standing at now.
	ListStandingApprovals(ctx context.Context, host string, now time.Time) ([]StandingApproval, error)
	// DeleteStandingApproval revokes one (ErrNotFound: none).
	DeleteStandingApproval(ctx context.Context, host, agentID, server, tool string) error
}

const heldColumns = "id, host_key, agent_id, agent_name, user_id, server_key, tool, arguments, approvers, standing_hours, status, decided_by, channel, created_at, expires_at, seen_at, decided_at"

func scanHeld(r interface{ Scan(...any) error }) (HeldCall, error) {
	var c HeldCall
	var approvers string
	var created, expires, seen, decided int64
	if err := r.Scan(&c.ID, &c.Host, &c.AgentID, &c.AgentName, &c.UserID, &c.Server, &c.Tool, &c.Arguments, &approvers,
		&c.StandingHours, &c.Status, &c.DecidedBy, &c.Channel, &created, &expires, &seen, &decided); err != nil {
		return HeldCall{}, err
	}
	if approvers != "" {
		if err := json.Unmarshal([]byte(approvers), &c.Approvers); err != nil {
			return HeldCall{}, fmt.Errorf("held call %s: approvers: %w", c.ID, err)
		}
	}
	c.CreatedAt, c.ExpiresAt, c.SeenAt, c.DecidedAt = fromMillis(created), fromMillis(expires), fromMillis(seen), fromMillisOpt(decided)
	return c, nil
}

// waiting reports whether a pending call still waits at now.
func (c HeldCall) waiting(now time.Time) bool {
	return c.Status == HeldPending && now.Before(c.ExpiresAt) && now.Sub(c.SeenAt) <= HeldHeartbeatStale
}

func (s *sqlStore) CreateHeldCall(ctx context.Context, c HeldCall) (HeldCall, error) {
	err := firstErr(validHostKey(c.Host), boundedText("held call id", c.ID, maxHeldID),
		validText("agent name", c.AgentName), validText("tool", c.Tool))
	if err == nil && (c.AgentID == "" || c.UserID == "" || c.Server == "" || c.Tool == "") {
		err = invalid("a held call needs its agent, human, server and tool")
	}
	if err == nil && len(c.Arguments) > maxHeldArguments {
		err = invalid("arguments of %d bytes: want at most %d", len(c.Arguments), maxHeldArguments)
	}
	if err == nil && c.Arguments != "" && !json.Valid([]byte(c.Arguments)) {
		err = invalid("arguments are not JSON")
	}
	if err == nil && !c.ExpiresAt.After(c.CreatedAt) {
		err = invalid("a held call must expire after it is created")
	}
	if err != nil {
		return HeldCall{}, fmt.Errorf("hold call: %w", err)
	}
	approvers := ""
	if len(c.Approvers) > 0 {
		b, _ := json.Marshal(c.Approvers)
		approvers = string(b)
	}
	c.Status, c.DecidedBy, c.Channel, c.DecidedAt = HeldPending, "", "", time.Time{}
	c.CreatedAt, c.ExpiresAt = normTime(c.CreatedAt), normTime(c.ExpiresAt)
	c.SeenAt = c.CreatedAt
	err = s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, c.Host); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO held_calls ("+heldColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, 0)",
			c.ID, c.Host, c.AgentID, c.AgentName, c.UserID, c.Server, c.Tool, c.Arguments, approvers, c.StandingHours, c.Status,
			toMillis(c.CreatedAt), toMillis(c.ExpiresAt), toMillis(c.SeenAt))
		return writeErr(err)
	})
	if err != nil {
		return HeldCall{}, fmt.Errorf("hold call in %s: %w", c.Host, err)
	}
	return c, nil
}

func getHeld(ctx context.Context, q querier, host, id string) (HeldCall, error) {
	c, err := scanHeld(q.queryRow(ctx, "SELECT "+heldColumns+" FROM held_calls WHERE host_key = ? AND id = ?", host, id))
	if errors.Is(err, errNoRows) {
		return HeldCall{}, ErrNotFound
	}
	return c, err
}

func (s *sqlStore) GetHeldCall(ctx context.Context, host, id string) (HeldCall, error) {
	c, err := getHeld(ctx, s.db.q(), host, id)
	if err != nil {
		return HeldCall{}, fmt.Errorf("held call %s in %s: %w", id, host, err)
	}
	return c, nil
}

func (s *sqlStore) ListHeldCalls(ctx context.Context, host string, now time.Time) ([]HeldCall, error) {
	rs, err := s.db.q().query(ctx, "SELECT "+heldColumns+" FROM held_calls WHERE host_key = ? AND status = ? ORDER BY created_at, id", host, HeldPending)
	if err != nil {
		return nil, fmt.Errorf("list held calls in %s: %w", host, err)
	}
	defer rs.Close()
	var out []HeldCall
	for rs.Next() {
		c, err := scanHeld(rs)
		if err != nil {
			return nil, err
		}
		if c.waiting(now) {
			out = append(out, c)
		}
	}
	return out, rs.Err()
}

func (s *sqlStore) HeartbeatHeldCall(ctx context.Context, host, id string, now time.Time) (HeldCall, error) {
	if _, err := s.db.q().exec(ctx, "UPDATE held_calls SET seen_at = ? WHERE host_key = ? AND id = ? AND status = ?",
		toMillis(now), host, id, HeldPending); err != nil {
		return HeldCall{}, fmt.Errorf("held call %s in %s: %w", id, host, err)
	}
	return s.GetHeldCall(ctx, host, id)
}

func (s *sqlStore) DecideHeldCall(ctx context.Context, host, id, status, by, channel string, now time.Time) (HeldCall, error) {
	switch status {
	case HeldApproved, HeldDenied, HeldExpired:
	default:
		return HeldCall{}, fmt.Errorf("decide held call: %w", invalid("status %q", status))
	}
	if err := firstErr(validText("decided by", by), validText("channel", channel)); err != nil {
		return HeldCall{}, fmt.Errorf("decide held call: %w", err)
	}
	var out HeldCall
	var late bool
	err := s.db.writeTx(ctx, func(q querier) error {
		late = false
		c, err := getHeld(ctx, q, host, id)
		if err != nil {
			return err
		}
		if c.Status != HeldPending {
			out = c
			return fmt.Errorf("already %s: %w", c.Status, ErrConflict)
		}
		if status != HeldExpired && !c.waiting(now) {
			status, by, channel, late = HeldExpired, "", "", true
		}
		c.Status, c.DecidedBy, c.Channel, c.DecidedAt, c.Arguments = status, by, channel, normTime(now), ""
		if _, err := q.exec(ctx, "UPDATE held_calls SET status = ?, decided_by = ?, channel = ?, decided_at = ?, arguments = '' WHERE host_key = ? AND id = ? AND status = ?",
			c.Status, c.DecidedBy, c.Channel, toMillis(now), host, id, HeldPending); err != nil {
			return err
		}
		if status == HeldApproved && c.StandingHours > 0 {
			if _, err := q.exec(ctx, "DELETE FROM standing_approvals WHERE host_key = ? AND agent_id = ? AND server_key = ? AND tool = ?",
				host, c.AgentID, c.Server, c.Tool); err != nil {
				return err
			}
			if _, err := q.exec(ctx, "INSERT INTO standing_approvals (host_key, agent_id, server_key, tool, approved_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				host, c.AgentID, c.Server, c.Tool, by, toMillis(now), toMillis(now.Add(time.Duration(c.StandingHours)*time.Hour))); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	if err == nil && late {
		err = fmt.Errorf("no longer waiting: %w", ErrConflict)
	}
	if err != nil {
		return out, fmt.Errorf("decide held call %s in %s: %w", id, host, err)
	}
	return out, nil
}

func (s *sqlStore) ExpireHeldCalls(ctx context.Context, now time.Time) ([]HeldCall, error) {
	var out []HeldCall
	err := s.db.writeTx(ctx, func(q querier) error {
		out = nil
		rs, err := q.query(ctx, "SELECT "+heldColumns+" FROM held_calls WHERE status = ? AND (expires_at <= ? OR seen_at < ?)",
			HeldPending, toMillis(now), toMillis(now.Add(-HeldHeartbeatStale)))
		if err != nil {
			return err
		}
		for rs.Next() {
			c, err := scanHeld(rs)
			if err != nil {
				rs.Close()
				return err
			}
			out = append(out, c)
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return err
		}
		for i, c := range out {
			if _, err := q.exec(ctx, "UPDATE held_calls SET status = ?, decided_at = ?, arguments = '' WHERE host_key = ? AND id = ? AND status = ?",
				HeldExpired, toMillis(now), c.Host, c.ID, HeldPending); err != nil {
				return err
			}
			out[i].Status, out[i].DecidedAt, out[i].Arguments = HeldExpired, normTime(now), ""
		}
		if _, err := q.exec(ctx, "DELETE FROM held_calls WHERE status <> ? AND decided_at < ?", HeldPending, toMillis(now.Add(-heldKeep))); err != nil {
			return err
		}
		_, err = q.exec(ctx, "DELETE FROM standing_approvals WHERE expires_at <= ?", toMillis(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expire held calls: %w", err)
	}
	return out, nil
}

func scanStanding(r interface{ Scan(...any) error }) (StandingApproval, error) {
	var a StandingApproval
	var created, expires int64
	if err := r.Scan(&a.Host, &a.AgentID, &a.Server, &a.Tool, &a.ApprovedBy, &created, &expires); err != nil {
		return StandingApproval{}, err
	}
	a.CreatedAt, a.ExpiresAt = fromMillis(created), fromMillis(expires)
	return a, nil
}

const standingColumns = "host_key, agent_id, server_key, tool, approved_by, created_at, expires_at"

func (s *sqlStore) StandingApprovalFor(ctx context.Context, host, agentID, server, tool string, now time.Time) (StandingApproval, error) {
	a, err := scanStanding(s.db.q().queryRow(ctx, "SELECT "+standingColumns+" FROM standing_approvals WHERE host_key = ? AND agent_id = ? AND server_key = ? AND tool = ? AND expires_at > ?",
		host, agentID, server, tool, toMillis(now)))
	if errors.Is(err, errNoRows) {
		return StandingApproval{}, ErrNotFound
	}
	if err != nil {
		return StandingApproval{}, fmt.Errorf("standing approval in %s: %w", host, err)
	}
	return a, nil
}

func (s *sqlStore) ListStandingApprovals(ctx context.Context, host string, now time.Time) ([]StandingApproval, error) {
	rs, err := s.db.q().query(ctx, "SELECT "+standingColumns+" FROM standing_approvals WHERE host_key = ? AND expires_at > ? ORDER BY agent_id, server_key, tool",
		host, toMillis(now))
	if err != nil {
		return nil, fmt.Errorf("list standing approvals in %s: %w", host, err)
	}
	defer rs.Close()
	var out []StandingApproval
	for rs.Next() {
		a, err := scanStanding(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rs.Err()
}

func (s *sqlStore) DeleteStandingApproval(ctx context.Context, host, agentID, server, tool string) error {
	n, err := s.db.q().exec(ctx, "DELETE FROM standing_approvals WHERE host_key = ? AND agent_id = ? AND server_key = ? AND tool = ?", host, agentID, server, tool)
	if err != nil {
		return fmt.Errorf("revoke standing approval in %s: %w", host, err)
	}
	if n == 0 {
		return fmt.Errorf("standing approval of %s for %s/%s in %s: %w", agentID, server, tool, host, ErrNotFound)
	}
	return nil
}
