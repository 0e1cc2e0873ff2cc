package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/proxy/listchanged"
)

// Upstreams that speak only the 2024-11-05 HTTP+SSE transport, reached through the documented
// fallback: the client (here, the gateway) POSTs initialize to the server's URL; a 400, 404 or
// 405 whose body is not a modern JSON-RPC error makes it GET the URL with Accept:
// text/event-stream and wait for the "endpoint" event; if that arrives, the server is legacy
// (remembered per URL, re-probed when opening a connection later fails). Messages are then
// POSTed to the endpoint and answered on the SSE stream.
//
// The gateway keeps speaking Streamable HTTP to its client: each legacy connection belongs to
// one client session (host, server, agent, session id bound like any other, see session.go);
// every client POST is relayed to the endpoint, and a request's response (matched by JSON-RPC
// id) becomes the POST's application/json answer; the server's own requests and notifications
// go to the client's GET stream. The connection lives in this process: behind several
// replicas, a legacy server needs sticky sessions (a client sent elsewhere gets 404 and
// starts a new session). server/discover to a legacy server is answered 400 without a modern
// error body, so that clients fall back to initialize.

const (
	// maxLegacyConns bounds the open legacy connections of the process.
	maxLegacyConns = 1024
	// legacyIdle closes a legacy connection its client has not used for this long.
	legacyIdle = 30 * time.Minute
	// legacyQueue bounds server-to-client messages waiting for the client's GET stream.
	legacyQueue = 256
)

var errNotLegacy = errors.New("the upstream did not answer as a 2024-11-05 HTTP+SSE server")

// legacyState is the proxy's knowledge of legacy servers and their open connections.
type legacyState struct {
	mu    sync.Mutex
	urls  map[string]bool // server URLs known to speak only HTTP+SSE
	conns map[legacyKey]*legacyConn
}

type legacyKey struct{ host, server, agentID, id string }

func newLegacyState() *legacyState {
	return &legacyState{urls: map[string]bool{}, conns: map[legacyKey]*legacyConn{}}
}

func (s *legacyState) isLegacy(serverURL string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urls[serverURL]
}

func (s *legacyState) setLegacy(serverURL string, legacy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if legacy {
		s.urls[serverURL] = true
	} else {
		delete(s.urls, serverURL)
	}
}

func (s *legacyState) get(k legacyKey) *legacyConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[k]
}

func (s *legacyState) remove(c *legacyConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
	}
}

// closeAll ends every legacy connection.
func (s *legacyState) closeAll() {
	s.mu.Lock()
	conns := make([]*legacyConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(errors.New("the gateway is shutting down"))
	}
}

// legacyConn is one open HTTP+SSE connection to an upstream.
type legacyConn struct {
	key      legacyKey
	endpoint *url.URL
	body     io.ReadCloser
	cancel   context.CancelFunc
	idle     *time.Timer

	mu      sync.Mutex
	pending map[string]chan json.RawMessage // by compact JSON id
	err     error                           // set when the stream ended

	toClient chan []byte   // server requests and notifications for the GET stream
	done     chan struct{} // closed when the stream ended
	stream   sync.Mutex    // held by the client's GET stream
}

func (c *legacyConn) close(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	c.mu.Unlock()
	c.cancel()
	c.idle.Stop()
}

// touch marks the connection as used by its client.
func (c *legacyConn) touch() { c.idle.Reset(legacyIdle) }

// openLegacy opens the SSE stream of fw's server and waits for its endpoint event (within the
// first-byte timeout). errNotLegacy: the server is not an HTTP+SSE server.
func (p *Proxy) openLegacy(fw *forward) (*legacyConn, error) {
	p.legacy.mu.Lock()
	n := len(p.legacy.conns)
	p.legacy.mu.Unlock()
	if n >= maxLegacyConns {
		return nil, fmt.Errorf("more than %d open legacy connections", maxLegacyConns)
	}
	// The stream outlives the client's request; its own forward (no message) ends it cleanly
	// when the upstream stays silent longer than the idle timeout.
	streamFW := *fw
	streamFW.msg = nil
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), forwardKey{}, &streamFW))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fw.target.String(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "")
	if fw.credName != "" {
		req.Header.Set(fw.credName, fw.credValue)
	}
	resp, err := timeoutTransport{p.trans}.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	mediaType := mediaTypeOf(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		_ = resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, &upstreamAuthError{resp.StatusCode}
		}
		return nil, fmt.Errorf("%w: GET answered %d %s", errNotLegacy, resp.StatusCode, mediaType)
	}
	events := newEventReader(resp.Body)
	firstCtx, cancelFirst := context.WithTimeoutCause(ctx, fw.timeouts.firstByte, &timeoutError{"first-byte", fw.timeouts.firstByte})
	ev, err := events.NextContext(firstCtx) // closes the body when the time is up
	cancelFirst()
	if err == nil && ev.Type != "endpoint" {
		err = fmt.Errorf("%w: the first event is %q, not endpoint", errNotLegacy, ev.Name())
	}
	var endpoint *url.URL
	if err == nil {
		endpoint, err = legacyEndpoint(fw.target, string(ev.Data))
	}
	if err != nil {
		_ = resp.Body.Close()
		cancel()
		return nil, err
	}
	c := &legacyConn{
		endpoint: endpoint, body: resp.Body, cancel: cancel,
		pending: map[string]chan json.RawMessage{}, toClient: make(chan []byte, legacyQueue), done: make(chan struct{}),
	}
	c.key = legacyKey{fw.host, fw.server, fw.agentID, "legacy-" + randomID()}
	c.idle = time.AfterFunc(legacyIdle, func() { c.close(errors.New("the client left the session idle")) })
	p.legacy.mu.Lock()
	p.legacy.conns[c.key] = c
	p.legacy.mu.Unlock()
	go p.readLegacy(c, events)
	return c, nil
}

// legacyEndpoint resolves the endpoint event's URI against the SSE URL; it must stay on the
// server's origin (the gateway's upstream credential goes there).
func legacyEndpoint(base *url.URL, ref string) (*url.URL, error) {
	u, err := base.Parse(strings.TrimSpace(ref))
	if err != nil {
		return nil, fmt.Errorf("%w: the endpoint %q is not a URI", errNotLegacy, ref)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
		return nil, fmt.Errorf("the legacy server's endpoint %q is on another origin than %s", ref, base.Host)
	}
	return u, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readLegacy dispatches the legacy stream's messages until it ends.
func (p *Proxy) readLegacy(c *legacyConn, events *sse.Reader) {
	defer p.legacy.remove(c)
	for {
		ev, err := events.Next()
		if err != nil {
			p.log.Info("proxy: legacy stream ended", "host", c.key.host, "server", c.key.server, "err", err)
			c.close(fmt.Errorf("the server's event stream ended: %w", err))
			_ = c.body.Close()
			return
		}
		if ev.Name() != "message" {
			continue // what a client would ignore is not relayed
		}
		msg, err := parseMessage(ev.Data)
		if err != nil {
			p.log.Warn("proxy: legacy server sent an invalid message; dropped", "host", c.key.host, "server", c.key.server)
			continue
		}
		if msg.kind == kindResponse {
			c.mu.Lock()
			ch := c.pending[string(msg.id)]
			delete(c.pending, string(msg.id))
			c.mu.Unlock()
			if ch != nil {
				ch <- bytes.Clone(ev.Data)
			}
			continue
		}
		select {
		case c.toClient <- bytes.Clone(ev.Data):
		default:
			p.log.Warn("proxy: legacy server message dropped: the client does not read its GET stream", "host", c.key.host, "server", c.key.server, "method", msg.method)
		}
	}
}

// errLegacyFallback ends the ReverseProxy's handling of an answer to initialize that may come
// from an HTTP+SSE server: the candidate is in the forward (legacyFallback).
var errLegacyFallback = errors.New("upstream refused initialize as an HTTP+SSE server would")

// legacyCandidate: the upstream refused initialize as an HTTP+SSE server would; the original
// answer is kept to pass on if the probe fails.
type legacyCandidate struct {
	status int
	header http.Header
	body   []byte
}

// legacyCandidateOf looks at an upstream's answer to initialize: a 400, 404 or 405 without a
// modern JSON-RPC error may come from an HTTP+SSE server (nil: pass the answer on).
func legacyCandidateOf(resp *http.Response, fw *forward) (*legacyCandidate, error) {
	if fw.msg == nil || fw.msg.kind != kindRequest || fw.msg.method != "initialize" {
		return nil, nil
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if modernError(body) {
		return nil, nil
	}
	return &legacyCandidate{status: resp.StatusCode, header: resp.Header.Clone(), body: body}, nil
}

// modernError: body is a JSON-RPC error a Streamable HTTP server answers with.
func modernError(body []byte) bool {
	var m struct {
		JSONRPC string `json:"jsonrpc"`
		Error   *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &m) == nil && m.JSONRPC == "2.0" && m.Error != nil
}

// probeLegacy is the fallback after a legacyCandidate: open the SSE stream and, when it is a
// legacy server, serve the request through it; otherwise pass the original answer on.
func (p *Proxy) probeLegacy(w http.ResponseWriter, r *http.Request, fw *forward, cand *legacyCandidate) {
	c, err := p.openLegacy(fw)
	if err != nil {
		if !errors.Is(err, errNotLegacy) {
			p.log.Warn("proxy: legacy probe failed", "host", fw.host, "server", fw.server, "err", err)
		}
		for k, v := range cand.header {
			w.Header()[k] = v
		}
		w.Header().Del("Set-Cookie")
		w.Header().Del("Mcp-Session-Id")
		w.Header().Set("Content-Length", fmt.Sprint(len(cand.body)))
		w.WriteHeader(cand.status)
		_, _ = w.Write(cand.body)
		return
	}
	p.log.Info("proxy: server speaks only the 2024-11-05 HTTP+SSE transport", "host", fw.host, "server", fw.server)
	p.legacy.setLegacy(fw.target.String(), true)
	p.relayLegacy(w, r, fw, c)
}

// legacyRoute: the message goes through the legacy transport (the server is known to speak
// only HTTP+SSE, or the message belongs to an open legacy session).
func (p *Proxy) legacyRoute(fw *forward) bool {
	if p.legacy.isLegacy(fw.target.String()) {
		return true
	}
	return fw.upstreamSession != "" && p.legacy.get(legacyKey{fw.host, fw.server, fw.agentID, fw.upstreamSession}) != nil
}

// serveLegacy serves a message to a server known to speak only HTTP+SSE. It returns false,
// having answered nothing, when an initialize finds that the server no longer does (it is
// forgotten as legacy and the caller forwards the request as Streamable HTTP).
func (p *Proxy) serveLegacy(w http.ResponseWriter, r *http.Request, fw *forward) bool {
	var c *legacyConn
	if fw.upstreamSession != "" {
		c = p.legacy.get(legacyKey{fw.host, fw.server, fw.agentID, fw.upstreamSession})
	}
	switch {
	case r.Method == http.MethodDelete:
		if c != nil {
			c.close(errors.New("the client ended the session"))
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		if c == nil {
			writeRPCError(w, http.StatusNotFound, nil, ErrCodeInvalidRequest, "session not found: start a new session with initialize", nil)
			return true
		}
		p.streamLegacy(w, r, c, p.recheckStream(fw))
	case fw.msg.kind == kindRequest && fw.msg.method == "server/discover":
		// Not a modern server: a plain 400 makes the client fall back to initialize.
		http.Error(w, fmt.Sprintf("the MCP server %s speaks only protocol version 2024-11-05 (HTTP+SSE): use initialize", fw.serverName), http.StatusBadRequest)
	case fw.msg.kind == kindRequest && fw.msg.method == "initialize":
		c, err := p.openLegacy(fw)
		if errors.Is(err, errNotLegacy) {
			p.log.Info("proxy: server no longer speaks HTTP+SSE; forwarding as Streamable HTTP", "host", fw.host, "server", fw.server)
			p.legacy.setLegacy(fw.target.String(), false)
			return false
		}
		if err != nil {
			p.upstreamError(w, r, fw, err)
			return true
		}
		p.relayLegacy(w, r, fw, c)
	case c == nil && fw.upstreamSession == "":
		writeRPCError(w, http.StatusBadRequest, fw.msg.id, ErrCodeInvalidRequest, "Mcp-Session-Id required: start a session with initialize", nil)
	case c == nil:
		writeRPCError(w, http.StatusNotFound, fw.msg.id, ErrCodeInvalidRequest, "session not found: start a new session with initialize", nil)
	default:
		p.relayLegacy(w, r, fw, c)
	}
	return true
}

// relayLegacy POSTs the client's message to the legacy endpoint and answers it.
func (p *Proxy) relayLegacy(w http.ResponseWriter, r *http.Request, fw *forward, c *legacyConn) {
	c.touch()
	m := fw.msg
	var wait chan json.RawMessage
	if m.kind == kindRequest {
		wait = make(chan json.RawMessage, 1)
		c.mu.Lock()
		_, dup := c.pending[string(m.id)]
		if !dup && c.err == nil {
			c.pending[string(m.id)] = wait
		}
		c.mu.Unlock()
		if dup {
			writeRPCError(w, http.StatusOK, m.id, ErrCodeInvalidRequest, "a request with this id is already in flight", nil)
			return
		}
		defer func() {
			c.mu.Lock()
			delete(c.pending, string(m.id))
			c.mu.Unlock()
		}()
	}
	if err := p.postLegacy(r.Context(), fw, c); err != nil {
		p.upstreamError(w, r, fw, err)
		return
	}
	if m.method == "initialize" {
		w.Header().Set("Mcp-Session-Id", p.sessions.wrap(fw.host, fw.server, fw.agentID, c.key.id, fw.caps))
	}
	if m.kind != kindRequest {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	timer := time.NewTimer(fw.timeouts.firstByte)
	defer timer.Stop()
	var data json.RawMessage
	select {
	case data = <-wait:
	case <-timer.C:
		p.upstreamError(w, r, fw, &timeoutError{"first-byte", fw.timeouts.firstByte})
		return
	case <-c.done:
		p.upstreamError(w, r, fw, c.err)
		return
	case <-r.Context().Done():
		return
	}
	var rw answerRewriter
	switch {
	case fw.dlp != nil:
		rw = fw.dlp // resultfilter.go
	case fw.keep != nil:
		rw = p.toolsFilter(fw)
	case m.method == "initialize":
		rw = declareListChanged{} // notify.go
	}
	if rw != nil {
		if out, err := rw.filter(data); err != nil {
			p.upstreamError(w, r, fw, err)
			return
		} else if out != nil {
			data = out
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// postLegacy sends the client's message to the legacy endpoint.
func (p *Proxy) postLegacy(ctx context.Context, fw *forward, c *legacyConn) error {
	postFW := *fw
	postFW.msg = nil // the answer is a bare 202
	ctx = context.WithValue(ctx, forwardKey{}, &postFW)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint.String(), bytes.NewReader(fw.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "")
	if fw.credName != "" {
		req.Header.Set(fw.credName, fw.credValue)
	}
	resp, err := timeoutTransport{p.trans}.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &upstreamAuthError{resp.StatusCode}
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("the legacy endpoint answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// streamLegacy is the client's GET stream of a legacy session: the server's requests and
// notifications as SSE events, until the session or the client ends.
// recheck runs when the agent's tools change, and may end the stream (through r's context).
func (p *Proxy) streamLegacy(w http.ResponseWriter, r *http.Request, c *legacyConn, recheck func()) {
	if !c.stream.TryLock() {
		http.Error(w, "this session already has a GET stream", http.StatusConflict)
		return
	}
	defer c.stream.Unlock()
	// trustgate's list_changed notifications join the stream (notify.go).
	sub := p.notifier.Subscribe(r.Context(), listchanged.Key{Host: c.key.host, Agent: c.key.agentID, Server: c.key.server})
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	for {
		select {
		case data := <-c.toClient:
			c.touch()
			if _, err := w.Write(sse.AppendEvent(nil, sse.Event{Type: "message", Data: data})); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-sub.C:
			recheck()
			if r.Context().Err() != nil {
				return
			}
			if _, err := w.Write(listChangedEvent); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-c.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}
