package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trustgate/trustgate/schema"
)

// Limits of the input the store accepts.
const (
	maxEmailLen       = 254
	maxToolNameRunes  = 128
	maxSchemaLen      = 64 << 10 // a tool's input or output schema
	maxIDLen          = 64
	maxTextLen        = 64 << 10 // names, descriptions, URLs, client ids
	maxAnnotationsLen = 64 << 10
	maxCredentialsLen = 64 << 10
	maxHashLen        = 256 // tool definition hashes
	maxRedirectURIs   = 20
	maxRedirectURILen = 2048
	maxEmailDomains   = 100
	maxDomainLen      = 253
	maxTokenNameRunes = 128
	maxTokenPrefixLen = 64
	maxAccessTokenTTL = 86400
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// FieldError is a refused value with the field it was given in, a path such as
// "approval_rules[2].timeout_seconds" (relative to the document the store checks), so that an
// API answer and a form can point at it. It unwraps to an ErrInvalid error.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// invalidField is invalid for the value of field.
func invalidField(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: invalid(format, args...)}
}

// validHostKey: a DNS label, 1-63 of [a-z0-9-], not starting or ending with '-'.
func validHostKey(key string) error {
	if len(key) < 1 || len(key) > 63 {
		return invalid("host key %q: want 1-63 characters", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("host key %q: want a DNS label of [a-z0-9-]", key)
		}
	}
	if key[0] == '-' || key[len(key)-1] == '-' {
		return invalid("host key %q: must not start or end with '-'", key)
	}
	return nil
}

// validServerKey: a slug, [a-z0-9][a-z0-9_-]{0,62}.
func validServerKey(key string) error {
	if len(key) < 1 || len(key) > 63 {
		return invalid("server key %q: want 1-63 characters", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return invalid("server key %q: want a slug of [a-z0-9_-] starting with a letter or digit", key)
		}
	}
	return nil
}

// validID: a user or agent id given by the caller, 1-64 of [A-Za-z0-9_-]. Ids become part of
// SpiceDB object ids (host/id), so they must not contain '/' or anything SpiceDB refuses.
func validID(kind, id string) error {
	if len(id) < 1 || len(id) > maxIDLen {
		return invalid("%s id %q: want 1-%d characters", kind, id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("%s id %q: want [A-Za-z0-9_-]", kind, id)
		}
	}
	return nil
}

// normalizeEmail lower-cases an email and checks its shape: one '@' with something on both
// sides, at most 254 characters, no spaces or control characters.
func normalizeEmail(email string) (string, error) {
	if len(email) > maxEmailLen {
		return "", invalid("email of %d characters: want at most %d", len(email), maxEmailLen)
	}
	if !utf8.ValidString(email) {
		return "", invalid("email %q: not valid UTF-8", email)
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return "", invalid("email %q: want exactly one '@' with a name before it and a domain after it", email)
	}
	for _, r := range email {
		if r <= ' ' || r == 0x7f {
			return "", invalid("email %q: must not contain spaces or control characters", email)
		}
	}
	return strings.ToLower(email), nil
}

func validToolName(name string) error {
	if !utf8.ValidString(name) {
		return invalid("tool name %q: not valid UTF-8", name)
	}
	n := utf8.RuneCountInString(name)
	if n < 1 || n > maxToolNameRunes {
		return invalid("tool name %q: want 1-%d characters", name, maxToolNameRunes)
	}
	if strings.ContainsRune(name, 0) {
		return invalid("tool name %q: must not contain NUL", name)
	}
	return nil
}

func validLevel(what string, l schema.Level) error {
	if !l.Valid() {
		return invalid("%s %s: want low, medium or high", what, l)
	}
	return nil
}

// validSchema checks a tool's input or output schema (what names which): JSON text of at most
// maxSchemaLen bytes, or "".
func validSchema(what, s string) error {
	if len(s) > maxSchemaLen {
		return invalid("%s of %d bytes: want at most %d", what, len(s), maxSchemaLen)
	}
	if s != "" && !json.Valid([]byte(s)) {
		return invalid("%s is not valid JSON", what)
	}
	return nil
}

// validText checks free text stored as is (names, descriptions, URLs): valid UTF-8, no NUL (which
// PostgreSQL refuses and SQLite keeps, so that the engines agree), and a sane length.
func validText(field, s string) error {
	if len(s) > maxTextLen {
		return invalid("%s of %d bytes: want at most %d", field, len(s), maxTextLen)
	}
	if !utf8.ValidString(s) {
		return invalid("%s: not valid UTF-8", field)
	}
	if strings.ContainsRune(s, 0) {
		return invalid("%s: must not contain NUL", field)
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// validAnnotations: a tool's MCP annotations, JSON text or "".
func validAnnotations(s string) error {
	if len(s) > maxAnnotationsLen {
		return invalid("tool annotations of %d bytes: want at most %d", len(s), maxAnnotationsLen)
	}
	if s != "" && !json.Valid([]byte(s)) {
		return invalid("tool annotations are not valid JSON")
	}
	return nil
}

func validHash(field, s string) error {
	if len(s) > maxHashLen {
		return invalid("%s of %d bytes: want at most %d", field, len(s), maxHashLen)
	}
	return validText(field, s)
}

// Server credential kinds.
var credentialKinds = []string{"", "header", "oauth_client"}

func validCredentials(kind string, creds []byte) error {
	if !slices.Contains(credentialKinds, kind) {
		return invalid("credential kind %q: want \"\", \"header\" or \"oauth_client\"", kind)
	}
	if len(creds) > maxCredentialsLen {
		return invalid("credentials of %d bytes: want at most %d", len(creds), maxCredentialsLen)
	}
	return nil
}

// Agent types.
var agentTypes = []string{"", "chat", "proactive", "ambient"}

func validAgentType(t string) error {
	if !slices.Contains(agentTypes, t) {
		return invalid("agent type %q: want \"chat\", \"proactive\", \"ambient\" or \"\"", t)
	}
	return nil
}

func validRedirectURIs(uris []string) error {
	if len(uris) > maxRedirectURIs {
		return invalid("%d redirect URIs: want at most %d", len(uris), maxRedirectURIs)
	}
	for i, u := range uris {
		if u == "" {
			return invalid("redirect URI %d is empty", i+1)
		}
		if n := utf8.RuneCountInString(u); n > maxRedirectURILen {
			return invalid("redirect URI %d of %d characters: want at most %d", i+1, n, maxRedirectURILen)
		}
		if err := validText("redirect URI", u); err != nil {
			return err
		}
	}
	return nil
}

// normalizeHostSettings checks a host's settings and returns them as stored: email domains
// lower-cased, an empty domain list as nil.
func normalizeHostSettings(hs HostSettings) (HostSettings, error) {
	if len(hs.AllowedEmailDomains) > maxEmailDomains {
		return HostSettings{}, invalid("%d allowed email domains: want at most %d", len(hs.AllowedEmailDomains), maxEmailDomains)
	}
	var domains []string
	for _, d := range hs.AllowedEmailDomains {
		d = strings.ToLower(d)
		if err := validDomain(d); err != nil {
			return HostSettings{}, err
		}
		domains = append(domains, d)
	}
	hs.AllowedEmailDomains = domains
	if len(hs.SignInDomains) > maxEmailDomains {
		return HostSettings{}, invalid("%d sign-in domains: want at most %d", len(hs.SignInDomains), maxEmailDomains)
	}
	var signIn []string
	for _, d := range hs.SignInDomains {
		d = strings.ToLower(d)
		if err := validDomain(d); err != nil {
			return HostSettings{}, err
		}
		signIn = append(signIn, d)
	}
	hs.SignInDomains = signIn
	for _, ttl := range []struct {
		name string
		v    int
	}{
		{"access token TTL", hs.AccessTokenTTLSeconds},
		{"session idle TTL", hs.SessionIdleTTLSeconds},
		{"session max TTL", hs.SessionMaxTTLSeconds},
	} {
		if ttl.v < 0 {
			return HostSettings{}, invalid("%s %ds: must not be negative", ttl.name, ttl.v)
		}
	}
	if hs.AccessTokenTTLSeconds > maxAccessTokenTTL {
		return HostSettings{}, invalid("access token TTL %ds: want at most %d (a day)", hs.AccessTokenTTLSeconds, maxAccessTokenTTL)
	}
	switch hs.ToolVisibility {
	case "", "callable", "all":
	default:
		return HostSettings{}, invalid("tool visibility %q: want \"callable\" or \"all\"", hs.ToolVisibility)
	}
	switch hs.DenialFormat {
	case "", DenialToolResult, DenialJSONRPCError:
	default:
		return HostSettings{}, invalid("denial format %q: want %q or %q", hs.DenialFormat, DenialToolResult, DenialJSONRPCError)
	}
	d, err := hs.DLP.Normalize()
	if err != nil {
		return HostSettings{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	hs.DLP = d
	switch hs.ArgumentValidation {
	case "", ArgumentValidationOn, ArgumentValidationOff:
	default:
		return HostSettings{}, invalid("argument validation %q: want %q or %q", hs.ArgumentValidation, ArgumentValidationOn, ArgumentValidationOff)
	}
	if err := validRateLimits(hs.RateLimits); err != nil {
		return HostSettings{}, err
	}
	if len(hs.RateLimits) == 0 {
		hs.RateLimits = nil
	}
	rules, err := validApprovalRules(hs.ApprovalRules)
	if err != nil {
		return HostSettings{}, err
	}
	hs.ApprovalRules = rules
	if s := hs.EmergencyStop; s != nil {
		if err := firstErr(validText("emergency stop reason", s.Reason), validText("emergency stop by", s.By)); err != nil {
			return HostSettings{}, err
		}
		if len(s.Reason) > maxStopReason {
			return HostSettings{}, invalid("emergency stop reason of %d bytes: want at most %d", len(s.Reason), maxStopReason)
		}
		stop := *s
		stop.Since = stop.Since.UTC().Truncate(time.Millisecond)
		hs.EmergencyStop = &stop
	}
	if err := validAnomaly(hs.Anomaly); err != nil {
		return HostSettings{}, err
	}
	if w := hs.Webhook; w != nil {
		if len(w.SealedURL) == 0 || len(w.SealedURL) > maxSealedWebhookURL {
			return HostSettings{}, invalid("sealed webhook URL of %d bytes: want 1-%d", len(w.SealedURL), maxSealedWebhookURL)
		}
		hook := *w
		hook.UpdatedAt = hook.UpdatedAt.UTC().Truncate(time.Millisecond)
		hs.Webhook = &hook
	}
	return hs, nil
}

// validDomain: a lower-case DNS name (an email's domain, so no '@'): dot-separated labels of
// 1-63 of [a-z0-9-], not starting or ending with '-', at most 253 characters in all.
func validDomain(d string) error {
	if d == "" || len(d) > maxDomainLen {
		return invalid("email domain %q: want 1-%d characters", d, maxDomainLen)
	}
	if strings.Contains(d, "@") {
		return invalid("email domain %q: want the domain alone, without '@'", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return invalid("email domain %q: want dot-separated labels of 1-63 characters", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid("email domain %q: a label must not start or end with '-'", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return invalid("email domain %q: want a DNS name of [a-z0-9-] labels", d)
			}
		}
	}
	return nil
}

// validTokenHash: the hex SHA-256 of an API token, in lower case.
func validTokenHash(h string) error {
	if len(h) != 64 {
		return invalid("API token hash: want 64 lower-case hex characters, got %d characters", len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return invalid("API token hash: want 64 lower-case hex characters")
		}
	}
	return nil
}

func validTokenName(name string) error {
	if err := validText("API token name", name); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > maxTokenNameRunes {
		return invalid("API token name of %d characters: want 1-%d", n, maxTokenNameRunes)
	}
	return nil
}

func validTokenScope(scope string) error {
	switch scope {
	case TokenScopeAdmin, TokenScopeCheck:
		return nil
	}
	return invalid("API token scope %q: want %q (administer) or %q (decisions only)", scope, TokenScopeAdmin, TokenScopeCheck)
}

func validTokenPrefix(p string) error {
	if len(p) > maxTokenPrefixLen {
		return invalid("API token prefix of %d bytes: want at most %d", len(p), maxTokenPrefixLen)
	}
	return validText("API token prefix", p)
}

// Bounds of the safety settings.
const (
	maxRateLimits    = 200
	maxRatePerMinute = 1_000_000
	maxStopReason    = 1024
)

// Bounds of the approval policy.
const (
	maxApprovalRules = 100
	maxApprovers     = 20
)

// validApprovalRules checks a host's approval rules and returns them in their stored form
// (approvers' emails in lower case; nil when there are none).
func validApprovalRules(rules []ApprovalRule) ([]ApprovalRule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	if len(rules) > maxApprovalRules {
		return nil, invalid("%d approval rules: want at most %d", len(rules), maxApprovalRules)
	}
	out := make([]ApprovalRule, len(rules))
	for i, r := range rules {
		f := func(name string) string { return fmt.Sprintf("approval_rules[%d]%s", i, name) }
		if r.Level == 0 && r.Server == "" && r.Tool == "" && r.AgentType == "" {
			return nil, invalidField(f(""), "approval rule %d matches every call: set a level, a server, a tool or an agent type", i+1)
		}
		if r.Level != 0 && !r.Level.Valid() {
			return nil, invalidField(f(".level"), "approval rule %d: level %q: want low, medium or high", i+1, r.Level)
		}
		if r.Tool != "" && r.Server == "" {
			return nil, invalidField(f(".server"), "approval rule %d on tool %q: name its server too", i+1, r.Tool)
		}
		switch r.AgentType {
		case "", "chat", "proactive", "ambient":
		default:
			return nil, invalidField(f(".agent_type"), "approval rule %d: agent type %q: want chat, proactive or ambient", i+1, r.AgentType)
		}
		if err := validText("approval rule server", r.Server); err != nil {
			return nil, &FieldError{Field: f(".server"), Err: err}
		}
		if err := validText("approval rule tool", r.Tool); err != nil {
			return nil, &FieldError{Field: f(".tool"), Err: err}
		}
		if len(r.Server) > 64 {
			return nil, invalidField(f(".server"), "approval rule %d: server name %q too long (at most 64 bytes)", i+1, r.Server)
		}
		if len(r.Tool) > 128 {
			return nil, invalidField(f(".tool"), "approval rule %d: tool name too long (at most 128 bytes)", i+1)
		}
		if len(r.Approvers) > maxApprovers {
			return nil, invalidField(f(".approvers"), "approval rule %d names %d approvers: want at most %d", i+1, len(r.Approvers), maxApprovers)
		}
		approvers := make([]string, 0, len(r.Approvers))
		for _, a := range r.Approvers {
			e, err := normalizeEmail(a)
			if err != nil {
				return nil, invalidField(f(".approvers"), "approval rule %d: approver %q is not an email address", i+1, a)
			}
			if !slices.Contains(approvers, e) {
				approvers = append(approvers, e)
			}
		}
		r.Approvers = approvers
		if len(r.Approvers) == 0 {
			r.Approvers = nil
		}
		if r.StandingHours < 0 || r.StandingHours > MaxStandingHours {
			return nil, invalidField(f(".standing_hours"), "approval rule %d: standing approval of %d hours: want 0 (approve once) to %d", i+1, r.StandingHours, MaxStandingHours)
		}
		if t := r.TimeoutSeconds; t != 0 && (time.Duration(t)*time.Second < MinApprovalTimeout || time.Duration(t)*time.Second > MaxApprovalTimeout) {
			return nil, invalidField(f(".timeout_seconds"), "approval rule %d: timeout of %d seconds: want %d to %d", i+1, t, int(MinApprovalTimeout.Seconds()), int(MaxApprovalTimeout.Seconds()))
		}
		out[i] = r
	}
	return out, nil
}

// validRateLimits: known scopes, a tool only with its server, positive bounded rates, and one
// rule per scope, server and tool.
func validRateLimits(limits []RateLimit) error {
	if len(limits) > maxRateLimits {
		return invalid("%d rate limits: want at most %d", len(limits), maxRateLimits)
	}
	seen := map[RateLimit]bool{}
	for _, l := range limits {
		switch l.Scope {
		case RateScopeAgent, RateScopeAgentTool, RateScopeHuman, RateScopeHost:
		default:
			return invalid("rate limit scope %q: want %q, %q, %q or %q", l.Scope, RateScopeAgent, RateScopeAgentTool, RateScopeHuman, RateScopeHost)
		}
		if l.Tool != "" && l.Server == "" {
			return invalid("rate limit on tool %q: name its server too", l.Tool)
		}
		if err := firstErr(validText("rate limit server", l.Server), validText("rate limit tool", l.Tool)); err != nil {
			return err
		}
		if len(l.Server) > 64 || len(l.Tool) > 128 {
			return invalid("rate limit on %s/%s: server or tool name too long", l.Server, l.Tool)
		}
		if l.PerMinute < 1 || l.PerMinute > maxRatePerMinute {
			return invalid("rate limit %s per minute %d: want 1 to %d", l.Scope, l.PerMinute, maxRatePerMinute)
		}
		if l.Burst < 0 || l.Burst > maxRatePerMinute {
			return invalid("rate limit %s burst %d: want 0 (as many as per minute) to %d", l.Scope, l.Burst, maxRatePerMinute)
		}
		k := RateLimit{Scope: l.Scope, Server: l.Server, Tool: l.Tool}
		if seen[k] {
			return invalid("two rate limits of scope %s on %q/%q", l.Scope, l.Server, l.Tool)
		}
		seen[k] = true
	}
	return nil
}

// validAnomaly checks a host's anomaly flags policy.
func validAnomaly(a AnomalySettings) error {
	for _, list := range []struct {
		name  string
		flags []string
	}{{"flags", a.Flags}, {"notify", a.Notify}, {"suspend", a.Suspend}} {
		for _, f := range list.flags {
			if !slices.Contains(AnomalyFlagNames, f) {
				return invalid("anomaly %s: unknown flag %q (want %s)", list.name, f, strings.Join(AnomalyFlagNames, ", "))
			}
			if list.name != "flags" && !slices.Contains(a.Flags, f) {
				return invalid("anomaly %s: flag %q is not raised (add it to flags)", list.name, f)
			}
		}
	}
	if w := a.UsualHours; w != nil {
		if w.Start < 0 || w.Start > 23 || w.End < 0 || w.End > 24 || w.Start == w.End {
			return invalid("anomaly usual hours %d-%d: want start 0-23 and end 0-24, not equal", w.Start, w.End)
		}
		if _, err := time.LoadLocation(w.Timezone); err != nil || len(w.Timezone) > 64 {
			return invalid("anomaly usual hours: unknown time zone %q", w.Timezone)
		}
	}
	switch {
	case a.RateFactor < 0 || a.RateFactor > 1000:
		return invalid("anomaly rate factor %v: want 0 (default) to 1000", a.RateFactor)
	case a.RateMinPerMinute < 0 || a.RateMinPerMinute > 1_000_000:
		return invalid("anomaly rate minimum %d: want 0 (default) to 1000000", a.RateMinPerMinute)
	case a.DenialStreak < 0 || a.DenialStreak > 1000:
		return invalid("anomaly denial streak %d: want 0 (default) to 1000", a.DenialStreak)
	}
	return nil
}
