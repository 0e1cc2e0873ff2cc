package store

import (
	"context"
	"time"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/schema"
)

// HostSettings are a tenant's options. The zero value of each field means its default.
type HostSettings struct {
	// AllowedEmailDomains opens sign-up to emails of these domains; empty turns sign-up off
	// (the host's humans are those its admins add).
	AllowedEmailDomains []string `json:"allowed_email_domains"`
	// SignInDomains are the email domains that may sign in at all, whatever the method (empty:
	// every domain); each method's AuthMethod.AllowedDomains apply too.
	SignInDomains []string `json:"sign_in_domains,omitempty"`
	// DynamicMCPs lets humans connect servers by URL at consent time.
	DynamicMCPs bool `json:"dynamic_mcps"`
	// AutoEnableNewTools enables tools found by a sync at once instead of after review.
	AutoEnableNewTools bool `json:"auto_enable_new_tools"`
	// AccessTokenTTLSeconds is the lifetime of access tokens (default 3600).
	AccessTokenTTLSeconds int `json:"access_token_ttl_seconds,omitempty"`
	// SessionIdleTTLSeconds ends a gateway session unused this long (default 30 days).
	SessionIdleTTLSeconds int `json:"session_idle_ttl_seconds,omitempty"`
	// SessionMaxTTLSeconds ends a gateway session this long after consent (default 90 days).
	SessionMaxTTLSeconds int `json:"session_max_ttl_seconds,omitempty"`
	// ToolVisibility is "callable" (default: tools/list shows what the agent may call) or "all".
	ToolVisibility string `json:"tool_visibility,omitempty"`
	// AuditArguments stores (redacted) tool-call arguments in the audit log.
	AuditArguments bool `json:"audit_arguments"`
	// DenialFormat is how a denied tools/call is answered: DenialToolResult (default: a tool
	// result with isError that the model reads) or DenialJSONRPCError (a JSON-RPC error).
	DenialFormat string `json:"denial_format,omitempty"`
	// DLP is the result filter's settings: the mode (off by default), the detectors on and
	// the custom patterns (package dlp). A server's own mode wins over DLP.Mode.
	DLP dlp.Settings `json:"dlp"`
	// ArgumentValidation is whether a tools/call's arguments are checked against the tool's
	// approved input schema before it is forwarded: ArgumentValidationOn (the default, "") or
	// ArgumentValidationOff.
	ArgumentValidation string `json:"argument_validation,omitempty"`
	// RateLimits are the host's token buckets on tools/call (none: no limit).
	RateLimits []RateLimit `json:"rate_limits,omitempty"`
	// EmergencyStop, when set, denies every call on the host until it is lifted.
	EmergencyStop *EmergencyStop `json:"emergency_stop,omitempty"`
	// Webhook is the host's Slack-compatible incoming webhook (package webhook); nil: none.
	Webhook *HostWebhook `json:"webhook,omitempty"`
	// Anomaly is the host's anomaly flags policy (package anomaly); off until flags are set.
	Anomaly AnomalySettings `json:"anomaly"`
	// ApprovalRules say which tools/calls a person must approve before they are forwarded
	// (none: no call waits); the first rule that matches a call applies.
	ApprovalRules []ApprovalRule `json:"approval_rules,omitempty"`
}

// Bounds of an ApprovalRule's wait and standing approval.
const (
	DefaultApprovalTimeout = 2 * time.Minute
	MinApprovalTimeout     = 5 * time.Second
	MaxApprovalTimeout     = 15 * time.Minute
	MaxStandingHours       = 7 * 24
)

// ApprovalRule is one rule of a host's approval policy. It matches a tools/call when every
// field it sets matches: the tool's level at or above Level, the server, the tool (of that
// server) and the agent's type; at least one is set.
type ApprovalRule struct {
	Level     schema.Level `json:"level,omitempty"`
	Server    string       `json:"server,omitempty"`
	Tool      string       `json:"tool,omitempty"`
	AgentType string       `json:"agent_type,omitempty"`
	// Approvers are the emails of the host's humans who may approve (empty: the human who owns
	// the agent).
	Approvers []string `json:"approvers,omitempty"`
	// StandingHours > 0: an approval also stands for the same agent, server and tool for that
	// many hours (at most MaxStandingHours); 0 approves the one call.
	StandingHours int `json:"standing_hours,omitempty"`
	// TimeoutSeconds is how long a call waits for a decision before it is denied (0: the
	// default, DefaultApprovalTimeout; from MinApprovalTimeout to MaxApprovalTimeout).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// Timeout is how long a call under r waits for a decision.
func (r ApprovalRule) Timeout() time.Duration {
	if r.TimeoutSeconds == 0 {
		return DefaultApprovalTimeout
	}
	return time.Duration(r.TimeoutSeconds) * time.Second
}

// Matches reports whether r applies to a call of tool (at level) on server by an agent of
// agentType.
func (r ApprovalRule) Matches(level schema.Level, server, tool, agentType string) bool {
	return (r.Level == 0 || level >= r.Level) &&
		(r.Server == "" || r.Server == server) &&
		(r.Tool == "" || r.Tool == tool) &&
		(r.AgentType == "" || r.AgentType == agentType)
}

// AnomalySettings say which anomaly flags are raised on the host's tool calls, which of them
// are posted to the host's webhook, and which suspend the agent (its kill switch).
type AnomalySettings struct {
	// Flags raised (anomaly.Flags names them); none: anomaly detection is off.
	Flags []string `json:"flags,omitempty"`
	// Notify: the flags posted to the host's webhook; Suspend: the flags that suspend the agent.
	// Each must be in Flags.
	Notify  []string `json:"notify,omitempty"`
	Suspend []string `json:"suspend,omitempty"`
	// UsualHours is the host's window of usual hours; nil: learned from each human's history.
	UsualHours *UsualHours `json:"usual_hours,omitempty"`
	// RateFactor (default 10) and RateMinPerMinute (default 20): a rate spike is at least that
	// many calls in a minute and that many times the agent's average a minute over the hour
	// before. DenialStreak (default 5): denials in a row.
	RateFactor       float64 `json:"rate_factor,omitempty"`
	RateMinPerMinute int     `json:"rate_min_per_minute,omitempty"`
	DenialStreak     int     `json:"denial_streak,omitempty"`
}

// UsualHours is a daily window [Start, End) of hours in a time zone; Start > End wraps past
// midnight (22 to 6).
type UsualHours struct {
	Start    int    `json:"start"`
	End      int    `json:"end"`
	Timezone string `json:"timezone,omitempty"` // IANA name; "" is UTC
}

// Contains reports whether the hour (0-23, in the window's time zone) is in the window.
func (w UsualHours) Contains(hour int) bool {
	if w.Start <= w.End {
		return hour >= w.Start && hour < w.End
	}
	return hour >= w.Start || hour < w.End
}

// AnomalyFlagNames are the flags AnomalySettings may name (package anomaly's).
var AnomalyFlagNames = []string{"new_tool", "new_server", "off_hours", "rate_spike", "denial_streak"}

// HostWebhook is a host's incoming webhook: its URL sealed with the master key by the caller
// (webhook.SealURL), never shown again.
type HostWebhook struct {
	SealedURL []byte    `json:"sealed_url"`
	UpdatedAt time.Time `json:"updated_at"`
}

// maxSealedWebhookURL bounds a sealed webhook URL (a 2 KiB URL and the seal's overhead).
const maxSealedWebhookURL = 4096

// The scopes of a RateLimit: whose calls share one bucket.
const (
	RateScopeAgent     = "agent"      // each agent's calls
	RateScopeAgentTool = "agent_tool" // each agent's calls of each tool
	RateScopeHuman     = "human"      // the calls of all the agents of each human
	RateScopeHost      = "host"       // every call on the host
)

// RateLimit is one token bucket rule: PerMinute tokens a minute, at most Burst held (0: as many
// as PerMinute); each tools/call takes one token from the bucket of its scope. Server and Tool
// narrow the rule to one server or one of its tools; for each scope the most specific rule that
// matches a call applies (tool, then server, then the host's).
type RateLimit struct {
	Scope     string `json:"scope"`
	Server    string `json:"server,omitempty"`
	Tool      string `json:"tool,omitempty"`
	PerMinute int    `json:"per_minute"`
	Burst     int    `json:"burst,omitempty"`
}

// EmergencyStop is a host's emergency stop: since when, why, and who set it.
type EmergencyStop struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
}

// The values of HostSettings.ArgumentValidation ("" is ArgumentValidationOn).
const (
	ArgumentValidationOn  = "on"
	ArgumentValidationOff = "off"
)

// The denial formats of HostSettings.DenialFormat ("" is DenialToolResult).
const (
	DenialToolResult   = "tool_result"
	DenialJSONRPCError = "jsonrpc_error"
)

// APIToken is an admin API credential. Only its hash is stored; the token itself is shown once.
type APIToken struct {
	ID         string
	Host       string // "" for a global token
	Name       string
	Hash       string // hex SHA-256 of the token
	Prefix     string // the token's first characters, to recognise it in listings
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
	// Scope is TokenScopeAdmin or TokenScopeCheck.
	Scope string
}

// The scopes of an API token.
const (
	// TokenScopeAdmin administers its host (a global token: everything).
	TokenScopeAdmin = ""
	// TokenScopeCheck may only ask for decisions (the admin API's check routes).
	TokenScopeCheck = "check"
)

// Admin is the part of the Store the admin API needs beyond the core objects.
type Admin interface {
	// EnsureHost creates the host unless it exists, and returns the stored host: an existing
	// one unchanged, whatever h says. Processes starting together may all call it.
	EnsureHost(ctx context.Context, h Host) (Host, error)
	// UpdateHost changes a host's name and settings.
	UpdateHost(ctx context.Context, h Host) (Host, error)
	// UpdateServer changes a server's name, description, URL and credentials.
	UpdateServer(ctx context.Context, s Server) (Server, error)
	// UpdateUser changes a human's name and admin flag.
	UpdateUser(ctx context.Context, u User) (User, error)
	// UpdateAgent changes an agent's name and type.
	UpdateAgent(ctx context.Context, a Agent) (Agent, error)
	// KillAgent deletes every consent of the agent and disables it: a disabled agent has no
	// relationship at all, and no consent can be given to it until an admin enables it again.
	KillAgent(ctx context.Context, host, id string) (Agent, error)
	// TouchUser and TouchAgent record activity (at most once a minute is written).
	TouchUser(ctx context.Context, host, id string, at time.Time) error
	TouchAgent(ctx context.Context, host, id string, at time.Time) error

	CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error)
	GetAPITokenByHash(ctx context.Context, hash string) (APIToken, error)
	// ListAPITokens lists the tokens of a host, or the global ones when host is "".
	ListAPITokens(ctx context.Context, host string) ([]APIToken, error)
	DeleteAPIToken(ctx context.Context, id string) error
	TouchAPIToken(ctx context.Context, id string, at time.Time) error

	// SetUserPassword stores a human's password hash (a PHC string; "" removes the password);
	// ErrNotFound when the human does not exist. See passwords.go.
	SetUserPassword(ctx context.Context, host, id, phc string) error
	// GetUserPasswordHash returns a human's password hash, "" when none is set; ErrNotFound
	// when the human does not exist. The hash is never part of User.
	GetUserPasswordHash(ctx context.Context, host, id string) (string, error)
}
