package sdk

import (
	"encoding/json"
	"time"
)

// The JSON documents of the admin API. They are the contract of /api/v1 (its OpenAPI document
// is served at /api/v1/openapi.json); the gateway's admin API serves these very types, and the
// Client sends and reads them.

// Page is one page of a list. NextCursor is empty on the last page; pass it as ?cursor= to get
// the next one.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Problem is an RFC 9457 problem details document, the body of every error response.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Instance identifies this occurrence (the request id, also in the gateway's logs).
	Instance string `json:"instance,omitempty"`
	// Field names the value the problem is about, when it is about one: a path in the request's
	// document such as "approval_rules[2].timeout_seconds" (of a host's settings).
	Field string `json:"field,omitempty" jsonschema:"the value the problem is about, when it is about one: a path such as approval_rules[2].timeout_seconds (in a host's settings)"`
}

// HostSettings are a tenant's options.
type HostSettings struct {
	AllowedEmailDomains   []string `json:"allowed_email_domains"`
	SignInDomains         []string `json:"sign_in_domains" jsonschema:"email domains that may sign in at all, whatever the method (empty: every domain); each method's allowed_domains apply too"`
	DynamicMCPs           bool     `json:"dynamic_mcps"`
	AutoEnableNewTools    bool     `json:"auto_enable_new_tools"`
	AccessTokenTTLSeconds int      `json:"access_token_ttl_seconds"`
	SessionIdleTTLSeconds int      `json:"session_idle_ttl_seconds"`
	SessionMaxTTLSeconds  int      `json:"session_max_ttl_seconds"`
	ToolVisibility        string   `json:"tool_visibility"`
	AuditArguments        bool     `json:"audit_arguments"`
	DenialFormat          string   `json:"denial_format" jsonschema:"how a denied tools/call is answered: tool_result (a CallToolResult with isError: true, the default) or jsonrpc_error (a JSON-RPC error, code -31001)"`
	// DLP is the result filter: what the gateway does with tool results that carry secrets or
	// personal data.
	DLP                DLPSettings `json:"dlp"`
	ArgumentValidation string      `json:"argument_validation" jsonschema:"on (the default): a tools/call whose arguments do not fit the tool's approved inputSchema is refused (reason invalid_arguments); off: arguments are not checked"`
	RateLimits         []RateLimit `json:"rate_limits" jsonschema:"token buckets on tools/call; a call over a limit is refused (reason rate_limited) with retry_after"`
	// EmergencyStop is set while the host is stopped (StopHost; LiftHostStop lifts it).
	EmergencyStop *EmergencyStop `json:"emergency_stop,omitempty" jsonschema:"set while every call on the host is refused (reason emergency_stop)"`
	// Anomaly is the host's anomaly flags policy.
	Anomaly AnomalySettings `json:"anomaly" jsonschema:"which anomaly flags are raised on tool calls, posted to the webhook, and suspend the agent"`
	// Webhook says whether the host has an incoming webhook; its URL is never shown.
	Webhook WebhookStatus `json:"webhook" jsonschema:"the host's Slack-compatible incoming webhook: set or not (its URL is a secret and is never returned)"`
	// ApprovalRules are the host's approval policy: the tools/calls a person must approve.
	ApprovalRules []ApprovalRule `json:"approval_rules" jsonschema:"the calls a person must approve before they are forwarded; the first rule that matches a call applies"`
}

// ApprovalRule is one rule of a host's approval policy: it holds a tools/call that matches every
// field it sets, until a person approves it.
type ApprovalRule struct {
	Level          string   `json:"level,omitempty" jsonschema:"calls of tools at this level or above: low, medium or high"`
	Server         string   `json:"server,omitempty" jsonschema:"calls to this server"`
	Tool           string   `json:"tool,omitempty" jsonschema:"calls of this tool (of server)"`
	AgentType      string   `json:"agent_type,omitempty" jsonschema:"calls by agents of this type: chat, proactive or ambient"`
	Approvers      []string `json:"approvers,omitempty" jsonschema:"emails of who may approve (at most 20); empty: the human who owns the agent"`
	StandingHours  int      `json:"standing_hours,omitempty" jsonschema:"0: approve the one call; N (up to 168): an approval also lets the agent's calls of that tool through for N hours"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty" jsonschema:"how long a call waits for a decision before it is denied (approval_timed_out): 5 to 900, default 120"`
}

// HeldCall is a tools/call waiting for a person's approval.
type HeldCall struct {
	ID        string          `json:"id"`
	Agent     string          `json:"agent"`
	AgentName string          `json:"agent_name,omitempty"`
	Human     string          `json:"human" jsonschema:"the id of the human who owns the agent"`
	Server    string          `json:"server"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments,omitempty" jsonschema:"the call's arguments while it waits"`
	Approvers []string        `json:"approvers" jsonschema:"who may decide it"`
	Status    string          `json:"status" jsonschema:"pending, approved, denied or expired"`
	DecidedBy string          `json:"decided_by,omitempty"`
	Channel   string          `json:"channel,omitempty" jsonschema:"how it was decided: email, dashboard, api or elicitation"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// StandingApproval lets an agent's calls of one tool through without approval until it ends.
type StandingApproval struct {
	Agent      string    `json:"agent"`
	Server     string    `json:"server"`
	Tool       string    `json:"tool"`
	ApprovedBy string    `json:"approved_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// AnomalySettings are a host's anomaly flags policy: the flags raised on tool calls (audit entry,
// metric), those posted to the host's webhook, and those that suspend the agent.
type AnomalySettings struct {
	Flags   []string `json:"flags" jsonschema:"flags raised (none: off): new_tool, new_server, off_hours, rate_spike, denial_streak"`
	Notify  []string `json:"notify" jsonschema:"flags posted to the host's webhook (each in flags)"`
	Suspend []string `json:"suspend" jsonschema:"flags that suspend the agent as its kill switch does (each in flags)"`
	// UsualHours is the host's window; nil: learned from each human's last two weeks.
	UsualHours       *UsualHours `json:"usual_hours,omitempty" jsonschema:"the usual hours of the host's humans; absent: learned from each human's calls of the last two weeks"`
	RateFactor       float64     `json:"rate_factor,omitempty" jsonschema:"rate_spike: calls in the last minute at least this many times the agent's average a minute over the hour before (default 10)"`
	RateMinPerMinute int         `json:"rate_min_per_minute,omitempty" jsonschema:"rate_spike: and at least this many calls in the last minute (default 20)"`
	DenialStreak     int         `json:"denial_streak,omitempty" jsonschema:"denial_streak: this many denied tool calls in a row (default 5)"`
}

// UsualHours is a daily window [start, end) in a time zone (start > end wraps past midnight).
type UsualHours struct {
	Start    int    `json:"start" jsonschema:"first hour (0-23)"`
	End      int    `json:"end" jsonschema:"hour the window ends (1-24)"`
	Timezone string `json:"timezone,omitempty" jsonschema:"IANA time zone (default UTC)"`
}

// WebhookStatus says whether a host's incoming webhook is set, and since when.
type WebhookStatus struct {
	Set       bool       `json:"set"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// WebhookSet sets a host's incoming webhook.
type WebhookSet struct {
	URL string `json:"url" jsonschema:"a Slack-compatible incoming webhook URL (https; plain http only to the networks the operator allowed with --upstream-allow-cidr), at most 2048 bytes; stored sealed, never returned"`
}

// WebhookTestResult is the outcome of one test message.
type WebhookTestResult struct {
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty" jsonschema:"why the message was not delivered (never the URL)"`
}

// DLPSettings are a host's result filter (DLP) settings.
type DLPSettings struct {
	// Mode is the host's mode; a server's dlp_mode wins over it.
	Mode string `json:"mode" jsonschema:"off (the default: results pass unchanged), redact (each finding becomes [redacted:<kind>]) or block (a result with a finding is replaced by a denial, reason result_blocked)"`
	// Kinds are the built-in detectors on; empty: all of them.
	Kinds []string `json:"kinds" jsonschema:"the built-in detectors on (empty: all): aws_access_key_id, aws_secret_access_key, private_key, github_token, slack_token, jwt, bearer_token, connection_string, email, card_number, iban, phone"`
	// Patterns are custom detectors, on in addition to Kinds.
	Patterns []DLPPattern `json:"patterns" jsonschema:"custom detectors (at most 32), on in addition to kinds"`
}

// DLPPattern is a custom detector: an RE2 regular expression whose matches are redacted as
// [redacted:<name>].
type DLPPattern struct {
	Name   string `json:"name" jsonschema:"1-32 of [a-z0-9_], starting with a letter; not a built-in kind"`
	Regexp string `json:"regexp" jsonschema:"an RE2 regular expression (Go syntax), at most 1024 bytes, that does not match the empty string"`
}

// RateLimit is one token bucket rule of a host: PerMinute tokens a minute, at most Burst held
// (0: as many as PerMinute); each tools/call takes one token from the bucket of its scope.
// Server, and Tool with it, narrow the rule; for each scope the most specific matching rule
// applies (tool, then server, then the host's).
type RateLimit struct {
	Scope     string `json:"scope" jsonschema:"agent (each agent), agent_tool (each agent and tool), human (all the agents of each human) or host (every call on the host)"`
	Server    string `json:"server,omitempty" jsonschema:"only calls to this server"`
	Tool      string `json:"tool,omitempty" jsonschema:"only calls of this tool of server"`
	PerMinute int    `json:"per_minute" jsonschema:"tokens added per minute (1 to 1000000)"`
	Burst     int    `json:"burst,omitempty" jsonschema:"most tokens held at once; 0: per_minute"`
}

// EmergencyStop is a host's emergency stop.
type EmergencyStop struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	// By names who stopped the host (their API token).
	By string `json:"by,omitempty"`
}

// EmergencyStopRequest stops every call on a host.
type EmergencyStopRequest struct {
	Reason string `json:"reason,omitempty" jsonschema:"shown to agents and in the audit log (at most 1024 bytes)"`
}

// HostSettingsPatch changes only the settings that are set.
type HostSettingsPatch struct {
	AllowedEmailDomains   *[]string `json:"allowed_email_domains,omitempty"`
	SignInDomains         *[]string `json:"sign_in_domains,omitempty"`
	DynamicMCPs           *bool     `json:"dynamic_mcps,omitempty"`
	AutoEnableNewTools    *bool     `json:"auto_enable_new_tools,omitempty"`
	AccessTokenTTLSeconds *int      `json:"access_token_ttl_seconds,omitempty"`
	SessionIdleTTLSeconds *int      `json:"session_idle_ttl_seconds,omitempty"`
	SessionMaxTTLSeconds  *int      `json:"session_max_ttl_seconds,omitempty"`
	ToolVisibility        *string   `json:"tool_visibility,omitempty"`
	AuditArguments        *bool     `json:"audit_arguments,omitempty"`
	DenialFormat          *string   `json:"denial_format,omitempty" jsonschema:"tool_result or jsonrpc_error"`
	// DLP replaces the result filter's settings whole.
	DLP                *DLPSettings     `json:"dlp,omitempty" jsonschema:"the result filter's settings, replaced whole"`
	ArgumentValidation *string          `json:"argument_validation,omitempty" jsonschema:"on or off"`
	RateLimits         *[]RateLimit     `json:"rate_limits,omitempty" jsonschema:"replaces every rate limit of the host ([] removes them)"`
	Anomaly            *AnomalySettings `json:"anomaly,omitempty" jsonschema:"replaces the host's anomaly flags policy ({} turns it off)"`
	ApprovalRules      *[]ApprovalRule  `json:"approval_rules,omitempty" jsonschema:"replaces the host's approval policy ([] removes it)"`
}

// Host is a tenant.
type Host struct {
	Key      string       `json:"key"`
	Name     string       `json:"name"`
	Settings HostSettings `json:"settings"`
	// MCPURL is the URL MCP clients connect to for this host.
	MCPURL string `json:"mcp_url"`
	// Clients holds ready-to-paste client configuration, keyed by client:
	// "cursor", "claude_desktop", "vscode", "claude_code".
	Clients   map[string]ClientConfig `json:"clients,omitempty"`
	CreatedAt time.Time               `json:"created_at"`
	// SetAsideChanges counts the host's relationship changes the authorization backend refused
	// for good (see SetAsideChange): while it is not 0, every call on the host is refused
	// (reason pending_change).
	SetAsideChanges int `json:"set_aside_changes" jsonschema:"how many of the host's relationship changes the authorization backend refused for good; while not 0 every call on the host is refused (reason pending_change) until they are retried or discarded (GET set-aside-changes)"`
	// RelationshipsBehind says that the replica that answered refuses every call on the host
	// now because the authorization backend has not applied its relationship changes: a change
	// set aside, a drain that failed, or a change pending longer than the bound. It clears
	// itself once they are applied (but for changes set aside, which need an operator).
	RelationshipsBehind bool `json:"relationships_behind" jsonschema:"true while the replica that answered refuses every call on the host (reason pending_change) because the authorization backend has not applied its relationship changes: a change set aside, a failed drain, or a change pending longer than --relationships-behind-after"`
}

// SetAsideChange is a relationship change the authorization backend refused for good (its
// schema does not accept the relationship, or a precondition failed), set aside so that the
// changes made after it are applied. While a host has one, every call on the host is refused
// (reason pending_change) until it is retried or discarded.
type SetAsideChange struct {
	ID           int64     `json:"id"`
	Op           string    `json:"op" jsonschema:"touch (write the relationship) or delete (remove it)"`
	Relationship string    `json:"relationship" jsonschema:"the relationship, as resource#relation@subject with its caveat if any"`
	CreatedAt    time.Time `json:"created_at" jsonschema:"when the change was made"`
	SetAsideAt   time.Time `json:"set_aside_at" jsonschema:"when the authorization backend refused it"`
	Reason       string    `json:"reason" jsonschema:"the authorization backend's refusal"`
}

// SetAsideRetry is what retrying a set-aside change did.
type SetAsideRetry struct {
	// Change is the change taken out of the set-aside list.
	Change SetAsideChange `json:"change"`
	// Queued is what was queued for its relationship: touch when the store implies the
	// relationship now, else delete (the old change itself is not replayed over newer ones).
	Queued string `json:"queued" jsonschema:"what was queued for the relationship: touch when the store implies it now, else delete"`
	// SetAsideAgain is the queued change when the authorization backend refused it too: it is
	// set aside again (with its own id) and the host still refuses every call.
	SetAsideAgain *SetAsideChange `json:"set_aside_again,omitempty" jsonschema:"the queued change, when the authorization backend refused it too and it was set aside again"`
}

// ClientConfig tells how to point one MCP client at the host.
type ClientConfig struct {
	// Where the snippet goes: a file path or "shell".
	Where   string `json:"where"`
	Snippet string `json:"snippet"`
}

// HostCreate creates a host. Unless Exact, a random two-word-and-number suffix is appended to
// Key ("acme" → "acme-round-moccasin-19").
type HostCreate struct {
	Key      string             `json:"key"`
	Exact    bool               `json:"exact,omitempty"`
	Name     string             `json:"name,omitempty"`
	Settings *HostSettingsPatch `json:"settings,omitempty"`
}

// HostUpdate changes a host.
type HostUpdate struct {
	Name     *string            `json:"name,omitempty"`
	Settings *HostSettingsPatch `json:"settings,omitempty"`
}

// CredentialHeader is a static header sent to the upstream with every call.
type CredentialHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// OAuthClient is a client registered at the upstream's authorization server.
type OAuthClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// Server is an upstream MCP server. Credentials are never returned.
type Server struct {
	Key            string `json:"key"`
	Name           string `json:"name"`
	Description    string `json:"description"`
	URL            string `json:"url"`
	CredentialKind string `json:"credential_kind"` // "", "header" or "oauth_client"
	Tools          int    `json:"tools"`
	EnabledTools   int    `json:"enabled_tools"`
	FlaggedTools   int    `json:"flagged_tools"`
	// Network is what addresses the gateway may connect to for the server: "host" (public
	// addresses and the networks the operator allows hosts, --upstream-allow-cidr) or "any".
	Network string `json:"network"`
	// DLPMode is the server's result filter mode: off, redact, block, or "" to follow the
	// host's settings.dlp.mode.
	DLPMode string `json:"dlp_mode" jsonschema:"off, redact, block, or empty to follow the host's settings.dlp.mode"`
	Timeouts
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ServerImport imports an upstream MCP server: the gateway connects to URL, lists its tools and
// classifies them. With DryRun nothing is saved. Key defaults to a slug of the server's name.
type ServerImport struct {
	URL         string            `json:"url"`
	Key         string            `json:"key,omitempty"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Header      *CredentialHeader `json:"header,omitempty"`
	// OAuthClient is the gateway's client at the upstream's authorization server, for servers
	// that want each human's own sign-in (made at consent). A server that answers 401 is then
	// imported without tools; they are discovered when the first human has signed in to it.
	OAuthClient *OAuthClient `json:"oauth_client,omitempty"`
	// UpstreamSignIn says the server wants each human's own sign-in and has no client stored
	// for it: at consent the gateway registers itself at the server's authorization server
	// (RFC 7591) and sends the human there. A server that answers 401 is then imported
	// without tools, as with OAuthClient.
	UpstreamSignIn bool `json:"upstream_sign_in,omitempty" jsonschema:"each human signs in at the server at consent, the gateway registering itself at its authorization server; a server that answers 401 is imported without tools (not with header)"`
	// DiscoveryToken is an access token of the admin's own at the server (with OAuthClient or
	// UpstreamSignIn), sent to this import's discovery only and never stored: the tools are
	// discovered (and can be reviewed) now rather than at the first human's sign-in.
	DiscoveryToken string `json:"discovery_token,omitempty" jsonschema:"an access token of your own at the server (with oauth_client or upstream_sign_in), used for this import's discovery only and never stored: the tools are discovered now"`
	// EnableTools enables every imported tool at once (default true).
	EnableTools *bool `json:"enable_tools,omitempty"`
	// Network is what addresses the server may be reached on: "host" (public addresses and
	// the operator's --upstream-allow-cidr networks) or "any", which only a global API token
	// may choose. Default: "any" with a global token, "host" with a host's token.
	Network string `json:"network,omitempty"`
	Timeouts
	DryRun bool `json:"dry_run,omitempty"`
}

// ImportResult is the server and its tools as imported (or as they would be, for a dry run).
type ImportResult struct {
	Server Server `json:"server"`
	Tools  []Tool `json:"tools"`
	DryRun bool   `json:"dry_run"`
	// ClientDependentTools names the tools the server lists only to MCP clients that declare
	// the roots, sampling or elicitation capability (discovery declares all three and lists
	// once more declaring none); an agent whose client declares none does not see them.
	// Absent when every client is shown the same tools.
	ClientDependentTools []string `json:"client_dependent_tools,omitempty"`
	// Note explains ClientDependentTools for a human reader.
	Note string `json:"note,omitempty"`
}

// ServerUpdate changes a server. ClearCredentials removes the stored credentials.
type ServerUpdate struct {
	Name             *string           `json:"name,omitempty"`
	Description      *string           `json:"description,omitempty"`
	URL              *string           `json:"url,omitempty"`
	Header           *CredentialHeader `json:"header,omitempty"`
	OAuthClient      *OAuthClient      `json:"oauth_client,omitempty"`
	ClearCredentials bool              `json:"clear_credentials,omitempty"`
	// Timeouts in milliseconds; an absent field is unchanged, 0 restores the default.
	ConnectTimeoutMS   *int64 `json:"connect_timeout_ms,omitempty"`
	FirstByteTimeoutMS *int64 `json:"first_byte_timeout_ms,omitempty"`
	IdleTimeoutMS      *int64 `json:"idle_timeout_ms,omitempty"`
	// Network: "host" or "any" (a global API token only). A host's token cannot change the
	// URL of a server on "any".
	Network *string `json:"network,omitempty"`
	// DLPMode: off, redact, block, or "" to follow the host's setting.
	DLPMode *string `json:"dlp_mode,omitempty" jsonschema:"off, redact, block, or empty to follow the host's settings.dlp.mode"`
}

// Timeouts are a server's upstream timeouts in milliseconds, 0 for the proxy's default
// (connect 10000, first byte 60000, idle stream 300000): establishing a connection, waiting
// for the response header, and silence on a streaming response (which then ends).
type Timeouts struct {
	ConnectTimeoutMS   int64 `json:"connect_timeout_ms"`
	FirstByteTimeoutMS int64 `json:"first_byte_timeout_ms"`
	IdleTimeoutMS      int64 `json:"idle_timeout_ms"`
}

// SyncResult says what a re-discovery changed. New tools are added disabled unless the host
// auto-enables them; tools whose definition changed since approval are disabled and flagged.
type SyncResult struct {
	Added     []string `json:"added"`
	Changed   []string `json:"changed"`
	Removed   []string `json:"removed"`
	Unchanged int      `json:"unchanged"`
	Tools     []Tool   `json:"tools"`
	// ClientDependentTools names the tools the server lists only to MCP clients that declare
	// the roots, sampling or elicitation capability (discovery declares all three and lists
	// once more declaring none); an agent whose client declares none does not see them.
	// Absent when every client is shown the same tools.
	ClientDependentTools []string `json:"client_dependent_tools,omitempty"`
	// Note explains ClientDependentTools for a human reader.
	Note string `json:"note,omitempty"`
}

// Tool is one tool of a server.
type Tool struct {
	Server      string          `json:"server"`
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// OutputSchema is the outputSchema the tool declares (absent when none).
	OutputSchema    json.RawMessage `json:"output_schema,omitempty"`
	Annotations     json.RawMessage `json:"annotations,omitempty"`
	Level           string          `json:"level"`
	LevelOverridden bool            `json:"level_overridden"`
	Enabled         bool            `json:"enabled"`
	Flagged         bool            `json:"flagged"`
	FlagReason      string          `json:"flag_reason,omitempty"`
	UpdatedAt       time.Time       `json:"updated_at"`
	// Conditions are the host's conditions on the tool's arguments (absent when none).
	Conditions *ToolConditions `json:"conditions,omitempty" jsonschema:"conditions on the tool's arguments, checked by SpiceDB as a caveat on the tool's relationship; a call whose arguments do not meet them is refused (reason argument_condition)"`
}

// ToolConditions are conditions on a tool's top-level arguments, by argument name; every named
// argument must be present and of the right type. At most 16 in all.
type ToolConditions struct {
	Prefix map[string]string   `json:"prefix,omitempty" jsonschema:"a string argument must start with this (e.g. repository: acme/)"`
	Max    map[string]float64  `json:"max,omitempty" jsonschema:"a number argument must be at most this"`
	Min    map[string]float64  `json:"min,omitempty" jsonschema:"a number argument must be at least this"`
	OneOf  map[string][]string `json:"one_of,omitempty" jsonschema:"a string argument must be one of these (at most 64)"`
}

// ToolCreate adds a tool by hand. Level defaults to the name rule.
type ToolCreate struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	Level       string          `json:"level,omitempty"`
	Enabled     bool            `json:"enabled"`
}

// ToolUpdate changes a tool. Approve accepts a flagged tool's new definition (and enables it
// unless Enabled says otherwise).
type ToolUpdate struct {
	Level   *string `json:"level,omitempty"`
	Enabled *bool   `json:"enabled,omitempty"`
	Approve bool    `json:"approve,omitempty"`
}

// Human is a person of the host, pre-authorized by an admin or signed in.
type Human struct {
	ID           string         `json:"id"`
	Email        string         `json:"email"`
	Name         string         `json:"name"`
	Admin        bool           `json:"admin"`
	Grants       []Grant        `json:"grants"`
	Agents       []AgentSummary `json:"agents"`
	CreatedAt    time.Time      `json:"created_at"`
	LastActiveAt *time.Time     `json:"last_active_at,omitempty"`
	// Invitation is the one-time link just issued (createHuman with invite, inviteHuman);
	// it is shown once and never again.
	Invitation *Invitation `json:"invitation,omitempty"`
}

// Invitation is a one-time link with which a human chooses their password and signs in. It
// works once, until ExpiresAt (7 days), and only while it is the human's latest invitation.
type Invitation struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HumanCreate adds (pre-authorizes) a human by email.
type HumanCreate struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	// Invite issues an invitation link at once (returned in the human's invitation field):
	// a human without one can never sign in.
	Invite bool `json:"invite,omitempty"`
}

// HumanUpdate changes a human.
type HumanUpdate struct {
	Name  *string `json:"name,omitempty"`
	Admin *bool   `json:"admin,omitempty"`
}

// Grant is a human's ceiling on one server.
type Grant struct {
	Server    string    `json:"server"`
	Ceiling   string    `json:"ceiling"`
	UpdatedAt time.Time `json:"updated_at"`
}

// GrantSet sets a human's ceiling on a server.
type GrantSet struct {
	Ceiling string `json:"ceiling"`
}

// AgentSummary names an agent in a human's listing.
type AgentSummary struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ClientID string `json:"client_id"`
	Disabled bool   `json:"disabled"`
}

// Agent is an MCP client acting for one human.
type Agent struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	ClientID     string        `json:"client_id"`
	HumanID      string        `json:"human_id"`
	HumanEmail   string        `json:"human_email"`
	RedirectURIs []string      `json:"redirect_uris"`
	Type         string        `json:"type"`
	Disabled     bool          `json:"disabled"`
	Servers      []AgentServer `json:"servers"`
	CreatedAt    time.Time     `json:"created_at"`
	LastActiveAt *time.Time    `json:"last_active_at,omitempty"`
}

// AgentServer is an agent's consented level on a server, capped by its human's ceiling.
type AgentServer struct {
	Server string `json:"server"`
	Level  string `json:"level"`
	// Ceiling is the human's ceiling ("" when the admin revoked it).
	Ceiling string `json:"ceiling"`
	// Effective is min(level, ceiling): what the agent can actually do ("" for nothing).
	Effective string `json:"effective"`
}

// AgentUpdate changes an agent.
type AgentUpdate struct {
	Name *string `json:"name,omitempty"`
	Type *string `json:"type,omitempty"`
}

// AgentLevel sets an agent's level on a server (up to the human's ceiling).
type AgentLevel struct {
	Level string `json:"level"`
}

// The scopes of an API token (Token.Scope).
const (
	// ScopeAdmin administers everything the token's host (or, for a global token, the
	// gateway) holds. It is the default.
	ScopeAdmin = "admin"
	// ScopeCheck may only ask for decisions (Check and CallableTools): a service
	// holding it can learn what an agent may call, and change nothing. Every other route
	// answers it 403.
	ScopeCheck = "check"
)

// Token is an admin API token. The secret is shown once, when created.
type Token struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Host   string `json:"host,omitempty"` // empty for a global token
	Prefix string `json:"prefix"`
	// Scope is ScopeAdmin or ScopeCheck.
	Scope      string     `json:"scope"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// TokenCreate creates a token.
type TokenCreate struct {
	Name string `json:"name"`
	// Scope is ScopeAdmin (the default when empty) or ScopeCheck.
	Scope string `json:"scope,omitempty"`
}

// TokenCreated is a new token with its secret.
type TokenCreated struct {
	Token
	Secret string `json:"token"`
}

// AuditEntry is one entry of a host's audit log: a decision of the proxy, the outcome of an
// allowed call (Decision "result"), or an admin change.
type AuditEntry struct {
	Host string    `json:"host"`
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`

	// The human the agent acts for (or the admin's human, when known).
	UserID    string `json:"user_id,omitempty"`
	UserEmail string `json:"user_email,omitempty"`
	// The agent: its id, its OAuth client id and name.
	AgentID    string `json:"agent_id,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	ClientName string `json:"client_name,omitempty"`

	Server string `json:"server,omitempty"`
	// Tool is the tool of a tools/call; Method the JSON-RPC method (or the HTTP method of a
	// GET or DELETE without a body).
	Tool   string `json:"tool,omitempty"`
	Method string `json:"method,omitempty"`

	// Decision is "allowed", "denied", "error", "admin" or "result".
	Decision string `json:"decision"`
	Reason   string `json:"reason,omitempty"`

	// Levels involved: the tool's required level, the agent's consented level, the human's
	// ceiling ("none" when absent).
	RequiredLevel string `json:"required_level,omitempty"`
	AgentLevel    string `json:"agent_level,omitempty"`
	Ceiling       string `json:"ceiling,omitempty"`

	// UpstreamStatus is the upstream's HTTP status (0: not forwarded or no answer).
	UpstreamStatus int `json:"upstream_status,omitempty"`
	// LatencyMS is how long the upstream took to answer, in milliseconds.
	LatencyMS int64  `json:"latency_ms,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
	// Arguments are the tool call's arguments as redacted JSON text, stored only when the
	// host's audit_arguments setting is on.
	Arguments string `json:"arguments,omitempty"`
	// ClientAddr is the IP address the request came from: the connection's peer, or the
	// client a trusted reverse proxy names (--trusted-proxies). Empty for entries made outside
	// a request and for entries written before trustgate recorded it.
	ClientAddr string `json:"client_addr,omitempty"`
	// Flags are the anomaly flags of a tool call (new_tool, new_server, off_hours, rate_spike,
	// denial_streak); none for most entries.
	Flags []string `json:"flags,omitempty"`

	// Admin changes: who (an API token's id and name, or "cli"), what, on which object, and
	// the value before and after ("" when there is none).
	Actor    string `json:"actor,omitempty"`
	Action   string `json:"action,omitempty"`
	Object   string `json:"object,omitempty"`
	OldValue string `json:"old_value,omitempty"`
	NewValue string `json:"new_value,omitempty"`

	// Version is the canonical encoding the hash was computed with.
	Version  int    `json:"version"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// CheckRequest asks whether an agent may call a tool of a server: the question the proxy asks
// of every tools/call.
type CheckRequest struct {
	Agent  string `json:"agent"`
	Server string `json:"server"`
	Tool   string `json:"tool"`
	// Arguments, when given, are checked against the tool's input schema as the proxy checks
	// a tools/call's (absent: not checked).
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// Decision is the answer to a CheckRequest, as the proxy would decide a tools/call now.
type Decision struct {
	Agent   string `json:"agent"`
	Server  string `json:"server"`
	Tool    string `json:"tool"`
	Allowed bool   `json:"allowed"`
	// Reason is "allowed", or the stable code of a denial's cause, the data.reason of the
	// proxy's -31001 error: agent_disabled, agent_removed, unknown_server, no_access,
	// not_consented, ceiling_too_low, level_too_low, unknown_tool, tool_disabled,
	// tool_pending_review, pending_change, emergency_stop, invalid_arguments,
	// input_schema_unusable, rate_limited.
	Reason string `json:"reason"`
	// Message explains a denial and names the action that fixes it ("" when allowed).
	Message string `json:"message,omitempty"`
	// RequiredLevel, AgentLevel and Ceiling are the levels a denial involved ("none" for an
	// absent one); empty when allowed.
	RequiredLevel string `json:"required_level,omitempty"`
	AgentLevel    string `json:"agent_level,omitempty"`
	Ceiling       string `json:"ceiling,omitempty"`
}

// ReasonAllowed is the Reason of an allowed Decision.
const ReasonAllowed = "allowed"

// CallableToolsRequest asks which tools of a server an agent may call.
type CallableToolsRequest struct {
	Agent  string `json:"agent"`
	Server string `json:"server"`
}

// CallableTools names the tools of a server the agent may call now, sorted: what the proxy
// keeps in the agent's tools/list (with the host's tool_visibility "callable").
type CallableTools struct {
	Agent  string   `json:"agent"`
	Server string   `json:"server"`
	Tools  []string `json:"tools"`
}

// AuthSettings are a host's sign-in settings: the domains that may sign in at all and every
// sign-in method, configured or not (a method without settings is off, except password).
type AuthSettings struct {
	SignInDomains []string     `json:"sign_in_domains" jsonschema:"email domains that may sign in at all (empty: every domain); change them with the host's settings"`
	Methods       []AuthMethod `json:"methods"`
}

// AuthMethod is one sign-in method of a host. Its secret is never shown: Secret says whether
// one is set.
type AuthMethod struct {
	Method               string          `json:"method" jsonschema:"password, email_otp, passkey, oidc, google, github, microsoft or saml"`
	Enabled              bool            `json:"enabled"`
	AllowedDomains       []string        `json:"allowed_domains" jsonschema:"email domains that may use the method (empty: all); the host's sign_in_domains apply too"`
	ForceRedirectDomains []string        `json:"force_redirect_domains" jsonschema:"single sign-on methods only: addresses of these domains go straight to this provider"`
	Config               json.RawMessage `json:"config" jsonschema:"the method's non-secret settings (a JSON object)"`
	Secret               string          `json:"secret" jsonschema:"set or not set: the provider secret is write-only"`
	// Configured is false for a method shown with its defaults (nothing stored).
	Configured bool      `json:"configured"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
	// ServiceProvider (saml only) is what the IdP's administrator enters for the gateway.
	ServiceProvider *SAMLServiceProvider `json:"service_provider,omitempty" jsonschema:"saml only: the gateway's SAML service provider details to enter at the identity provider"`
}

// SAMLServiceProvider are the SAML service provider details of a host: its entity ID (the
// audience of the IdP's assertions), its assertion consumer service (HTTP-POST binding) and
// the URL of its metadata document (which has both, and its signing certificate).
type SAMLServiceProvider struct {
	EntityID    string `json:"entity_id" jsonschema:"the SP entity ID (audience): <issuer>/auth/saml/metadata"`
	ACSURL      string `json:"acs_url" jsonschema:"the assertion consumer service URL (HTTP-POST binding): <issuer>/auth/saml/acs"`
	MetadataURL string `json:"metadata_url" jsonschema:"the SP metadata document (XML) to give the IdP"`
}

// AuthMethodSet replaces a sign-in method's settings. Secret, when present, replaces the
// provider secret ("" removes it); absent, the stored secret is kept.
type AuthMethodSet struct {
	Enabled              bool            `json:"enabled"`
	AllowedDomains       []string        `json:"allowed_domains,omitempty"`
	ForceRedirectDomains []string        `json:"force_redirect_domains,omitempty"`
	Config               json.RawMessage `json:"config,omitempty"`
	Secret               *string         `json:"secret,omitempty" jsonschema:"the provider secret (write-only; sealed with the master key); \"\" removes it"`
}

// Values of AuthMethod.Secret.
const (
	SecretSet    = "set"
	SecretNotSet = "not set"
)

// Explanation says why an agent may or may not call a tool now: the decision the proxy would
// make, the path that decided it in words, the relationships it rests on, and the
// authorization engine's own trace of the check (GET /api/v1/hosts/{host}/explain).
type Explanation struct {
	Agent   string `json:"agent"`
	Server  string `json:"server"`
	Tool    string `json:"tool"`
	Allowed bool   `json:"allowed"`
	// Reason is the Decision's reason ("allowed" or a denial's code); Summary says it in one
	// sentence (a denial's with the action that fixes it).
	Reason  string `json:"reason"`
	Summary string `json:"summary"`
	// Steps are the conditions of a tool call in order (agent, host membership, server, tool,
	// ceiling, grant), each held or not; Decisive marks the one that denied.
	Steps []ExplanationStep `json:"steps"`
	// Relationships are the relationships the check can rest on, as the authorization engine
	// holds them at the check's revision, each with what it means.
	Relationships []ExplainedRelationship `json:"relationships"`
	// TraceAvailable says whether the engine traced the check (SpiceDB does; Permit cannot);
	// Trace is that trace, TraceNote says why there is none or that it was cut short.
	TraceAvailable bool       `json:"trace_available"`
	Trace          *TraceStep `json:"trace,omitempty"`
	TraceNote      string     `json:"trace_note,omitempty"`
	// Revision is the engine's revision the check and the relationships were read at.
	Revision string `json:"revision,omitempty"`
	// AgentName and HumanEmail name the agent and its human when the agent exists.
	AgentName  string `json:"agent_name,omitempty"`
	HumanEmail string `json:"human_email,omitempty"`
	// Notes are remarks beside the path, such as the store and the engine disagreeing while
	// a change is being applied.
	Notes []string `json:"notes,omitempty"`
}

// ExplanationStep is one condition of a tool call.
type ExplanationStep struct {
	// Kind is agent, host_membership, server, tool, ceiling or grant.
	Kind     string `json:"kind"`
	Held     bool   `json:"held"`
	Decisive bool   `json:"decisive,omitempty"`
	Text     string `json:"text"`
	// Relationships are those (in zed notation) the condition rests on, present or missing.
	Relationships []string `json:"relationships,omitempty"`
}

// ExplainedRelationship is one relationship in zed notation with its meaning.
type ExplainedRelationship struct {
	Relationship string `json:"relationship"`
	Meaning      string `json:"meaning"`
}

// TraceStep is one permission or relation the authorization engine evaluated.
type TraceStep struct {
	// Object is type:id; Name the permission or relation; Kind "permission" or "relation".
	Object string `json:"object"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	// Result is has_permission, no_permission, conditional or unspecified.
	Result string      `json:"result"`
	Cached bool        `json:"cached,omitempty"`
	Steps  []TraceStep `json:"steps,omitempty"`
}

// Insights is a host's analysis of who may do what (GET /api/v1/hosts/{host}/insights): each
// human's agents, the servers they hold a level on and the tools that level reaches, and
// over-permission: agents holding a level whose tools they have not used in the usage window,
// ceilings none of the human's agents uses, enabled tools no agent can call.
type Insights struct {
	Host        string    `json:"host"`
	GeneratedAt time.Time `json:"generated_at"`
	// UsageSince starts the usage window (30 days back); usage is read from the audit log's
	// allowed tool calls, newest first, at most AuditLimit of them: AuditTruncated says the
	// limit was reached, and older calls in the window were not counted.
	UsageSince     time.Time `json:"usage_since"`
	AuditRead      int       `json:"audit_read"`
	AuditLimit     int       `json:"audit_limit"`
	AuditTruncated bool      `json:"audit_truncated"`
	// Counts are over the whole host, whatever the page.
	Counts InsightCounts `json:"counts"`
	// Humans is one page of the host's humans, by email; NextCursor asks for the next
	// (?cursor=), "" after the last.
	Humans     []InsightHuman `json:"humans"`
	NextCursor string         `json:"next_cursor,omitempty"`
	// Servers are the host's servers with their tools and how many agents can call each.
	Servers []InsightServer `json:"servers"`
	// Findings are the over-permission found on the whole host, at most FindingsLimit;
	// FindingsTruncated says some were left out (Counts has them all).
	Findings          []InsightFinding `json:"findings"`
	FindingsLimit     int              `json:"findings_limit"`
	FindingsTruncated bool             `json:"findings_truncated"`
}

// InsightCounts counts a host's objects and findings.
type InsightCounts struct {
	Humans          int `json:"humans"`
	Agents          int `json:"agents"`
	Servers         int `json:"servers"`
	Tools           int `json:"tools"`
	UnusedLevels    int `json:"unused_levels"`
	UnusedCeilings  int `json:"unused_ceilings"`
	UncallableTools int `json:"uncallable_tools"`
}

// InsightHuman is a human with their ceilings and agents.
type InsightHuman struct {
	ID       string         `json:"id"`
	Email    string         `json:"email"`
	Admin    bool           `json:"admin"`
	Ceilings []Grant        `json:"ceilings"`
	Agents   []InsightAgent `json:"agents"`
}

// InsightAgent is an agent with what it may do on each server it holds a level on.
type InsightAgent struct {
	ID           string               `json:"id"`
	Name         string               `json:"name"`
	Disabled     bool                 `json:"disabled"`
	LastActiveAt *time.Time           `json:"last_active_at,omitempty"`
	Servers      []InsightAgentServer `json:"servers"`
}

// InsightAgentServer is what an agent may do on one server: its level, the human's ceiling,
// the effective level (the lower; "none" when revoked or disabled), the enabled tools that
// level reaches, and the tools it called in the usage window with the highest level among
// them ("none").
type InsightAgentServer struct {
	Server      string   `json:"server"`
	Level       string   `json:"level"`
	Ceiling     string   `json:"ceiling"`
	Effective   string   `json:"effective"`
	Tools       []string `json:"tools"`
	Used        []string `json:"used"`
	HighestUsed string   `json:"highest_used"`
}

// InsightServer is a server with its tools.
type InsightServer struct {
	Key   string        `json:"key"`
	Name  string        `json:"name"`
	Tools []InsightTool `json:"tools"`
}

// InsightTool is a tool, its level ("" when disabled) and how many agents can call it now.
type InsightTool struct {
	Name       string `json:"name"`
	Level      string `json:"level"`
	Enabled    bool   `json:"enabled"`
	Callers    int    `json:"callers"`
	Uncallable bool   `json:"uncallable,omitempty"`
}

// Kinds of InsightFinding.
const (
	FindingUnusedLevel    = "unused_level"
	FindingUnusedCeiling  = "unused_ceiling"
	FindingUncallableTool = "uncallable_tool"
)

// InsightFinding is one over-permission: an agent's level whose tools it has not used
// (unused_level, Suggested: the highest level it used, or "none": revoke), a ceiling above
// every level the human's agents hold (unused_ceiling, Suggested: the highest they hold), or
// an enabled tool no agent can call (uncallable_tool).
type InsightFinding struct {
	Kind       string `json:"kind"`
	HumanID    string `json:"human_id,omitempty"`
	HumanEmail string `json:"human_email,omitempty"`
	Agent      string `json:"agent,omitempty"`
	AgentName  string `json:"agent_name,omitempty"`
	Server     string `json:"server"`
	Tool       string `json:"tool,omitempty"`
	Level      string `json:"level"`
	Suggested  string `json:"suggested,omitempty"`
	Text       string `json:"text"`
}
