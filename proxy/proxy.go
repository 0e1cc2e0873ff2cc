// Package proxy is trustgate's Streamable HTTP MCP proxy: the hot path of every tool call.
//
// One request, top to bottom (serveMCP):
//
//  1. Origin is checked against the host's base URL (DNS rebinding protection).
//  2. The bearer JWT is verified: this host's issuer, audience = this MCP resource
//     (<base>/mcp or <base>/mcp/{server}), claims agent_id and host = this host.
//  3. The upstream server is the one in the path, or for bare /mcp the server the agent was
//     consented on (the most recent consent when there are several).
//  4. A POST body is one JSON-RPC 2.0 message (batches and malformed JSON are answered here and
//     never forwarded) and gets exactly one authorization decision: tools/call is one check of
//     tool#call; every other request and notification needs the low trust level on the server;
//     responses (the client answering a server request) pass once authenticated.
//  5. Allowed messages are forwarded with httputil.ReverseProxy to the server's URL with the
//     upstream's own static credential (never the gateway's token or cookies); responses
//     stream back, SSE flushed per event.
//  6. tools/list responses keep only the tools the agent may call (one lookup, not one check
//     per tool), or every enabled tool when the host's ToolVisibility is "all".
//  7. Every decision is an audit entry (audit.go); an allowed message is forwarded only after
//     its entry is durable, and its outcome follows as a second entry.
//
// Steps 3, 4 and 6, the safety stages and the choice of the result filter are one pure
// function, decide (decide.go): the parsed message and the stored facts in, a decision value
// out (forward, filter the tools/list answer, filter the tools/call's result, or refuse with the
// answer, the audit entry's decision and reason). serveMCP applies it in one place.
//
// Denials of requests are HTTP 200 with a JSON-RPC error (ErrCodeDenied), never 401/403, so
// that clients show the message instead of re-authenticating. The message and data.reason name
// the real cause and the action that fixes it, read from the store on the denial path only
// (denial.go). A denied tools/call is, unless its host wants that error, the tool's result with
// isError, which the model reads (denialresult.go). Denied notifications are answered
// 202 Accepted and dropped (they have no id to answer with an error; MCP clients treat any
// other status as a transport failure); the drop is logged. A failing authorization backend
// fails closed (ErrCodeUnavailable).
//
// Protocol revisions (protocol.go): MCP-Protocol-Version must name a known revision; on
// 2026-07-28 the Mcp-Method/Mcp-Name headers must match the body, GET and DELETE are 405 and
// there are no sessions. Upstreams that speak only the 2024-11-05 HTTP+SSE transport are
// relayed for Streamable HTTP clients (legacysse.go). Per-server connect, first-byte and
// idle-stream timeouts apply per request on one pooled transport per network (timeouts.go);
// every connection is dialled under the server's network policy (upstream.go).
//
// Audit (audit.go): one entry per decision; an allowed message is forwarded only once its
// entry is durable.
//
// The answers to a tools/call pass through the result filter (resultfilter.go, package dlp)
// when the server's or the host's mode is redact or block.
//
// A tools/call the host's approval policy holds waits for a person's decision before it is
// forwarded (approval.go); a call that is not approved is refused and never forwarded.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/internal/httplimit"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/proxy/argcheck"
	"github.com/trustgate/trustgate/proxy/listchanged"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/telemetry"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/webhook"
)

// DefaultMaxBodyBytes bounds a POST body when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 4 << 20

// permUseLow is the server permission every message other than tools/call needs.
const permUseLow = "use_low"

// backendTimeout bounds each authorization or store call on the hot path.
const backendTimeout = 10 * time.Second

// HostBehind says whether a host has relationship changes the authorization backend has not
// applied yet (authzserver.Lag).
type HostBehind interface {
	Behind(host string) bool
}

// Config is what the proxy needs.
type Config struct {
	Store   store.HotReads
	Backend authzserver.Backend
	// Behind says which hosts have relationship changes the authorization backend has not
	// applied (authzserver.Lag): Backend denies their calls (authzserver.NewFailClosed), and
	// such a denial is explained as pending_change whatever the store says. Nil: none is.
	Behind HostBehind
	KeySet *accesstoken.KeySet
	URLs   tenant.URLs
	// Keys unseal servers' static credentials (required only for servers that have some).
	Keys *secrets.Keyring
	// Upstream gives humans' own upstream OAuth tokens (upstream.go); nil: none are used.
	Upstream UpstreamTokens
	Logger   *slog.Logger // default: discarded
	// MaxBodyBytes bounds a POST body (default DefaultMaxBodyBytes); larger bodies get 413.
	MaxBodyBytes int64
	// SessionKey binds Mcp-Session-Id values to the agent that opened the session (see
	// session.go). Replicas must share it; empty means a random key for this process.
	SessionKey []byte
	// Audit receives one entry per decision (see audit.go). Nil disables the audit log; only
	// tests that build a Proxy directly leave it nil.
	Audit audit.Appender
	// Telemetry records a span and metrics per request (telemetry.go); nil records nothing.
	Telemetry *telemetry.Telemetry
	// HostNetworks is what servers on network "host" may be reached on: public addresses
	// plus the operator's prefixes (the zero value: public addresses only). Every connection
	// is checked at dial time; servers on "any" reach every address.
	HostNetworks ssrf.Policy
	// Reviewer flags a tool whose definition in a tools/list answer differs from the approved
	// one, and records a tool the store does not know (pinning.go), as server sync does. Nil:
	// such tools are withheld but not recorded (only tests that build a Proxy directly).
	Reviewer *catalog.Catalog
	// Syncer applies a flag to the authorization backend at once (nil: the writer's periodic
	// run applies it).
	Syncer Syncer
	// Limiter holds the hosts' rate-limit buckets (safety.go): shared by the replicas (Redis)
	// or nil for this process's own.
	Limiter ratelimit.Limiter
	// Webhooks posts notifications to hosts' incoming webhooks in the background (package
	// webhook); nil: none are posted.
	Webhooks *webhook.Sender
	// Anomalies flags tool calls that are new for their agent (anomalies.go); nil: none.
	Anomalies *anomaly.Detector
	// Suspender suspends an agent when the host's anomaly policy says so; nil: never.
	Suspender Suspender
	// Approvals keeps the calls held for a person's approval and the standing approvals
	// (approval.go). Nil: a call the host's policy would hold is refused (fail closed).
	Approvals store.Approvals
	// ApprovalNotifier tells a held call's approvers (nil: nobody is told; the API and the
	// dashboard still list it).
	ApprovalNotifier ApprovalNotifier
	// ApprovalKeepAlive is how often a held request's event stream gets a sign of life
	// (default DefaultApprovalKeepAlive).
	ApprovalKeepAlive time.Duration
	// Activity records agents' last use (activity.go); nil: it is not recorded.
	Activity ActivityRecorder
}

// Proxy is the MCP proxy. It is safe for concurrent use.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	trans    *transports
	sessions sessionBinder
	legacy   *legacyState
	// streams ends when the gateway shuts down: the clients' GET streams watch it (see
	// CloseStreams).
	streams      context.Context
	closeStreams context.CancelCauseFunc
	// dropsLogged: the servers (host/server) whose unreadable tool entries were logged.
	dropsLogged sync.Map
	// defs memoises the definition hashes of tool entries; reviewing holds the reviews in
	// flight (reviewKey → <-chan struct{}) (pinning.go).
	defs      *defMemo
	reviewing sync.Map
	// facts are what decide reads (decide.go).
	facts facts
	// notifier tells the agents' GET streams when their tool lists change (notify.go).
	notifier *listchanged.Notifier
	// activity writes agents' last use in the background (activity.go); nil: not recorded.
	activity *activity
	// headers are the servers' header credentials once unsealed (upstream.go).
	headers openedHeaders
}

// New checks the configuration and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Store == nil || cfg.Backend == nil || cfg.KeySet == nil || cfg.URLs.Public == nil {
		return nil, errors.New("proxy: Store, Backend, KeySet and URLs are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, trans: newTransports(cfg.HostNetworks), sessions: newSessionBinder(cfg.SessionKey), legacy: newLegacyState(), defs: newDefMemo()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.activity = newActivity(cfg.Activity, p.log)
	if cfg.Limiter == nil {
		cfg.Limiter = ratelimit.NewMemory(0)
		p.cfg.Limiter = cfg.Limiter
	}
	sf := storeFacts{st: cfg.Store, backend: cfg.Backend, behind: cfg.Behind, defs: p.defs, schemas: argcheck.New(0), limiter: cfg.Limiter, scanners: &scannerMemo{}, approvals: cfg.Approvals}
	p.facts, p.notifier = sf, p.newNotifier(sf)
	p.streams, p.closeStreams = context.WithCancelCause(context.Background())
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      timeoutTransport{p.trans},
		FlushInterval:  -1, // flush after every write: SSE events reach the client at once
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.reverseProxyError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// Routes registers a host's MCP endpoints, /mcp and /mcp/{server}, every method (serveMCP
// answers the ones it does not serve). The host is in the request context (tenant.Mount).
func (p *Proxy) Routes(r *mux.Router) {
	r.Path("/mcp").HandlerFunc(p.serveMCP)
	r.Path("/mcp/{server}").HandlerFunc(p.serveMCP)
}

// CloseIdleConnections closes the idle upstream connections.
func (p *Proxy) CloseIdleConnections() { p.trans.CloseIdleConnections() }

// Close ends the open legacy (HTTP+SSE) upstream connections and closes idle connections.
func (p *Proxy) Close() {
	p.CloseStreams()
	p.legacy.closeAll()
	p.trans.CloseIdleConnections()
}

// errShuttingDown ends the clients' GET streams at shutdown.
var errShuttingDown = errors.New("the gateway is shutting down")

// CloseStreams ends every client's GET stream (the server-to-client channel of Streamable HTTP
// and of relayed HTTP+SSE sessions) cleanly, now and for streams opened later: the stream's
// response ends like one the upstream closed, and the client opens a new one (on another
// replica). The gateway calls it when shutdown begins, so that idle streams, which never end
// on their own, do not hold the shutdown for its whole timeout. In-flight requests (POST) are
// not affected: they finish.
func (p *Proxy) CloseStreams() { p.closeStreams(errShuttingDown) }

// A GET stream also ends, cleanly, when the access token it was opened with no longer stands:
// at the token's expiry, and when a change to the agent's tools shows that the agent was
// disabled or removed or the token revoked. The client opens a new stream with its current
// token, and a token that is refused gets a 401 then. Without this, a stream opened once would
// carry the upstream's server-to-client messages to a disabled agent for as long as it stays
// open.
var (
	errStreamTokenExpired = errors.New("the access token the stream was opened with expired")
	errStreamTokenRefused = errors.New("the access token the stream was opened with no longer stands")
)

// endsStreamCleanly reports whether a GET stream's context ended for a reason that ends the
// stream as if the upstream had closed it (so that the client reconnects rather than reporting
// a broken connection).
func endsStreamCleanly(cause error) bool {
	return errors.Is(cause, errShuttingDown) || errors.Is(cause, errStreamTokenExpired) || errors.Is(cause, errStreamTokenRefused)
}

// streamContext is the context of a GET stream: r's, also ended (with cause errShuttingDown)
// by CloseStreams, and by end (with the cause given).
func (p *Proxy) streamContext(parent context.Context) (ctx context.Context, stop func(), end context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	after := context.AfterFunc(p.streams, func() { cancel(errShuttingDown) })
	return ctx, func() { after(); cancel(nil) }, cancel
}

var serverKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// serveMCP handles one MCP request.
func (p *Proxy) serveMCP(w http.ResponseWriter, r *http.Request) {
	w, r = p.startTelemetry(w, r)
	defer endTelemetry(w)
	var endStream context.CancelCauseFunc // a GET stream's: ends it cleanly
	switch r.Method {
	case http.MethodPost, http.MethodDelete:
	case http.MethodGet:
		// A GET stream may stay open and idle for hours: it ends when the gateway shuts down,
		// and when its access token no longer stands.
		ctx, stop, end := p.streamContext(r.Context())
		defer stop()
		r, endStream = r.WithContext(ctx), end
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	host := tenant.FromContext(r.Context())
	if host == "" {
		p.log.Error("proxy: request without a resolved host", "path", r.URL.Path)
		http.Error(w, "no host", http.StatusInternalServerError)
		return
	}
	pathServer := r.PathValue("server")
	if pathServer != "" && !serverKeyRE.MatchString(pathServer) {
		http.NotFound(w, r)
		return
	}

	// 1. Origin (DNS rebinding).
	if !p.originAllowed(r, host) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}

	// One bound for the store and authorization reads that decide the request (authentication
	// and the decision); a call held for approval gets a fresh one once it is approved.
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()

	// 2. Authentication.
	resource, err := p.resourceOf(r, host, pathServer)
	if err != nil {
		p.log.Error("proxy: store failed while reading the host; denying", "host", host, "err", err)
		writeRPCError(w, http.StatusServiceUnavailable, nil, ErrCodeUnavailable, "trustgate could not read its configuration; the call was not forwarded", nil)
		return
	}
	claims, ok := p.authenticate(ctx, w, r, host, resource)
	if !ok {
		return
	}
	agentID, userID := claims.AgentID, claims.Subject
	p.activity.seen(host, agentID, time.Now())
	if endStream != nil {
		expiry := time.AfterFunc(time.Until(claims.Expiry), func() { endStream(errStreamTokenExpired) })
		defer expiry.Stop()
	}

	// The message (POST): one JSON-RPC 2.0 message, bounded, parsed once.
	req := request{host: host, userID: userID, agentID: agentID, pathServer: pathServer, httpMethod: r.Method, header: r.Header}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeRPCError(w, http.StatusRequestEntityTooLarge, nil, ErrCodeInvalidRequest,
					fmt.Sprintf("request body above %d bytes", p.cfg.MaxBodyBytes), nil)
				return
			}
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		if msg, err := parseMessage(body); err != nil {
			req.parseErr = err
		} else {
			req.msg = &msg
		}
	}
	m := req.msg

	// An answer to a question the gateway asked (elicitation.go) is the gateway's, never the
	// upstream's.
	if isElicitationAnswer(m) {
		p.answerElicitation(ctx, w, r, req, m, body, auditEntry(r, host, claims, m))
		return
	}

	// The decision (decide.go), applied here: refused, or forwarded.
	d := decide(ctx, req, p.facts)
	entry := auditEntry(r, host, claims, m)
	entry.Server = d.auditServer
	if d.described {
		describe(w, m, agentID, d.server.Key)
	}
	if d.verdict == verdictRefuse {
		p.refuse(ctx, w, r, m, &entry, d.refusal)
		return
	}
	if d.hold != nil {
		// Held for a person's approval (approval.go): the wait is bounded by the policy's
		// timeout, not by the decision's; the rest of the request gets a fresh bound.
		held, finish, rf := p.holdForApproval(w, r, req, d, &entry)
		defer finish()
		w = held
		var cancelAfter context.CancelFunc
		ctx, cancelAfter = context.WithTimeout(r.Context(), backendTimeout)
		defer cancelAfter()
		if rf != nil {
			p.refuse(ctx, w, r, m, &entry, *rf)
			return
		}
	}
	srv := d.server
	fw := &forward{host: host, server: srv.Key, serverName: displayName(srv), agentID: agentID, msg: m, entry: entry,
		stateless: d.proto.stateless, timeouts: timeoutsOf(srv), network: srv.Network, target: d.target, call: callOf(w)}
	if endStream != nil {
		fw.streamToken, fw.endStream = claims, endStream
	}
	if d.verdict == verdictFilter {
		fw.keep, fw.pins = d.keep.keep, d.keep
	}
	if d.verdict == verdictFilterResult {
		fw.dlp = d.result // resultfilter.go
	}
	if m != nil && m.kind == kindRequest && m.method == "initialize" {
		fw.caps = capsOf(m.params) // elicitation.go
	}
	if rf := p.prepareForward(ctx, r, fw, srv, userID); rf != nil {
		p.refuse(ctx, w, r, m, &fw.entry, *rf)
		return
	}
	fw.body = body
	flags := p.flagCall(ctx, &fw.entry, m, false) // anomalies.go
	// No audit, no action: the entry is durable before anything is forwarded.
	if rf := p.auditAllowed(ctx, fw); rf != nil {
		p.refuse(ctx, w, r, m, &fw.entry, *rf)
		return
	}
	p.actOnFlags(ctx, fw.entry, flags)
	if p.legacyRoute(fw) && p.serveLegacy(w, r, fw) {
		return // legacysse.go
	}
	out := r.WithContext(context.WithValue(r.Context(), forwardKey{}, fw))
	if r.Method == http.MethodPost {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	// The result is audited even when the answer cannot be passed on in full: the
	// ReverseProxy aborts the handler (panics with http.ErrAbortHandler) when copying a
	// streamed answer fails, typically because the client went away once it had its answer.
	defer func() {
		if v := recover(); v != nil {
			if fw.upstreamFailure == "" {
				fw.upstreamFailure = "the answer could not be passed on in full: the client went away or the upstream stream broke"
			}
			p.auditResult(fw)
			panic(v)
		}
	}()
	p.rp.ServeHTTP(w, out)
	if fw.legacyFallback != nil {
		// initialize was refused as an HTTP+SSE server would refuse it (legacysse.go).
		p.probeLegacy(w, out, fw, fw.legacyFallback)
	}
	p.auditResult(fw)
}

// prepareForward completes fw for forwarding to srv: the session (older revisions: only the
// agent that opened it may use it) and the upstream credential. A refusal answers the message.
func (p *Proxy) prepareForward(ctx context.Context, r *http.Request, fw *forward, srv store.Server, userID string) *refusal {
	if id := r.Header.Get("Mcp-Session-Id"); id != "" && !fw.stateless {
		upstreamID, caps, ok := p.sessions.unwrap(fw.host, srv.Key, fw.agentID, id)
		if !ok {
			rf := &refusal{form: formRPC, status: http.StatusNotFound, code: ErrCodeInvalidRequest,
				message: "session not found: start a new session with initialize",
				audited: audit.Denied, reason: "Mcp-Session-Id not issued to this agent",
				logMsg: "proxy: session id not issued to this agent", logLevel: slog.LevelWarn}
			if fw.msg != nil {
				rf.id = fw.msg.id
			}
			return rf
		}
		fw.upstreamSession = upstreamID
		if fw.msg == nil || fw.msg.method != "initialize" {
			fw.caps = caps // a new initialize declares its own (elicitation.go)
		}
	}
	var err error
	if fw.credName, fw.credValue, fw.humanCred, err = p.credential(ctx, srv, userID); err != nil {
		return credentialRefusal(fw, err)
	}
	return nil
}

// originAllowed: no Origin header, the host's own origin, or (when the gateway itself is on
// loopback) a loopback origin.
func (p *Proxy) originAllowed(r *http.Request, host string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false // includes "null"
	}
	base, err := url.Parse(p.cfg.URLs.Base(host))
	if err != nil {
		return false
	}
	if strings.EqualFold(o.Scheme, base.Scheme) && strings.EqualFold(canonicalHost(o), canonicalHost(base)) {
		return true
	}
	return isLoopback(base.Hostname()) && isLoopback(o.Hostname())
}

// canonicalHost is host:port with the scheme's default port made explicit.
func canonicalHost(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if strings.EqualFold(u.Scheme, "https") {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func isLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// resourceOf is the resource (RFC 8707) a request to host's MCP endpoint addresses, which its
// token must be for: the MCP URL of the path's server, or the host's MCP URL, or, on a host
// that allows Dynamic MCPs, the Dynamic MCP link the query is (…/mcp?upstream_mcp=<url>),
// spelled as its metadata announces it. Any other query is not part of the resource.
func (p *Proxy) resourceOf(r *http.Request, host, pathServer string) (string, error) {
	resource := p.cfg.URLs.MCP(host)
	if pathServer != "" {
		return resource + "/" + pathServer, nil
	}
	up, isLink := accesstoken.UpstreamMCPOf(r.URL.RawQuery)
	if !isLink {
		return resource, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	h, err := p.cfg.Store.GetHost(ctx, host)
	if errors.Is(err, store.ErrNotFound) {
		return resource, nil
	}
	if err != nil {
		return "", fmt.Errorf("read host %s: %w", host, err)
	}
	if h.Settings.DynamicMCPs {
		resource = accesstoken.UpstreamMCPResource(resource, up)
	}
	return resource, nil
}

// authenticate verifies the bearer token for resource, or answers 401; ctx bounds its reads.
func (p *Proxy) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request, host, resource string) (accesstoken.AccessClaims, bool) {
	challenge := func(errCode, desc string) {
		metaURL, err := accesstoken.ProtectedResourceMetadataURL(resource)
		if err != nil {
			metaURL = ""
		}
		w.Header().Set("WWW-Authenticate", accesstoken.WWWAuthenticate(metaURL, errCode, desc))
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}
	authz := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(authz, " ")
	if authz == "" {
		challenge("", "")
		return accesstoken.AccessClaims{}, false
	}
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		challenge("invalid_request", "the Authorization header must be: Bearer <access token>")
		return accesstoken.AccessClaims{}, false
	}
	claims, err := p.cfg.KeySet.Verify(token, accesstoken.Expect{Issuer: p.cfg.URLs.Base(host), Audience: resource})
	if err != nil {
		challenge("invalid_token", verifyMessage(err))
		return accesstoken.AccessClaims{}, false
	}
	agentID, tokenHost := claims.AgentID, claims.Host
	switch {
	case agentID == "":
		challenge("invalid_token", "the access token names no agent")
		return accesstoken.AccessClaims{}, false
	case tokenHost != host:
		challenge("invalid_token", "the access token is for another host")
		return accesstoken.AccessClaims{}, false
	}
	refused, err := p.tokenRefused(ctx, host, claims)
	if err != nil {
		// Fail closed: whether the token still stands is unknown.
		p.log.Error("proxy: store failed while checking an access token; denying", "host", host, "agent", agentID, "err", err)
		writeRPCError(w, http.StatusServiceUnavailable, nil, ErrCodeUnavailable, "trustgate could not read its configuration; the call was not forwarded", nil)
		return accesstoken.AccessClaims{}, false
	}
	if refused != "" {
		p.log.Info("proxy: access token refused", "host", host, "agent", agentID, "reason", refused)
		challenge("invalid_token", refused)
		return accesstoken.AccessClaims{}, false
	}
	httplimit.Trust(r.Context()) // an authenticated connection is the last to be shed
	return claims, true
}

// tokenRefused is why a verified access token no longer stands ("" when it does): it, or its
// grant, was revoked (at /revoke, by reuse detection, when its session ended, or when its
// human, agent or client was removed), or its agent or human is gone or its agent disabled.
// Every answer comes from the control-plane cache, which the store's generation keeps exact
// on every replica, so an agent's repeated calls cost no read. ctx bounds the reads (the
// caller's backendTimeout).
func (p *Proxy) tokenRefused(ctx context.Context, host string, c accesstoken.AccessClaims) (string, error) {
	agentID, grant := c.AgentID, c.Grant
	a, err := p.cfg.Store.GetAgent(ctx, host, agentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tokenRefusal(denialFacts{}), nil
	case err != nil:
		return "", err
	case a.Disabled:
		return tokenRefusal(denialFacts{AgentFound: true, AgentDisabled: true}), nil
	case a.UserID != c.Subject:
		return "the access token is not for this agent's human", nil
	}
	if _, err := p.cfg.Store.GetUser(ctx, host, c.Subject); errors.Is(err, store.ErrNotFound) {
		return "the human of this access token was removed", nil
	} else if err != nil {
		return "", err
	}
	revoked, err := p.cfg.Store.OAuthTokenRevoked(ctx, c.JTI, grant)
	if err != nil {
		return "", err
	}
	if revoked {
		return "the access token was revoked", nil
	}
	return "", nil
}

// tokenRefusal is the error_description of a token whose agent is gone or disabled: the same
// cause and action as the denial of a message (denial.go).
func tokenRefusal(f denialFacts) string {
	d := explainDenial(f)
	return "the access token was refused: " + d.Cause + ". " + d.Action
}

// verifyMessage is a client-facing description of a Verify error (never the token).
func verifyMessage(err error) string {
	for _, e := range []error{accesstoken.ErrExpired, accesstoken.ErrWrongAudience, accesstoken.ErrWrongIssuer,
		accesstoken.ErrBadSignature, accesstoken.ErrUnknownKey, accesstoken.ErrNotYetValid, accesstoken.ErrMalformed} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "the access token is invalid"
}

// toolsFilter is the tools/list filter of fw's request.
func (p *Proxy) toolsFilter(fw *forward) *toolsFilter {
	f := &toolsFilter{keep: fw.keep, dropped: func(reason string) {
		if _, seen := p.dropsLogged.LoadOrStore(fw.host+"/"+fw.server, true); !seen {
			p.log.Warn("proxy: the server lists a tool entry that cannot be read exactly; it is withheld from tools/list (logged once per server)",
				"host", fw.host, "server", fw.server, "reason", reason)
		}
	}}
	if fw.pins != nil {
		f.settle = func() { p.settle(fw, fw.pins) }
	}
	return f
}

// answerFailure is the message of an upstream answer that is not passed on because of err.
func answerFailure(fw *forward, err error) string {
	var unread *unreadableError
	switch {
	case errors.As(err, &unread):
		return fmt.Sprintf("the MCP server %s sent a %s answer trustgate cannot read exactly (%s); it was not passed on", fw.serverName, fw.msg.method, unread.reason)
	case errors.Is(err, errTooLarge):
		return fmt.Sprintf("the MCP server %s sent an answer too large to inspect (above %d bytes); it was not passed on", fw.serverName, maxFilterBytes)
	case errors.As(err, new(*upstreamStatusError)):
		return fmt.Sprintf("the MCP server %s failed (HTTP %d); try again later or ask an administrator", fw.serverName, err.(*upstreamStatusError).status)
	case errors.Is(err, errStreamBroken):
		return fmt.Sprintf("the MCP server %s broke off its answer stream before answering; try again", fw.serverName)
	case errors.Is(err, errStreamEnded):
		return fmt.Sprintf("the MCP server %s ended its answer stream without answering; try again", fw.serverName)
	}
	return fmt.Sprintf("the MCP server %s sent an answer trustgate could not pass on", fw.serverName)
}

// failEvent is the SSE event that ends an answer stream to fw's request when the rest of the
// upstream's answer is not passed on because of err: a JSON-RPC error for the request.
func (p *Proxy) failEvent(fw *forward, err error) []byte {
	msg := answerFailure(fw, err)
	p.log.Warn("proxy: upstream answer not passed on", "host", fw.host, "server", fw.server, "err", err)
	fw.upstreamFailure = msg
	return rpcErrorEvent(fw.msg.id, ErrCodeUpstream, msg)
}

// rpcErrorEvent is an SSE event carrying a JSON-RPC error for the request id.
func rpcErrorEvent(id json.RawMessage, code int, msg string) []byte {
	data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	if err != nil {
		data = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	return sse.AppendEvent(nil, sse.Event{Type: "message", Data: data})
}

// reject answers a message that is not forwarded: a request gets HTTP 200 with a JSON-RPC
// error (its id); a notification whose status would be 403 gets 202 Accepted without a body
// (it is dropped); anything else gets status with a JSON-RPC error body without id.
func (p *Proxy) reject(w http.ResponseWriter, m *message, code int, msg string, data any, status int) {
	switch {
	case m != nil && m.kind == kindRequest:
		writeRPCError(w, http.StatusOK, m.id, code, msg, data)
	case m != nil && m.kind == kindNotification && status == http.StatusForbidden:
		w.WriteHeader(http.StatusAccepted)
	default:
		writeRPCError(w, status, nil, code, msg, data)
	}
}

func displayName(s store.Server) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Key
}

// forward is what the ReverseProxy hooks need of one request (in its context).
type forward struct {
	host, server, serverName, agentID string
	msg                               *message // nil for GET and DELETE
	body                              []byte   // the message as it came
	target                            *url.URL
	credName, credValue               string
	humanCred                         bool       // the credential is the human's own upstream token
	upstreamSession                   string     // the upstream's Mcp-Session-Id, unwrapped
	stateless                         bool       // 2026-07-28 or later: no sessions
	caps                              clientCaps // the client's capabilities the session id carries (session.go)
	timeouts                          timeouts
	network                           string        // the server's network (store.NetworkHost or NetworkAny)
	keep                              keepTool      // set: filter the tools/list answer (filter.go)
	dlp                               *resultFilter // set: filter the tools/call answer (resultfilter.go)
	pins                              *pinCheck     // the approved definitions keep compares with (pinning.go)
	entry                             audit.Entry   // the message's audit entry
	forwardedAt                       time.Time
	upstreamStatus                    int    // the upstream's HTTP status (0: no answer)
	upstreamFailure                   string // why the upstream's answer was not passed on
	// legacyFallback: the upstream refused initialize as an HTTP+SSE server would (legacysse.go);
	// serveMCP probes it once the ReverseProxy returns.
	legacyFallback *legacyCandidate
	call           *telemetry.Call // the request's telemetry (nil: none)
	// A GET stream's access token, and the function that ends the stream cleanly (nil for
	// other requests).
	streamToken accesstoken.AccessClaims
	endStream   context.CancelCauseFunc
}

// forwardKey carries the forward in the upstream request's context: the ReverseProxy's hooks
// (Rewrite, ModifyResponse, ErrorHandler) and the transport's (RoundTrip, the dialer) are
// given only the request, so its context is the one way to reach them.
type forwardKey struct{}

func forwardOf(ctx context.Context) *forward {
	fw, _ := ctx.Value(forwardKey{}).(*forward)
	return fw
}

// forwardedHeaders are the only request headers sent upstream (Authorization and Cookie, and
// anything else of the gateway's, never are).
var forwardedHeaders = []string{"Accept", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id", "User-Agent", "Mcp-Method", "Mcp-Name"}

// rewrite targets the server's URL with the upstream credential.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	fw := forwardOf(pr.In.Context())
	u := *fw.target
	pr.Out.URL = &u
	pr.Out.Host = ""
	// The values are the inbound request's own slices, not copies: nothing writes into a
	// header's value slice (Set replaces it, Del removes it), here, in the ReverseProxy or in
	// the transport.
	h := make(http.Header, len(forwardedHeaders)+2)
	for _, name := range forwardedHeaders {
		if v := pr.In.Header.Values(name); len(v) > 0 {
			h[http.CanonicalHeaderKey(name)] = v
		}
	}
	forwardParamHeaders(pr.In.Header, h, fw.stateless)
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // not Go's default
	}
	h.Del("Mcp-Session-Id")
	if fw.upstreamSession != "" {
		h.Set("Mcp-Session-Id", fw.upstreamSession)
	}
	if fw.credName != "" {
		h.Set(fw.credName, fw.credValue)
	}
	fw.call.Forward(h) // allowed; traceparent and tracestate of the request's span
	pr.Out.Header = h
}

// upstreamAuthError: the upstream answered 401/403 to the gateway's credential. Passing that
// status on would make the client re-authenticate with trustgate, which cannot help.
type upstreamAuthError struct{ status int }

func (e *upstreamAuthError) Error() string {
	return fmt.Sprintf("upstream answered HTTP %d", e.status)
}

// modifyResponse guards upstream responses and filters tools/list.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	fw := forwardOf(resp.Request.Context())
	resp.Header.Del("Set-Cookie") // upstream cookies would land on the gateway's origin
	if fw != nil {
		fw.upstreamStatus = resp.StatusCode
		fw.call.UpstreamStatus(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return &upstreamAuthError{resp.StatusCode}
	}
	if fw != nil {
		cand, err := legacyCandidateOf(resp, fw)
		if err != nil {
			return err
		}
		if cand != nil {
			// Maybe an HTTP+SSE server: the fallback is the forward's result, which serveMCP
			// acts on. Returning an error is the one way a ModifyResponse keeps the
			// ReverseProxy from passing the answer on; upstreamError writes nothing for it.
			fw.legacyFallback = cand
			return errLegacyFallback
		}
	}
	if fw != nil && fw.stateless {
		resp.Header.Del("Mcp-Session-Id") // 2026-07-28: no sessions
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" && fw != nil {
		resp.Header.Set("Mcp-Session-Id", p.sessions.wrap(fw.host, fw.server, fw.agentID, id, fw.caps))
	}
	if err := checkResponse(resp, fw); err != nil {
		return err
	}
	mediaType := mediaTypeOf(resp.Header.Get("Content-Type"))
	if fw != nil && fw.msg == nil && resp.Request.Method == http.MethodGet {
		// The agent's GET stream: trustgate's list_changed notifications join it, or make it
		// when the upstream has none (notify.go).
		switch {
		case resp.StatusCode == http.StatusOK && mediaType == "text/event-stream":
			resp.Body = newNotifyingStream(resp.Body, p.subscribe(resp.Request.Context(), fw), p.recheckStream(fw))
		case resp.StatusCode == http.StatusMethodNotAllowed && !fw.stateless:
			ownStream(resp, p.subscribe(resp.Request.Context(), fw), p.recheckStream(fw))
		}
		return nil
	}
	if fw != nil && fw.dlp != nil && resp.StatusCode >= 400 {
		return p.filterErrorAnswer(resp, fw) // resultfilter.go
	}
	if fw == nil || fw.msg == nil || fw.msg.kind != kindRequest || resp.StatusCode != http.StatusOK {
		return nil
	}
	var rw answerRewriter
	switch {
	case fw.dlp != nil:
		rw = fw.dlp
	case fw.keep != nil:
		rw = p.toolsFilter(fw)
	case fw.msg.method == "initialize" && !fw.stateless:
		rw = declareListChanged{} // notify.go
	}
	if rw == nil {
		if mediaType == "text/event-stream" { // read as the client will, to end a broken one with an error
			resp.Body = newSSEFilter(resp.Body, nil, fw.msg.id, func(err error) []byte { return p.failEvent(fw, err) })
		}
		return nil
	}
	switch mediaType {
	case "application/json":
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxFilterBytes+1))
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if len(data) > maxFilterBytes {
			return errTooLarge
		}
		if out, err := rw.filter(data); err != nil {
			return err
		} else if out != nil {
			data = out
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
		resp.Header.Set("Content-Length", fmt.Sprint(len(data)))
	case "text/event-stream":
		resp.Body = newSSEFilter(resp.Body, rw, fw.msg.id, func(err error) []byte { return p.failEvent(fw, err) })
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return nil
}

// reverseProxyError is the ReverseProxy's ErrorHandler: upstreamError for the request's forward.
func (p *Proxy) reverseProxyError(w http.ResponseWriter, r *http.Request, err error) {
	fw := forwardOf(r.Context())
	if fw == nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	p.upstreamError(w, r, fw, err)
}

// upstreamError answers fw's request (r) when the upstream could not be reached or its
// response was refused.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, fw *forward, err error) {
	if errors.Is(err, errLegacyFallback) {
		return // serveMCP probes the legacy transport (fw.legacyFallback)
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	msg := fmt.Sprintf("the MCP server %s could not be reached", fw.serverName)
	var authErr *upstreamAuthError
	var timeoutErr *timeoutError
	switch {
	case errors.As(err, &authErr) && fw.humanCred && authErr.status == http.StatusUnauthorized:
		p.log.Info("proxy: upstream refused the human's token", "host", fw.host, "server", fw.server, "agent", fw.agentID)
		p.reject(w, fw.msg, ErrCodeReconsent, reconsentMessage(fw.serverName), reconsentData(fw.server), http.StatusBadGateway)
		return
	case errors.As(err, &timeoutErr) && timeoutErr.what == "connect":
		// Like any other failure to connect: the agent learns nothing of the network.
	case errors.As(err, &timeoutErr):
		msg = fmt.Sprintf("the MCP server %s did not answer in time (%s); try again later or ask an administrator to raise its timeouts", fw.serverName, timeoutErr)
	case errors.As(err, &authErr):
		msg = fmt.Sprintf("the MCP server %s refused trustgate's credentials (HTTP %d); ask an administrator to update them", fw.serverName, authErr.status)
	case isInvalidResponse(err):
		msg = fmt.Sprintf("the MCP server %s sent an invalid response (%s)", fw.serverName, strings.TrimPrefix(err.Error(), "invalid response: "))
	case errors.Is(err, errTooLarge), errors.As(err, new(*unreadableError)):
		msg = answerFailure(fw, err)
	case errors.As(err, new(*upstreamStatusError)):
		msg = answerFailure(fw, err)
		if statusErr := err.(*upstreamStatusError); statusErr.status == http.StatusNotFound {
			// A 404 tells a client that its session is gone and must start a new one: the
			// status stays, the body becomes the JSON-RPC error.
			p.log.Warn("proxy: upstream failed", "host", fw.host, "server", fw.server, "err", err)
			fw.upstreamFailure = msg
			writeRPCError(w, http.StatusNotFound, fw.msg.id, ErrCodeUpstream, msg, nil)
			return
		}
	}
	// The detail (addresses, network errors) is for the operator's log only: the agent's
	// answer and the audit entry say the server could not be reached.
	p.log.Warn("proxy: upstream failed", "host", fw.host, "server", fw.server, "network", fw.network,
		"refused_by_policy", errors.Is(err, ssrf.ErrForbiddenAddress), "err", err)
	fw.upstreamFailure = msg
	p.reject(w, fw.msg, ErrCodeUpstream, msg, nil, http.StatusBadGateway)
}
