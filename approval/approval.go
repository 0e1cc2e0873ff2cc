// Package approval is what happens around a tools/call that a host's approval policy holds for
// a person (the proxy holds it, see proxy/approval.go): its approvers are told by email, with
// signed one-click links, and through the host's incoming webhook; a link opens a confirm page
// (GET changes nothing, so mail scanners that fetch links decide nothing) whose form decides
// (POST); the admin API and the dashboard decide through Decide; and housekeeping expires the
// calls whose wait ended or whose replica went away (Sweep), each with its audit entry.
//
// A link is signed with HMAC-SHA256 under a key derived from the master key (every replica
// verifies it, compared in constant time), names its host, call, action and approver, and
// expires with the call; it decides at most once, because a held call is decided at most once.
package approval

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/webhook"
)

// The channels a held call is decided through (HeldCall.Channel, audit entries).
const (
	ChannelEmail       = "email"
	ChannelDashboard   = "dashboard"
	ChannelAPI         = "api"
	ChannelElicitation = "elicitation"
)

// Store is what the package reads and writes.
type Store interface {
	store.Approvals
	GetHost(ctx context.Context, key string) (store.Host, error)
	GetUser(ctx context.Context, host, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, host, email string) (store.User, error)
}

// Mailer sends one message (mail.Sender).
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// Webhooks posts to a host's incoming webhook without blocking (webhook.Sender).
type Webhooks interface {
	Notify(host string, msg webhook.Message) bool
}

// Config is what a Service needs.
type Config struct {
	Store Store
	URLs  tenant.URLs
	// LinkKey signs the links in the approvers' email (at least 32 bytes; the same on every
	// replica).
	LinkKey []byte
	// Mailer sends the approvers' email; nil: no email (the dashboard and API still decide).
	Mailer Mailer
	// Webhooks posts to hosts' incoming webhooks; nil: none.
	Webhooks Webhooks
	// Audit records the expiries Sweep finds; nil: not recorded.
	Audit  audit.Appender
	Logger *slog.Logger
	// DashboardURL is where the dashboard's pending approvals are (for the webhook's message);
	// "" leaves the link out.
	DashboardURL func(host string) string
}

// Service notifies approvers and decides held calls. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New checks cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.URLs.Public == nil || len(cfg.LinkKey) < 32 {
		return nil, errors.New("approval: Store, URLs and a 32-byte LinkKey are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log, now: time.Now}, nil
}

// Errors of Decide.
var (
	// ErrNotApprover: the person may not decide this call.
	ErrNotApprover = errors.New("not an approver of this call")
	// ErrDecided: the call was already decided, or it is no longer waiting (expired).
	ErrDecided = errors.New("the call was already decided or is no longer waiting")
)

// Approvers are the emails of who may decide c: the rule's approvers, or the agent's human.
func (s *Service) Approvers(ctx context.Context, c store.HeldCall) ([]string, error) {
	if len(c.Approvers) > 0 {
		return c.Approvers, nil
	}
	u, err := s.cfg.Store.GetUser(ctx, c.Host, c.UserID)
	if err != nil {
		return nil, fmt.Errorf("read the agent's human: %w", err)
	}
	return []string{u.Email}, nil
}

// MayDecide reports whether the person of email may decide c.
func (s *Service) MayDecide(ctx context.Context, c store.HeldCall, email string) (bool, error) {
	approvers, err := s.Approvers(ctx, c)
	if err != nil {
		return false, err
	}
	return slices.Contains(approvers, strings.ToLower(email)), nil
}

// Decide approves or denies the held call id of host as by, through channel. ErrDecided (which
// is also store.ErrConflict, as the admin API reads it): it was decided already or no longer
// waits (then nothing is forwarded).
func (s *Service) Decide(ctx context.Context, host, id string, approve bool, by, channel string) (store.HeldCall, error) {
	status := store.HeldDenied
	if approve {
		status = store.HeldApproved
	}
	c, err := s.cfg.Store.DecideHeldCall(ctx, host, id, status, by, channel, s.now())
	if errors.Is(err, store.ErrConflict) {
		return c, fmt.Errorf("%w (it is %s): %w", ErrDecided, c.Status, err)
	}
	return c, err
}

// NotifyHeld tells c's approvers: an email each with its own approve and deny links, and the
// host's webhook. Failures are logged: the call still waits, and can be decided on the
// dashboard or through the API.
func (s *Service) NotifyHeld(ctx context.Context, c store.HeldCall) {
	approvers, err := s.Approvers(ctx, c)
	if err != nil {
		s.log.Error("approval: cannot tell the approvers of a held call", "host", c.Host, "id", c.ID, "err", err)
		return
	}
	if s.cfg.Mailer != nil {
		for _, to := range approvers {
			if err := s.cfg.Mailer.Send(ctx, s.message(c, to)); err != nil {
				s.log.Error("approval: could not email an approver", "host", c.Host, "id", c.ID, "err", err)
			}
		}
	}
	if s.cfg.Webhooks != nil {
		text := fmt.Sprintf("%s wants to call %s on %s and waits for %s to approve it (until %s).",
			agentName(c), c.Tool, c.Server, strings.Join(approvers, ", "), c.ExpiresAt.UTC().Format("15:04:05 MST"))
		if s.cfg.DashboardURL != nil {
			text += " Pending approvals: " + s.cfg.DashboardURL(c.Host)
		}
		s.cfg.Webhooks.Notify(c.Host, webhook.Message{Text: text, Blocks: []any{webhook.Section(text)}})
	}
}

func agentName(c store.HeldCall) string {
	if c.AgentName != "" {
		return c.AgentName
	}
	return "Agent " + c.AgentID
}

// maxMailArguments bounds the arguments quoted in an email.
const maxMailArguments = 4 << 10

// message is the email to one approver.
func (s *Service) message(c store.HeldCall, to string) mail.Message {
	args := c.Arguments
	if args == "" {
		args = "{}"
	}
	if len(args) > maxMailArguments {
		args = args[:maxMailArguments] + " … (cut)"
	}
	body := fmt.Sprintf(`%s wants to call the tool %s on %s with these arguments:

%s

Approve: %s

Deny: %s

Each link opens a page that shows the call; nothing is decided until you press its button.
The call waits until %s; if nobody decides by then, it is denied.
`, agentName(c), c.Tool, c.Server, args,
		s.linkURL(c, "approve", to), s.linkURL(c, "deny", to), c.ExpiresAt.UTC().Format(time.RFC1123))
	return mail.Message{To: to, Subject: fmt.Sprintf("Approve %s on %s for %s?", c.Tool, c.Server, agentName(c)), Body: body}
}

// link is what a signed link carries.
type link struct {
	Host    string `json:"h"`
	Call    string `json:"c"`
	Action  string `json:"a"` // approve or deny
	Email   string `json:"e"`
	Expires int64  `json:"x"` // unix seconds
}

func (s *Service) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.LinkKey)
	m.Write([]byte("trustgate approval link\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

// linkToken signs a link.
func (s *Service) linkToken(l link) string {
	payload, _ := json.Marshal(l)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac(payload))
}

// linkURL is the approver's link to decide c with action.
func (s *Service) linkURL(c store.HeldCall, action, email string) string {
	return s.cfg.URLs.Base(c.Host) + LinkPath + s.linkToken(link{Host: c.Host, Call: c.ID, Action: action, Email: email, Expires: c.ExpiresAt.Unix()})
}

// maxLinkToken bounds a link's token.
const maxLinkToken = 2048

// Errors of a link.
var (
	errBadLink     = errors.New("this approval link is not valid")
	errExpiredLink = errors.New("this approval link has expired")
)

// readLink verifies a token for host.
func (s *Service) readLink(host, token string) (link, error) {
	if len(token) > maxLinkToken {
		return link{}, errBadLink
	}
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return link{}, errBadLink
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(payload)) {
		return link{}, errBadLink
	}
	var l link
	if err := json.Unmarshal(payload, &l); err != nil || l.Host != host || (l.Action != "approve" && l.Action != "deny") {
		return link{}, errBadLink
	}
	if !s.now().Before(time.Unix(l.Expires, 0)) {
		return link{}, errExpiredLink
	}
	return l, nil
}

// Sweep expires the held calls no longer waiting (their wait ended, or the replica holding
// them went away) and records each expiry; run at start and periodically.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	expired, err := s.cfg.Store.ExpireHeldCalls(ctx, s.now())
	if err != nil {
		return 0, err
	}
	for _, c := range expired {
		s.log.Info("approval: a held call expired without its holder (restart or timeout); it was not forwarded", "host", c.Host, "id", c.ID)
		if s.cfg.Audit != nil {
			s.cfg.Audit.Record(audit.Entry{Host: c.Host, Time: s.now(), Decision: audit.Approval, Action: "expired",
				UserID: c.UserID, AgentID: c.AgentID, ClientName: c.AgentName, Server: c.Server, Tool: c.Tool, Method: "tools/call",
				Object: "held_call:" + c.ID, Reason: "not decided while its request waited (the gateway restarted or the wait ended); not forwarded"})
		}
	}
	return len(expired), nil
}
