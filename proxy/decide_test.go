package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/proxy/argcheck"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// world is what fakeFacts know: one host with the agent "a1" of the human "u1", its servers,
// the human's grants (ceilings), the agent's consents (levels) and the servers' tools. Its
// check answers as the schema does (tool#call: the tool is enabled, not flagged, and its level
// is within both the consent and the ceiling; the server's low level: a consent and a grant),
// unless behind is set (the backend has not applied the store's latest change yet).
type world struct {
	agentMissing, agentDisabled bool
	servers                     map[string]store.Server
	ceiling, level              map[string]schema.Level // by server
	tools                       map[string]store.Tool   // by "server/name"
	latest                      string                  // the agent's latest consent ("" none)
	settings                    store.HostSettings      // the host's
	schemas                     *argcheck.Cache
	limiter                     *ratelimit.Memory
	limiterErr                  error
	took, peeked                [][]ratelimit.Bucket
	scanners                    *scannerMemo
	agentType                   string
	standing                    map[string]bool // "agent/server/tool"
	standingErr                 error

	behind                                    bool
	hostBehind                                bool // denialFacts.Behind: the host has a change the backend has not applied
	storeErr, checkErr, visibleErr, denialErr error
	visibleCalls                              int
	checked                                   []authzserver.CheckRequest
	askedDenial                               []denialQuery
}

func newWorld() *world {
	srv := store.Server{Host: "h", Key: "tracker", Name: "Tracker", URL: "https://tracker.example/mcp"}
	return &world{
		servers: map[string]store.Server{"tracker": srv},
		ceiling: map[string]schema.Level{"tracker": schema.High},
		level:   map[string]schema.Level{"tracker": schema.Medium},
		tools: map[string]store.Tool{
			"tracker/read":   {Name: "read", Level: schema.Low, Enabled: true},
			"tracker/edit":   {Name: "edit", Level: schema.Medium, Enabled: true},
			"tracker/delete": {Name: "delete", Level: schema.High, Enabled: true},
		},
		latest:   "tracker",
		schemas:  argcheck.New(0),
		limiter:  ratelimit.NewMemory(0),
		scanners: &scannerMemo{},
	}
}

func (w *world) takeTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error) {
	w.took = append(w.took, buckets)
	if w.limiterErr != nil {
		return ratelimit.Result{}, w.limiterErr
	}
	return w.limiter.Take(ctx, buckets)
}

func (w *world) peekTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error) {
	w.peeked = append(w.peeked, buckets)
	if w.limiterErr != nil {
		return ratelimit.Result{}, w.limiterErr
	}
	return w.limiter.Peek(ctx, buckets)
}

func (w *world) resultScanner(host string, settings dlp.Settings) (*dlp.Scanner, error) {
	return w.scanners.scannerOf(host, settings)
}

func (w *world) agent(_ context.Context, _, id string) (store.Agent, bool, error) {
	if w.storeErr != nil {
		return store.Agent{}, false, w.storeErr
	}
	if w.agentMissing {
		return store.Agent{}, false, nil
	}
	return store.Agent{Host: "h", ID: id, UserID: "u1", Name: "Cursor", Type: w.agentType}, true, nil
}

func (w *world) standingApproval(_ context.Context, _, agentID, server, tool string) (bool, error) {
	if w.standingErr != nil {
		return false, w.standingErr
	}
	return w.standing[agentID+"/"+server+"/"+tool], nil
}

func (w *world) hostSettings(context.Context, string) (store.HostSettings, error) {
	if w.storeErr != nil {
		return store.HostSettings{}, w.storeErr
	}
	return w.settings, nil
}

func (w *world) tool(_ context.Context, _, server, name string) (store.Tool, bool, error) {
	if w.storeErr != nil {
		return store.Tool{}, false, w.storeErr
	}
	t, ok := w.tools[server+"/"+name]
	return t, ok, nil
}

func (w *world) checkArguments(inputSchema string, arguments json.RawMessage) error {
	return w.schemas.Check(inputSchema, arguments)
}

func (w *world) latestConsent(_ context.Context, _, _ string) (string, bool, error) {
	if w.storeErr != nil {
		return "", false, w.storeErr
	}
	return w.latest, w.latest != "", nil
}

func (w *world) server(_ context.Context, _, key string) (store.Server, bool, error) {
	if w.storeErr != nil {
		return store.Server{}, false, w.storeErr
	}
	s, ok := w.servers[key]
	return s, ok, nil
}

func (w *world) check(_ context.Context, req authzserver.CheckRequest) (bool, error) {
	w.checked = append(w.checked, req)
	if w.checkErr != nil {
		return false, w.checkErr
	}
	if w.behind || w.agentMissing || w.agentDisabled {
		return false, nil
	}
	for key := range w.servers {
		level, consented := w.level[key]
		ceiling, granted := w.ceiling[key]
		if !consented || !granted {
			continue
		}
		if req.Resource == schema.Server("h", key) && req.Permission == permUseLow {
			return true, nil
		}
		for id, t := range w.tools {
			if id == key+"/"+t.Name && req.Resource == schema.Tool("h", key, t.Name) && req.Permission == schema.PermToolCall {
				return t.Enabled && !t.Flagged && t.Level <= level && t.Level <= ceiling, nil
			}
		}
	}
	return false, nil
}

func (w *world) denialFacts(_ context.Context, q denialQuery) (denialFacts, error) {
	w.askedDenial = append(w.askedDenial, q)
	if w.denialErr != nil {
		return denialFacts{}, w.denialErr
	}
	f := denialFacts{Method: q.method, Server: q.server, Tool: q.tool, Behind: w.hostBehind}
	if w.agentMissing {
		return f, nil
	}
	f.AgentFound, f.AgentDisabled = true, w.agentDisabled
	if f.AgentDisabled {
		return f, nil
	}
	if q.server == "" {
		f.AnyGrant = len(w.ceiling) > 0
		return f, nil
	}
	if _, ok := w.servers[q.server]; !ok {
		return f, nil
	}
	f.ServerFound = true
	f.Ceiling, f.HasGrant = w.ceiling[q.server]
	f.Level, f.HasConsent = w.level[q.server]
	if t, ok := w.tools[q.server+"/"+q.tool]; ok && q.tool != "" {
		f.ToolFound, f.ToolEnabled, f.ToolFlagged, f.ToolLevel = true, t.Enabled, t.Flagged, t.Level
	}
	return f, nil
}

func (w *world) visibleTools(context.Context, string, string, string) (*pinCheck, error) {
	w.visibleCalls++
	if w.visibleErr != nil {
		return nil, w.visibleErr
	}
	return &pinCheck{visible: func(string) bool { return true }}, nil
}

// post is a POST request of body to /mcp/{server} (server "" for bare /mcp), parsed as serveMCP
// parses it.
func post(server, body string, header ...string) request {
	req := request{host: "h", userID: "u1", agentID: "a1", pathServer: server, httpMethod: http.MethodPost, header: http.Header{}}
	for i := 0; i+1 < len(header); i += 2 {
		req.header.Add(header[i], header[i+1])
	}
	if m, err := parseMessage([]byte(body)); err != nil {
		req.parseErr = err
	} else {
		req.msg = &m
	}
	return req
}

func call(id int, tool string) string {
	return callWith(id, tool, `{}`)
}

func callWith(id int, tool, arguments string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, arguments)
}

// editSchema is the input schema of the tool "edit" in the safety stages' cases.
const editSchema = `{"type":"object","properties":{"title":{"type":"string","maxLength":20}},"required":["title"]}`

const (
	initialize   = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	initialized  = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	toolsList    = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	pingResponse = `{"jsonrpc":"2.0","id":"s-1","result":{}}`
)

// want is what a test expects of a decision; the zero values of the refusal's fields are not
// compared unless the verdict is verdictRefuse.
type want struct {
	verdict     verdict
	server      string // the decision's server key ("" none)
	auditServer string
	described   bool
	held        bool // the call is held for approval first

	// Refusals:
	form    answerForm
	status  int
	code    int
	reason  Reason         // data.reason of a denial
	audited audit.Decision // "" not audited
	message string         // a part of the message
}

func TestDecide(t *testing.T) {
	errStore, errBackend := errors.New("store down"), errors.New("spicedb down")
	allowed := func(v verdict) want {
		return want{verdict: v, server: "tracker", auditServer: "tracker", described: true}
	}
	denied := func(reason Reason, status int) want {
		return want{verdict: verdictRefuse, server: "tracker", auditServer: "tracker", described: true, form: formReject,
			status: status, code: ErrCodeDenied, reason: reason, audited: audit.Denied, message: "trustgate denied"}
	}
	with := func(w want, change func(*want)) want { change(&w); return w }
	stopped := func(w *world) {
		w.settings.EmergencyStop = &store.EmergencyStop{Since: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), Reason: "injection seen"}
	}
	tool := func(name string, change func(*store.Tool)) func(*world) {
		return func(w *world) {
			t := w.tools["tracker/"+name]
			change(&t)
			w.tools["tracker/"+name] = t
		}
	}

	cases := []struct {
		name  string
		world func(*world)
		req   request
		want  want
	}{
		// 1. The message.
		{"batch refused", nil, post("tracker", `[`+call(1, "read")+`]`),
			want{auditServer: "tracker", form: formRPC, status: 400, code: ErrCodeInvalidRequest, audited: audit.Denied, message: "batches are not supported"}},
		{"not JSON", nil, post("tracker", `{"jsonrpc":`),
			want{auditServer: "tracker", form: formRPC, status: 400, code: ErrCodeParse, audited: audit.Denied, message: "parse error"}},
		{"duplicate keys", nil, post("", `{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}`),
			want{form: formRPC, status: 400, code: ErrCodeInvalidRequest, audited: audit.Denied, message: "invalid request"}},

		// 2. The protocol revision's transport rules (not audited).
		{"unknown protocol version", nil, post("tracker", initialize, "Mcp-Protocol-Version", "2099-01-01"),
			want{form: formRPC, status: 400, code: ErrCodeUnsupportedVersion, message: `unsupported protocol version "2099-01-01"`}},
		{"GET on a stateless revision", nil, request{host: "h", userID: "u1", agentID: "a1", pathServer: "tracker", httpMethod: http.MethodGet,
			header: http.Header{"Mcp-Protocol-Version": {"2026-07-28"}}},
			want{form: formText, status: 405, message: "has no GET stream"}},
		{"Mcp-Method missing on a stateless revision", nil, post("tracker", toolsList, "Mcp-Protocol-Version", "2026-07-28"),
			want{form: formRPC, status: 400, code: ErrCodeHeaderMismatch, message: "the Mcp-Method header is required"}},
		{"Mcp-Name differs from the body", nil, post("tracker", call(3, "read"), "Mcp-Name", "delete"),
			want{form: formRPC, status: 400, code: ErrCodeHeaderMismatch, message: `Mcp-Name header value "delete" does not match body value "read"`}},

		// 3. The server.
		{"bare /mcp follows the latest consent", nil, post("", call(4, "read")), allowed(verdictForward)},
		{"bare /mcp, not connected", func(w *world) { w.latest = "" }, post("", initialize),
			want{verdict: verdictRefuse, described: true, form: formReject, status: 403, code: ErrCodeDenied, reason: ReasonNotConnected, audited: audit.Denied}},
		{"bare /mcp, no access anywhere", func(w *world) { w.latest, w.ceiling = "", nil }, post("", initialize),
			want{verdict: verdictRefuse, described: true, form: formReject, status: 403, code: ErrCodeDenied, reason: ReasonNoAccess, audited: audit.Denied}},
		{"unknown server", nil, post("nope", initialize),
			want{verdict: verdictRefuse, auditServer: "nope", described: true, form: formReject, status: 404, code: ErrCodeDenied, reason: ReasonUnknownServer, audited: audit.Denied}},
		{"store down", func(w *world) { w.storeErr = errStore }, post("tracker", call(5, "read")),
			want{verdict: verdictRefuse, described: true, form: formReject, status: 503, code: ErrCodeUnavailable, audited: audit.Error, message: "could not read its configuration"}},

		// 3b. The host's emergency stop.
		{"stopped: tools/call refused", stopped, post("tracker", call(40, "read")),
			with(denied(ReasonEmergencyStop, 403), func(w *want) { w.message = "(emergency stop since 2026-12-06T10:00:00Z): injection seen" })},
		{"stopped: before the trust level", stopped, post("tracker", call(41, "delete")),
			with(denied(ReasonEmergencyStop, 403), func(w *want) { w.message = "emergency stop" })},
		{"stopped: resources/read refused", stopped, post("tracker", `{"jsonrpc":"2.0","id":42,"method":"resources/read","params":{"uri":"file:///x"}}`),
			with(denied(ReasonEmergencyStop, 403), func(w *want) { w.message = "trustgate refused resources/read on tracker" })},
		{"stopped: initialize passes", stopped, post("tracker", initialize), allowed(verdictForward)},
		{"stopped: tools/list passes", stopped, post("tracker", toolsList), allowed(verdictFilter)},
		{"stopped: notification passes", stopped, post("tracker", initialized), allowed(verdictForward)},
		{"stopped: response passes", stopped, post("tracker", pingResponse), allowed(verdictForward)},

		// 4. The trust level.
		{"call within the level (low)", nil, post("tracker", call(6, "read")), allowed(verdictForward)},
		{"call at the level (medium)", nil, post("tracker", call(7, "edit")), allowed(verdictForward)},
		{"call at the level (high)", func(w *world) { w.level["tracker"] = schema.High }, post("tracker", call(8, "delete")), allowed(verdictForward)},
		{"level too low", nil, post("tracker", call(9, "delete")), denied(ReasonLevelTooLow, 403)},
		{"ceiling too low", func(w *world) { w.level["tracker"], w.ceiling["tracker"] = schema.High, schema.Medium },
			post("tracker", call(10, "delete")), denied(ReasonCeilingTooLow, 403)},
		{"unknown tool", nil, post("tracker", call(11, "nope")), denied(ReasonUnknownTool, 403)},
		{"tool disabled", tool("read", func(t *store.Tool) { t.Enabled = false }), post("tracker", call(12, "read")), denied(ReasonToolDisabled, 403)},
		{"tool pending review", tool("read", func(t *store.Tool) { t.Flagged = true }), post("tracker", call(13, "read")), denied(ReasonToolPendingReview, 403)},
		{"no access (grant revoked)", func(w *world) { delete(w.ceiling, "tracker") }, post("tracker", call(14, "read")), denied(ReasonNoAccess, 403)},
		{"not consented", func(w *world) { delete(w.level, "tracker") }, post("tracker", initialize), denied(ReasonNotConsented, 403)},
		{"agent disabled", func(w *world) { w.agentDisabled = true }, post("tracker", call(15, "read")), denied(ReasonAgentDisabled, 403)},
		{"agent removed", func(w *world) { w.agentMissing = true }, post("tracker", call(16, "read")), denied(ReasonAgentRemoved, 403)},
		{"pending change", func(w *world) { w.behind = true }, post("tracker", call(17, "read")), denied(ReasonPendingChange, 403)},
		{"denied notification", func(w *world) { delete(w.level, "tracker") }, post("tracker", initialized), denied(ReasonNotConsented, 403)},
		{"denial facts unreadable", func(w *world) { w.behind, w.denialErr = true, errStore }, post("tracker", call(18, "read")),
			with(denied("", 503), func(w *want) {
				w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "could not read its configuration"
			})},
		{"tools/call without a name (not audited)", nil, post("tracker", `{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{}}`),
			with(denied("", 200), func(w *want) {
				w.form, w.code, w.audited, w.message = formRPC, ErrCodeInvalidParams, "", "tools/call needs params.name"
			})},
		{"backend down", func(w *world) { w.checkErr = errBackend }, post("tracker", call(20, "read")),
			with(denied("", 503), func(w *want) { w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "authorization backend" })},

		// Other methods: the server's low level, forwarded untouched.
		{"initialize", nil, post("tracker", initialize), allowed(verdictForward)},
		{"notification", nil, post("tracker", initialized), allowed(verdictForward)},
		{"resources/read", nil, post("tracker", `{"jsonrpc":"2.0","id":21,"method":"resources/read","params":{"uri":"file:///x"}}`), allowed(verdictForward)},
		{"GET stream", nil, request{host: "h", userID: "u1", agentID: "a1", pathServer: "tracker", httpMethod: http.MethodGet, header: http.Header{}}, allowed(verdictForward)},
		{"DELETE session", nil, request{host: "h", userID: "u1", agentID: "a1", pathServer: "tracker", httpMethod: http.MethodDelete, header: http.Header{}}, allowed(verdictForward)},
		{"response (no check)", func(w *world) { w.checkErr = errBackend }, post("tracker", pingResponse), allowed(verdictForward)},

		// 5. The safety stages: arguments.
		{"arguments fit the schema", tool("edit", func(t *store.Tool) { t.InputSchema = editSchema }),
			post("tracker", callWith(30, "edit", `{"title":"fix"}`)), allowed(verdictForward)},
		{"arguments do not fit", tool("edit", func(t *store.Tool) { t.InputSchema = editSchema }),
			post("tracker", callWith(31, "edit", `{"title":5}`)),
			with(denied(ReasonInvalidArguments, 403), func(w *want) {
				w.code, w.message = ErrCodeInvalidParams, "trustgate refused tools/call \"edit\" on tracker: its arguments do not fit the tool's input schema: at /title"
			})},
		{"required argument missing", tool("edit", func(t *store.Tool) { t.InputSchema = editSchema }),
			post("tracker", callWith(32, "edit", `{}`)),
			with(denied(ReasonInvalidArguments, 403), func(w *want) { w.code, w.message = ErrCodeInvalidParams, "title" })},
		{"arguments not checked when the host turned it off", func(w *world) {
			tool("edit", func(t *store.Tool) { t.InputSchema = editSchema })(w)
			w.settings.ArgumentValidation = store.ArgumentValidationOff
		}, post("tracker", callWith(33, "edit", `{"title":5}`)), allowed(verdictForward)},
		{"a schema that refers elsewhere fails closed", tool("edit", func(t *store.Tool) { t.InputSchema = `{"$ref":"https://schemas.example/x.json"}` }),
			post("tracker", callWith(34, "edit", `{}`)),
			with(denied(ReasonInputSchemaUnusable, 403), func(w *want) { w.message = "input schema cannot be used" })},
		{"the trust level comes first", tool("delete", func(t *store.Tool) { t.InputSchema = editSchema }),
			post("tracker", callWith(35, "delete", `{}`)), denied(ReasonLevelTooLow, 403)},
		{"other methods are not checked", nil, post("tracker", `{"jsonrpc":"2.0","id":36,"method":"prompts/get","params":{"name":"p","arguments":5}}`), allowed(verdictForward)},

		// 5. The safety stages: rate limits.
		{"rate limiter down fails closed", func(w *world) {
			w.settings.RateLimits = []store.RateLimit{{Scope: store.RateScopeAgent, PerMinute: 10}}
			w.limiterErr = errBackend
		}, post("tracker", call(50, "read")),
			with(denied("", 503), func(w *want) { w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "rate limiter" })},
		{"invalid arguments take no token", func(w *world) {
			tool("edit", func(t *store.Tool) { t.InputSchema = editSchema })(w)
			w.settings.RateLimits = []store.RateLimit{{Scope: store.RateScopeAgent, PerMinute: 10}}
			w.limiterErr = errBackend
		}, post("tracker", callWith(51, "edit", `{}`)),
			with(denied(ReasonInvalidArguments, 403), func(w *want) { w.code, w.message = ErrCodeInvalidParams, "title" })},

		// 6. tools/list.
		{"tools/list is filtered", nil, post("tracker", toolsList), allowed(verdictFilter)},
		{"tools/list without visibility fails closed", func(w *world) { w.visibleErr = errBackend }, post("tracker", toolsList),
			with(denied("", 503), func(w *want) { w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "authorization backend" })},

		// 6. A tools/call's result filter: the server's mode, else the host's.
		{"host redacts results", func(w *world) { w.settings.DLP.Mode = dlp.ModeRedact }, post("tracker", call(60, "read")), allowed(verdictFilterResult)},
		{"host blocks results", func(w *world) { w.settings.DLP.Mode = dlp.ModeBlock }, post("tracker", call(61, "read")), allowed(verdictFilterResult)},
		{"server's mode off wins over the host's", func(w *world) {
			w.settings.DLP.Mode = dlp.ModeRedact
			srv := w.servers["tracker"]
			srv.DLPMode = dlp.ModeOff
			w.servers["tracker"] = srv
		}, post("tracker", call(62, "read")), allowed(verdictForward)},
		{"server's mode on under a host's off", func(w *world) {
			srv := w.servers["tracker"]
			srv.DLPMode = dlp.ModeRedact
			w.servers["tracker"] = srv
		}, post("tracker", call(63, "read")), allowed(verdictFilterResult)},
		{"only tools/call results are filtered", func(w *world) { w.settings.DLP.Mode = dlp.ModeRedact }, post("tracker", initialize), allowed(verdictForward)},
		{"a denied call is not filtered", func(w *world) { w.settings.DLP.Mode = dlp.ModeRedact }, post("tracker", call(64, "delete")), denied(ReasonLevelTooLow, 403)},
		{"unusable filter settings fail closed", func(w *world) {
			w.settings.DLP = dlp.Settings{Mode: dlp.ModeRedact, Patterns: []dlp.Pattern{{Name: "bad", Regexp: "("}}}
		}, post("tracker", call(65, "read")),
			with(denied("", 503), func(w *want) { w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "result filter" })},

		// 5. The safety stages: approval.
		{"high calls held", func(w *world) {
			w.level["tracker"] = schema.High
			w.settings.ApprovalRules = []store.ApprovalRule{{Level: schema.High}}
		}, post("tracker", call(70, "delete")), with(allowed(verdictForward), func(w *want) { w.held = true })},
		{"a level rule holds the levels above it", func(w *world) {
			w.level["tracker"] = schema.High
			w.settings.ApprovalRules = []store.ApprovalRule{{Level: schema.Medium}}
		}, post("tracker", call(71, "delete")), with(allowed(verdictForward), func(w *want) { w.held = true })},
		{"calls below the rule's level are not held", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Level: schema.High}}
		}, post("tracker", call(72, "edit")), allowed(verdictForward)},
		{"a tool rule", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker", Tool: "read"}}
		}, post("tracker", call(73, "read")), with(allowed(verdictForward), func(w *want) { w.held = true })},
		{"another server's rule", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "github"}}
		}, post("tracker", call(74, "read")), allowed(verdictForward)},
		{"an agent type rule", func(w *world) {
			w.agentType = "ambient"
			w.settings.ApprovalRules = []store.ApprovalRule{{AgentType: "ambient", Level: schema.Medium}}
		}, post("tracker", call(75, "edit")), with(allowed(verdictForward), func(w *want) { w.held = true })},
		{"another agent type", func(w *world) {
			w.agentType = "chat"
			w.settings.ApprovalRules = []store.ApprovalRule{{AgentType: "ambient"}}
		}, post("tracker", call(76, "edit")), allowed(verdictForward)},
		{"a standing approval lets it through", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
			w.standing = map[string]bool{"a1/tracker/edit": true}
		}, post("tracker", call(77, "edit")), allowed(verdictForward)},
		{"a standing approval is per tool", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
			w.standing = map[string]bool{"a1/tracker/edit": true}
		}, post("tracker", call(78, "read")), with(allowed(verdictForward), func(w *want) { w.held = true })},
		{"standing approvals unreadable fail closed", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
			w.standingErr = errStore
		}, post("tracker", call(79, "read")),
			with(denied("", 503), func(w *want) {
				w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "could not read its configuration"
			})},
		{"held and filtered", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
			w.settings.DLP.Mode = dlp.ModeRedact
		}, post("tracker", call(80, "read")), with(allowed(verdictFilterResult), func(w *want) { w.held = true })},
		{"denied calls are not held", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Level: schema.High}}
		}, post("tracker", call(81, "delete")), denied(ReasonLevelTooLow, 403)},
		{"invalid arguments are not held", func(w *world) {
			tool("edit", func(t *store.Tool) { t.InputSchema = editSchema })(w)
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
		}, post("tracker", callWith(82, "edit", `{}`)),
			with(denied(ReasonInvalidArguments, 403), func(w *want) { w.code, w.message = ErrCodeInvalidParams, "title" })},
		{"rate-limited calls are not held", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
			w.settings.RateLimits = []store.RateLimit{{Scope: store.RateScopeAgent, PerMinute: 10}}
			w.limiterErr = errBackend
		}, post("tracker", call(83, "read")),
			with(denied("", 503), func(w *want) { w.code, w.audited, w.message = ErrCodeUnavailable, audit.Error, "rate limiter" })},
		{"other methods are not held", func(w *world) {
			w.settings.ApprovalRules = []store.ApprovalRule{{Server: "tracker"}}
		}, post("tracker", toolsList), allowed(verdictFilter)},

		// 7. The server's URL.
		{"invalid server URL", func(w *world) { w.servers["tracker"] = store.Server{Host: "h", Key: "tracker", URL: "ftp://tracker"} },
			post("tracker", call(22, "read")),
			with(denied("", 502), func(w *want) { w.code, w.audited, w.message = ErrCodeUpstream, audit.Error, "could not be reached" })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			if c.world != nil {
				c.world(w)
			}
			d := decide(context.Background(), c.req, w)
			if d.verdict != c.want.verdict || d.server.Key != c.want.server || d.auditServer != c.want.auditServer || d.described != c.want.described {
				t.Fatalf("decision %s, server %q, audit server %q, described %v; want %s, %q, %q, %v (refusal %+v)",
					d.verdict, d.server.Key, d.auditServer, d.described, c.want.verdict, c.want.server, c.want.auditServer, c.want.described, d.refusal)
			}
			if (d.hold != nil) != c.want.held {
				t.Fatalf("held %v, want %v", d.hold != nil, c.want.held)
			}
			if d.verdict != verdictRefuse {
				if d.target == nil || d.target.String() != d.server.URL {
					t.Errorf("target %v, want the server's URL", d.target)
				}
				if (d.verdict == verdictFilter) != (d.keep != nil) {
					t.Errorf("verdict %s with keep %v", d.verdict, d.keep != nil)
				}
				if (d.verdict == verdictFilterResult) != (d.result != nil) {
					t.Errorf("verdict %s with result filter %v", d.verdict, d.result != nil)
				}
				return
			}
			rf := d.refusal
			if rf.form != c.want.form || rf.status != c.want.status || rf.code != c.want.code || rf.denial != c.want.reason || rf.audited != c.want.audited {
				t.Errorf("refusal form %d, status %d, code %d, reason %q, audited %q; want %d, %d, %d, %q, %q",
					rf.form, rf.status, rf.code, rf.denial, rf.audited, c.want.form, c.want.status, c.want.code, c.want.reason, c.want.audited)
			}
			if !strings.Contains(rf.message, c.want.message) {
				t.Errorf("message %q, want it to contain %q", rf.message, c.want.message)
			}
			if rf.audited != "" && rf.reason == "" {
				t.Errorf("an audited refusal without a reason")
			}
			if rf.denial != "" {
				var dataReason any
				switch data := rf.data.(type) {
				case map[string]string:
					dataReason = data["reason"]
				case map[string]any:
					dataReason = data["reason"]
				}
				if dataReason != string(rf.denial) || !strings.HasPrefix(rf.reason, string(rf.denial)+": ") {
					t.Errorf("denial %q: data %v, audit reason %q", rf.denial, rf.data, rf.reason)
				}
				if c.req.msg != nil && c.req.msg.toolCall && (rf.call == nil || rf.call.fields["reason"] != string(rf.denial)) {
					t.Errorf("denial %q of a tools/call without its result form (%+v)", rf.denial, rf.call)
				}
			}
		})
	}
}

// TestDecideAsksOnce: a message costs one authorization check (a tools/call: the tool, any
// other message: the server's low level) and reads the denial facts only when denied.
func TestDecideAsksOnce(t *testing.T) {
	cases := []struct {
		body       string
		resource   string
		permission string
	}{
		{call(1, "read"), schema.Tool("h", "tracker", "read").String(), schema.PermToolCall},
		{initialize, schema.Server("h", "tracker").String(), permUseLow},
		{toolsList, schema.Server("h", "tracker").String(), permUseLow},
	}
	for _, c := range cases {
		w := newWorld()
		d := decide(context.Background(), post("tracker", c.body), w)
		if d.verdict == verdictRefuse || len(w.checked) != 1 || len(w.askedDenial) != 0 {
			t.Fatalf("%s: %s after %d checks and %d denial reads", c.body, d.verdict, len(w.checked), len(w.askedDenial))
		}
		if got := w.checked[0]; got.Resource.String() != c.resource || got.Permission != c.permission ||
			got.Subject.Object != schema.Agent("h", "a1") {
			t.Errorf("%s: checked %+v", c.body, got)
		}
	}
	w := newWorld()
	decide(context.Background(), post("tracker", call(2, "delete")), w)
	if len(w.checked) != 1 || len(w.askedDenial) != 1 || w.askedDenial[0].tool != "delete" || w.askedDenial[0].method != "tools/call" {
		t.Fatalf("denied call: %d checks, denial reads %+v", len(w.checked), w.askedDenial)
	}
}

// TestDecideDenialData: a denial's data names the levels involved, and the refusal carries
// them for the audit entry.
func TestDecideDenialData(t *testing.T) {
	d := decide(context.Background(), post("tracker", call(1, "delete")), newWorld())
	data, _ := d.refusal.data.(map[string]string)
	got, _ := json.Marshal(data)
	if data["agent_level"] != "medium" || data["ceiling"] != "high" || data["required_level"] != "high" || data["tool"] != "delete" {
		t.Fatalf("data %s", got)
	}
	if l := d.refusal.levels; l == nil || *l != (deniedLevels{agent: "medium", ceiling: "high", required: "high"}) {
		t.Fatalf("levels %+v", l)
	}
}

// TestDecideRateLimits: a call takes a token from the bucket of each scope the host limits,
// with the most specific rule of each scope; over a limit it is refused naming the limit and
// retry_after, and other agents, tools and servers are not affected.
func TestDecideRateLimits(t *testing.T) {
	w := newWorld()
	w.tools["tracker/edit"] = store.Tool{Name: "edit", Level: schema.Low, Enabled: true}
	w.settings.RateLimits = []store.RateLimit{
		{Scope: store.RateScopeAgent, PerMinute: 100},
		{Scope: store.RateScopeAgentTool, Server: "tracker", Tool: "edit", PerMinute: 2},
		{Scope: store.RateScopeHost, PerMinute: 6, Burst: 5},
	}
	as := func(agent string, r request) request { r.agentID = agent; return r }
	for i := range 2 {
		if d := decide(context.Background(), post("tracker", call(i, "edit")), w); d.verdict != verdictForward {
			t.Fatalf("edit %d: %s %+v", i, d.verdict, d.refusal)
		}
	}
	d := decide(context.Background(), post("tracker", call(3, "edit")), w)
	rf := d.refusal
	if d.verdict != verdictRefuse || rf.denial != ReasonRateLimited || rf.code != ErrCodeDenied {
		t.Fatalf("third edit: %s %+v", d.verdict, rf)
	}
	data := rf.data.(map[string]any)
	if data["limit"] != "agent_tool" || data["limit_tool"] != "edit" || data["per_minute"] != 2 || data["retry_after"].(int) < 1 || data["retry_after"].(int) > 30 {
		t.Errorf("data %v", data)
	}
	if !strings.Contains(rf.message, "this agent's per-tool limit on tracker/edit of 2 calls a minute (burst 2) is spent") ||
		!strings.Contains(rf.message, "Try again in") || rf.call == nil || rf.call.fields["retry_after"] == nil {
		t.Errorf("message %q, result %+v", rf.message, rf.call)
	}
	if !strings.HasPrefix(rf.reason, "rate_limited: ") || rf.audited != audit.Denied {
		t.Errorf("audit %q %q", rf.audited, rf.reason)
	}
	// The same agent may still call another tool; another agent may call edit.
	if d := decide(context.Background(), post("tracker", call(4, "read")), w); d.verdict != verdictForward {
		t.Fatalf("read after edit's limit: %+v", d.refusal)
	}
	if d := decide(context.Background(), as("a2", post("tracker", call(5, "edit"))), w); d.verdict != verdictForward {
		t.Fatalf("another agent's edit: %+v", d.refusal)
	}
	// Five calls went through (two edits, the read, a2's edit; the refused one took nothing):
	// the host's burst of 5 has one token left.
	if d := decide(context.Background(), as("a3", post("tracker", call(6, "read"))), w); d.verdict != verdictForward {
		t.Fatalf("fifth call on the host: %+v", d.refusal)
	}
	d = decide(context.Background(), as("a4", post("tracker", call(7, "read"))), w)
	if d.verdict != verdictRefuse || d.refusal.data.(map[string]any)["limit"] != "host" {
		t.Fatalf("sixth call on the host: %s %+v", d.verdict, d.refusal)
	}
	// Other messages take no token.
	n := len(w.took)
	decide(context.Background(), post("tracker", toolsList), w)
	decide(context.Background(), post("tracker", initialize), w)
	if len(w.took) != n {
		t.Fatal("a message other than tools/call took tokens")
	}
}

// TestDecideDryRun: the admin API's check runs the same stages, reads the rate limits without
// taking a token, and checks arguments only when the question gives some.
func TestDecideDryRun(t *testing.T) {
	w := newWorld()
	w.tools["tracker/edit"] = store.Tool{Name: "edit", Level: schema.Medium, Enabled: true, InputSchema: editSchema}
	w.settings.RateLimits = []store.RateLimit{{Scope: store.RateScopeAgent, PerMinute: 1, Burst: 1}}
	dry := func(arguments string) decision {
		m := &message{kind: kindRequest, id: json.RawMessage("0"), method: "tools/call", toolCall: true, tool: "edit"}
		if arguments != "" {
			m.arguments = json.RawMessage(arguments)
		}
		req := request{host: "h", userID: "u1", agentID: "a1", pathServer: "tracker", httpMethod: http.MethodPost, msg: m, dryRun: true}
		return decideMessage(context.Background(), req, decision{described: true}, w)
	}
	for i := range 3 {
		if d := dry(""); d.verdict != verdictForward {
			t.Fatalf("dry run %d without arguments: %s %+v", i, d.verdict, d.refusal)
		}
	}
	if len(w.took) != 0 || len(w.peeked) != 3 {
		t.Fatalf("dry runs took %d and peeked %d times, want 0 and 3", len(w.took), len(w.peeked))
	}
	if d := dry(`{"title":5}`); d.refusal.denial != ReasonInvalidArguments {
		t.Fatalf("dry run with arguments that do not fit: %s %+v", d.verdict, d.refusal)
	}
	// The one token goes to a real call; the check then answers what the next call would get.
	if d := decide(context.Background(), post("tracker", callWith(1, "edit", `{"title":"x"}`)), w); d.verdict != verdictForward {
		t.Fatalf("the call: %s %+v", d.verdict, d.refusal)
	}
	if d := dry(""); d.refusal.denial != ReasonRateLimited {
		t.Fatalf("dry run after the limit is spent: %s %+v", d.verdict, d.refusal)
	}
}

func TestRulesFor(t *testing.T) {
	limits := []store.RateLimit{
		{Scope: "agent", PerMinute: 1},
		{Scope: "agent", Server: "tracker", PerMinute: 2},
		{Scope: "agent", Server: "tracker", Tool: "edit", PerMinute: 3},
		{Scope: "human", Server: "wiki", PerMinute: 4},
	}
	for _, c := range []struct {
		server, tool string
		want         []int
	}{
		{"tracker", "edit", []int{3}},
		{"tracker", "read", []int{2}},
		{"wiki", "edit", []int{1, 4}},
		{"other", "x", []int{1}},
	} {
		var got []int
		for _, r := range rulesFor(limits, c.server, c.tool) {
			got = append(got, r.PerMinute)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s/%s: rules %v, want %v", c.server, c.tool, got, c.want)
		}
	}
	// Keys never collide across hosts, scopes or names that contain separators.
	a := bucketKey(request{host: "h", agentID: "a|b"}, "s", "t", store.RateLimit{Scope: "agent"})
	b := bucketKey(request{host: "h", agentID: "a"}, "s", "t", store.RateLimit{Scope: "agent", Tool: "b"})
	if a == b || !strings.HasPrefix(a, "{h}") {
		t.Errorf("keys %q %q", a, b)
	}
}
