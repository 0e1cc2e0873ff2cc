package admin

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// Words of generated host suffixes ("acme" → "acme-round-moccasin-19").
var (
	suffixAdjectives = strings.Fields(`round brave calm eager fancy gentle happy jolly kind lively
		proud silly witty bold bright clever cosmic crisp dapper quiet rapid swift tidy vivid warm
		wise zesty amber azure coral dusty frosty golden hidden misty noble polar rustic sunny`)
	suffixNouns = strings.Fields(`moccasin otter falcon maple river canyon meadow harbor comet
		lantern pebble willow badger heron lynx orchid cedar glacier quartz summit tundra walrus
		panda koala bison raven sparrow tiger zebra aspen birch fjord island lagoon mesa prairie`)
)

func randomSuffix() string {
	pick := func(words []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
		return words[n.Int64()]
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(90))
	return fmt.Sprintf("%s-%s-%d", pick(suffixAdjectives), pick(suffixNouns), n.Int64()+10)
}

func (a *API) hostDoc(h store.Host, withClients bool) Host {
	s := h.Settings
	doc := Host{
		Key:  h.Key,
		Name: h.Name,
		Settings: HostSettings{
			AllowedEmailDomains:   orEmpty(s.AllowedEmailDomains),
			SignInDomains:         orEmpty(s.SignInDomains),
			DynamicMCPs:           s.DynamicMCPs,
			AutoEnableNewTools:    s.AutoEnableNewTools,
			AccessTokenTTLSeconds: orDefault(s.AccessTokenTTLSeconds, 3600),
			SessionIdleTTLSeconds: orDefault(s.SessionIdleTTLSeconds, 30*24*3600),
			SessionMaxTTLSeconds:  orDefault(s.SessionMaxTTLSeconds, 90*24*3600),
			ToolVisibility:        orDefaultString(s.ToolVisibility, "callable"),
			AuditArguments:        s.AuditArguments,
			DenialFormat:          orDefaultString(s.DenialFormat, store.DenialToolResult),
			DLP:                   dlpDoc(s.DLP),
			ArgumentValidation:    orDefaultString(s.ArgumentValidation, store.ArgumentValidationOn),
			RateLimits:            rateLimitDocs(s.RateLimits),
			ApprovalRules:         approvalRuleDocs(s.ApprovalRules),
		},
		MCPURL:    a.cfg.URLs.MCP(h.Key),
		CreatedAt: h.CreatedAt,
	}
	if st := s.EmergencyStop; st != nil {
		doc.Settings.EmergencyStop = &EmergencyStop{Since: st.Since, Reason: st.Reason, By: st.By}
	}
	doc.Settings.Webhook = webhookStatus(s.Webhook)
	doc.Settings.Anomaly = anomalyDoc(s.Anomaly)
	if withClients {
		doc.Clients = clientConfigs("trustgate-"+h.Key, doc.MCPURL)
	}
	return doc
}

// clientConfigs are ready-to-paste configurations of the MCP clients users run.
func clientConfigs(name, mcpURL string) map[string]ClientConfig {
	js := func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	}
	return map[string]ClientConfig{
		"cursor": {Where: ".cursor/mcp.json (project) or ~/.cursor/mcp.json (global)", Snippet: js(map[string]any{
			"mcpServers": map[string]any{name: map[string]any{"url": mcpURL}},
		})},
		"claude_desktop": {Where: "claude_desktop_config.json (Settings → Developer → Edit Config)", Snippet: js(map[string]any{
			"mcpServers": map[string]any{name: map[string]any{"command": "npx", "args": []string{"-y", "mcp-remote", mcpURL}}},
		})},
		"vscode": {Where: ".vscode/mcp.json", Snippet: js(map[string]any{
			"servers": map[string]any{name: map[string]any{"type": "http", "url": mcpURL}},
		})},
		"claude_code": {Where: "shell", Snippet: fmt.Sprintf("claude mcp add --transport http %s %s", name, mcpURL)},
	}
}

func applySettings(s *store.HostSettings, p *HostSettingsPatch) error {
	if p == nil {
		return nil
	}
	if p.AllowedEmailDomains != nil {
		s.AllowedEmailDomains = *p.AllowedEmailDomains
	}
	if p.SignInDomains != nil {
		s.SignInDomains = *p.SignInDomains
	}
	if p.DynamicMCPs != nil {
		s.DynamicMCPs = *p.DynamicMCPs
	}
	if p.AutoEnableNewTools != nil {
		s.AutoEnableNewTools = *p.AutoEnableNewTools
	}
	if p.AccessTokenTTLSeconds != nil {
		s.AccessTokenTTLSeconds = *p.AccessTokenTTLSeconds
	}
	if p.SessionIdleTTLSeconds != nil {
		s.SessionIdleTTLSeconds = *p.SessionIdleTTLSeconds
	}
	if p.SessionMaxTTLSeconds != nil {
		s.SessionMaxTTLSeconds = *p.SessionMaxTTLSeconds
	}
	if p.ToolVisibility != nil {
		s.ToolVisibility = *p.ToolVisibility
	}
	if p.AuditArguments != nil {
		s.AuditArguments = *p.AuditArguments
	}
	if p.DenialFormat != nil {
		s.DenialFormat = *p.DenialFormat
	}
	if p.DLP != nil {
		s.DLP = dlpSettings(*p.DLP)
	}
	if p.ArgumentValidation != nil {
		s.ArgumentValidation = *p.ArgumentValidation
	}
	if p.Anomaly != nil {
		a := *p.Anomaly
		s.Anomaly = store.AnomalySettings{Flags: a.Flags, Notify: a.Notify, Suspend: a.Suspend,
			RateFactor: a.RateFactor, RateMinPerMinute: a.RateMinPerMinute, DenialStreak: a.DenialStreak}
		if w := a.UsualHours; w != nil {
			s.Anomaly.UsualHours = &store.UsualHours{Start: w.Start, End: w.End, Timezone: w.Timezone}
		}
	}
	if p.RateLimits != nil {
		s.RateLimits = make([]store.RateLimit, len(*p.RateLimits))
		for i, l := range *p.RateLimits {
			s.RateLimits[i] = store.RateLimit{Scope: l.Scope, Server: l.Server, Tool: l.Tool, PerMinute: l.PerMinute, Burst: l.Burst}
		}
	}
	if p.ApprovalRules != nil {
		rules, err := approvalRulesOf(*p.ApprovalRules)
		if err != nil {
			return err
		}
		s.ApprovalRules = rules
	}
	return nil
}

func rateLimitDocs(limits []store.RateLimit) []RateLimit {
	docs := make([]RateLimit, len(limits))
	for i, l := range limits {
		docs[i] = RateLimit{Scope: l.Scope, Server: l.Server, Tool: l.Tool, PerMinute: l.PerMinute, Burst: l.Burst}
	}
	return docs
}

// stopHost sets the host's emergency stop: every call on the host is refused until it is
// lifted. The store's control-plane generation grows with it, so every replica sees it at the
// next request.
func (a *API) stopHost(r *http.Request, c *caller) (int, any, error) {
	var req EmergencyStopRequest
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	h, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host"))
	if err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	if h.Settings.EmergencyStop != nil {
		c.change.old = "stopped"
	} else {
		c.change.old = "running"
	}
	h.Settings.EmergencyStop = &store.EmergencyStop{Since: time.Now(), Reason: req.Reason, By: c.actor()}
	if h, err = a.cfg.Store.UpdateHost(r.Context(), h); err != nil {
		return 0, nil, err
	}
	c.change.new = "stopped"
	if req.Reason != "" {
		c.change.new += ": " + req.Reason
	}
	return http.StatusOK, a.changedHostDoc(r.Context(), h, false), nil
}

// liftHostStop lifts the host's emergency stop.
func (a *API) liftHostStop(r *http.Request, c *caller) (int, any, error) {
	h, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host"))
	if err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	if h.Settings.EmergencyStop == nil {
		c.change.none = true
	} else {
		c.change.old, c.change.new = "stopped", "running"
		h.Settings.EmergencyStop = nil
		if h, err = a.cfg.Store.UpdateHost(r.Context(), h); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, a.changedHostDoc(r.Context(), h, false), nil
}

// dlpDoc is the document of a host's result filter settings.
func dlpDoc(d dlp.Settings) DLPSettings {
	doc := DLPSettings{Mode: orDefaultString(string(d.Mode), string(dlp.ModeOff)), Kinds: []string{}, Patterns: []DLPPattern{}}
	for _, k := range d.Kinds {
		doc.Kinds = append(doc.Kinds, string(k))
	}
	for _, p := range d.Patterns {
		doc.Patterns = append(doc.Patterns, DLPPattern{Name: p.Name, Regexp: p.Regexp})
	}
	return doc
}

// dlpSummary is what an audit entry records of a host's result filter settings: the mode, the
// kinds, and the names of the custom patterns.
func dlpSummary(d dlp.Settings) string {
	kinds := "all"
	if len(d.Kinds) > 0 {
		names := make([]string, len(d.Kinds))
		for i, k := range d.Kinds {
			names[i] = string(k)
		}
		kinds = strings.Join(names, ",")
	}
	patterns := make([]string, len(d.Patterns))
	for i, p := range d.Patterns {
		patterns[i] = p.Name
	}
	return fmt.Sprintf("dlp mode=%s kinds=%s patterns=%s", orDefaultString(string(d.Mode), string(dlp.ModeOff)), kinds, strings.Join(patterns, ","))
}

// dlpSettings are the stored settings of a document (the store checks them).
func dlpSettings(doc DLPSettings) dlp.Settings {
	d := dlp.Settings{Mode: dlp.Mode(doc.Mode)}
	for _, k := range doc.Kinds {
		d.Kinds = append(d.Kinds, dlp.Kind(k))
	}
	for _, p := range doc.Patterns {
		d.Patterns = append(d.Patterns, dlp.Pattern{Name: p.Name, Regexp: p.Regexp})
	}
	return d
}

func (a *API) listHosts(r *http.Request, c *caller) (int, any, error) {
	var hosts []store.Host
	if c.global() {
		var err error
		if hosts, err = a.cfg.Store.ListHosts(r.Context()); err != nil {
			return 0, nil, err
		}
	} else {
		h, err := a.cfg.Store.GetHost(r.Context(), c.token.Host)
		if err != nil {
			return 0, nil, err
		}
		hosts = []store.Host{h}
	}
	docs := make([]Host, len(hosts))
	for i, h := range hosts {
		docs[i] = a.hostDoc(h, false)
	}
	page, err := paginate(r, docs, func(h Host) string { return h.Key })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, a.countSetAside(r.Context(), page.Items)
}

func (a *API) createHost(r *http.Request, c *caller) (int, any, error) {
	var req HostCreate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	key := strings.ToLower(strings.TrimSpace(req.Key))
	if !req.Exact && key != "" {
		key = key + "-" + randomSuffix()
	}
	if !tenant.ValidKey(key) {
		return 0, nil, problemf(http.StatusBadRequest, "host key %q is not a DNS label: use 1-63 lower-case letters, digits and '-', not starting or ending with '-' (with its suffix, a prefix may have at most 40 characters)", key)
	}
	h := store.Host{Key: key, Name: req.Name}
	if h.Name == "" {
		h.Name = key
	}
	if err := applySettings(&h.Settings, req.Settings); err != nil {
		return 0, nil, err
	}
	h, err := a.cfg.Store.CreateHost(r.Context(), h)
	if err != nil {
		return 0, nil, err
	}
	c.change.host = h.Key
	return http.StatusCreated, a.hostDoc(h, true), nil
}

func (a *API) getHost(r *http.Request, _ *caller) (int, any, error) {
	h, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host"))
	if err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	doc, err := a.hostDocCounted(r.Context(), h, true)
	return http.StatusOK, doc, err
}

func (a *API) updateHost(r *http.Request, c *caller) (int, any, error) {
	var req HostUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	h, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host"))
	if err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	if req.Name != nil {
		h.Name = *req.Name
	}
	before, beforeAnomaly := dlpSummary(h.Settings.DLP), anomalySummary(h.Settings.Anomaly)
	if err := applySettings(&h.Settings, req.Settings); err != nil {
		return 0, nil, err
	}
	if h, err = a.cfg.Store.UpdateHost(r.Context(), h); err != nil {
		return 0, nil, err
	}
	if after := dlpSummary(h.Settings.DLP); after != before {
		c.change.old, c.change.new = before, after // in the audit entry
	}
	if after := anomalySummary(h.Settings.Anomaly); after != beforeAnomaly {
		c.change.old, c.change.new = joinChange(c.change.old, beforeAnomaly), joinChange(c.change.new, after)
	}
	return http.StatusOK, a.changedHostDoc(r.Context(), h, true), nil
}

func (a *API) deleteHost(r *http.Request, _ *caller) (int, any, error) {
	key := r.PathValue("host")
	if key == tenant.DefaultHost {
		return 0, nil, problemf(http.StatusConflict, "the default host cannot be deleted")
	}
	if err := a.cfg.Store.DeleteHost(r.Context(), key); err != nil {
		return 0, nil, hostNotFound(err, key)
	}
	return http.StatusNoContent, nil, a.sync(r.Context())
}

// hostNotFound words a missing host the way users expect: "host not found: X".
func hostNotFound(err error, key string) error {
	if isNotFound(err) {
		return problemf(http.StatusNotFound, "host not found: %s", key)
	}
	return err
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDefaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// anomalyDoc is the document of a host's anomaly flags policy (lists never null).
func anomalyDoc(a store.AnomalySettings) AnomalySettings {
	doc := AnomalySettings{Flags: orEmpty(a.Flags), Notify: orEmpty(a.Notify), Suspend: orEmpty(a.Suspend),
		RateFactor: a.RateFactor, RateMinPerMinute: a.RateMinPerMinute, DenialStreak: a.DenialStreak}
	if w := a.UsualHours; w != nil {
		doc.UsualHours = &UsualHours{Start: w.Start, End: w.End, Timezone: w.Timezone}
	}
	return doc
}

// anomalySummary is a host's anomaly policy for audit entries.
func anomalySummary(a store.AnomalySettings) string {
	s := "anomaly flags=" + strings.Join(a.Flags, ",") + " notify=" + strings.Join(a.Notify, ",") + " suspend=" + strings.Join(a.Suspend, ",")
	if w := a.UsualHours; w != nil {
		s += fmt.Sprintf(" hours=%d-%d %s", w.Start, w.End, w.Timezone)
	}
	return s
}

func joinChange(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
