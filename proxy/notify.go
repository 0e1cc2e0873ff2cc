package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/strictjson"
	"github.com/trustgate/trustgate/proxy/listchanged"
	"github.com/trustgate/trustgate/store"
)

// Tool lists that follow the policy. trustgate declares tools.listChanged in the initialize
// result it passes on (an upstream with tools that does not declare it is rewritten), and sends
// notifications/tools/list_changed on an agent's GET streams (the standalone server-to-client
// stream of a session, relayed from the upstream or, for an HTTP+SSE upstream and an upstream
// without one, the gateway's own) when the tools it would be listed change: a level, a ceiling, a grant, a consent, a tool
// enabled, disabled, flagged or approved, a sync that adds tools, the kill switch, on any
// replica (listchanged watches the store's control-plane generation). The upstream's own
// events, its list_changed notifications included, pass through unchanged; trustgate's
// notification is written between two of them, never inside one.
//
// An upstream that answers the GET with 405 (it offers no server-to-client stream) gets the
// gateway's own stream in its place, which carries only trustgate's notifications. 2026-07-28
// has no GET stream: such clients learn of a change only when they list again.

// listChangedEvent is the notification trustgate writes on an agent's GET stream.
var listChangedEvent = sse.AppendEvent(nil, sse.Event{Type: "message",
	Data: []byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)})

// Run runs the proxy's background work until ctx ends: the watcher behind the tool-list
// notifications (one goroutine, whatever the number of streams).
func (p *Proxy) Run(ctx context.Context) { p.notifier.Run(ctx) }

// newNotifier is the proxy's notifier: the generation and the tool sets from the proxy's store
// and backend, pending relationship changes applied by the Syncer first.
func (p *Proxy) newNotifier(sf storeFacts) *listchanged.Notifier {
	cfg := listchanged.Config{
		Generation: p.cfg.Store.ControlGeneration,
		Listed: func(ctx context.Context, k listchanged.Key) ([]string, error) {
			return sf.listedTools(ctx, k.Host, k.Server, k.Agent)
		},
		Logger: p.log,
	}
	if p.cfg.Syncer != nil {
		cfg.Settle = func(ctx context.Context) error {
			_, err := p.cfg.Syncer.Sync(ctx)
			return err
		}
	}
	return listchanged.New(cfg)
}

// subscribe subscribes fw's GET stream to its agent's tool-list changes.
func (p *Proxy) subscribe(ctx context.Context, fw *forward) *listchanged.Subscription {
	ctx, cancel := context.WithTimeout(ctx, backendTimeout)
	defer cancel()
	return p.notifier.Subscribe(ctx, listchanged.Key{Host: fw.host, Agent: fw.agentID, Server: fw.server})
}

// ownStream turns an upstream's 405 to a GET (it offers no server-to-client stream) into the
// gateway's own stream, which carries only trustgate's notifications and lasts until the
// client leaves or the gateway shuts down (the request's context).
func ownStream(resp *http.Response, sub *listchanged.Subscription, recheck func()) {
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Header = http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	resp.ContentLength = -1
	resp.Body = newNotifyingStream(silentStream{ctx: resp.Request.Context(), upstream: resp.Body}, sub, recheck)
}

// silentStream is an event stream without events that ends with its context; closing it
// closes the upstream's answer it replaces (which ends the upstream request's context).
type silentStream struct {
	ctx      context.Context
	upstream io.Closer
}

func (s silentStream) Read([]byte) (int, error) {
	<-s.ctx.Done()
	return 0, io.EOF
}

func (s silentStream) Close() error { return s.upstream.Close() }

// listedTools are the names of the tools a tools/list answer shows the agent on server (those
// the upstream lists among them): what the filter's visibility keeps (visibleTools), without
// the upstream's answer. A host or server that is gone shows nothing.
func (f storeFacts) listedTools(ctx context.Context, host, server, agentID string) ([]string, error) {
	h, err := f.st.GetHost(ctx, host)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host settings: %w", err)
	}
	if h.Settings.ToolVisibility != "all" {
		return f.backend.CallableTools(ctx, host, server, agentID)
	}
	tools, err := f.toolsByName(ctx, host, server)
	if err != nil {
		return nil, err
	}
	var names []string
	for name, t := range tools {
		if t.Enabled && !t.Flagged {
			names = append(names, name)
		}
	}
	return names, nil
}

// notifyingStream relays an upstream's GET stream and writes listChangedEvent into it when
// its subscription fires, at the next boundary between two events. The upstream's bytes pass
// on as they come (keep-alive comments included). One goroutine reads the upstream; it ends
// with the stream.
type notifyingStream struct {
	upstream io.ReadCloser
	notify   <-chan struct{} // a value: the agent's tool list changed
	stop     func()          // ends the subscription behind notify
	recheck  func()          // runs on each notification; may end the stream (nil: none)
	chunks   chan streamChunk
	done     chan struct{}
	once     sync.Once

	b    eventBoundary
	want bool // a notification waits for the next boundary
	out  []byte
	err  error
}

type streamChunk struct {
	data []byte
	err  error
}

// notifyingStreamBuf is how much of the upstream's stream one read takes.
const notifyingStreamBuf = 32 << 10

func newNotifyingStream(upstream io.ReadCloser, sub *listchanged.Subscription, recheck func()) *notifyingStream {
	s := relayWithNotifications(upstream, sub.C, sub.Close)
	s.recheck = recheck
	return s
}

// recheckStream is what a GET stream does when its agent's tools change: it asks again whether
// the access token it was opened with still stands (the agent disabled or removed, the token
// revoked) and ends the stream cleanly when it does not, or when that cannot be read (fail
// closed: the client reconnects and is checked then).
func (p *Proxy) recheckStream(fw *forward) func() {
	if fw == nil || fw.endStream == nil {
		return func() {}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
		refused, err := p.tokenRefused(ctx, fw.host, fw.streamToken)
		cancel()
		switch {
		case err != nil:
			p.log.Warn("proxy: could not check a stream's access token again; ending the stream", "host", fw.host, "agent", fw.agentID, "err", err)
			fw.endStream(errStreamTokenRefused)
		case refused != "":
			p.log.Info("proxy: ending a stream whose access token no longer stands", "host", fw.host, "agent", fw.agentID, "reason", refused)
			fw.endStream(errStreamTokenRefused)
		}
	}
}

func relayWithNotifications(upstream io.ReadCloser, notify <-chan struct{}, stop func()) *notifyingStream {
	s := &notifyingStream{upstream: upstream, notify: notify, stop: stop, chunks: make(chan streamChunk), done: make(chan struct{}), b: eventBoundary{at: true}}
	go s.pump()
	return s
}

// pump reads the upstream until it fails or the stream is closed.
func (s *notifyingStream) pump() {
	for {
		buf := make([]byte, notifyingStreamBuf)
		n, err := s.upstream.Read(buf)
		select {
		case s.chunks <- streamChunk{buf[:n], err}:
		case <-s.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *notifyingStream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		select {
		case c := <-s.chunks:
			s.out = s.relay(c.data)
			s.err = c.err
		case <-s.notify:
			if s.recheck != nil {
				s.recheck() // when it ends the stream, the upstream's read ends next
			}
			if s.b.at {
				s.out = append(s.out, listChangedEvent...)
			} else {
				s.want = true
			}
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// relay passes data on, with the notification after the first event boundary in it when one
// is waiting.
func (s *notifyingStream) relay(data []byte) []byte {
	if !s.want {
		s.b.feed(data)
		return data
	}
	for i := range data {
		s.b.feed(data[i : i+1])
		// A CR that ends a blank line may be followed by the LF of the same line end.
		if s.b.at && !(data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n') {
			s.want = false
			out := make([]byte, 0, len(data)+len(listChangedEvent))
			out = append(append(append(out, data[:i+1]...), listChangedEvent...), data[i+1:]...)
			s.b.feed(data[i+1:])
			return out
		}
	}
	return data
}

// Close ends the stream: the subscription, the upstream and the reading goroutine.
func (s *notifyingStream) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		s.stop()
		err = s.upstream.Close()
	})
	return err
}

// eventBoundary follows an event stream's bytes: at is true between two events (at the start,
// and after a blank line), where a whole event may be written without changing the others.
type eventBoundary struct {
	at     bool
	empty  bool // the current line has no bytes yet
	lastCR bool // the last byte was a CR (an LF right after it ends the same line)
}

func (b *eventBoundary) feed(data []byte) {
	for _, c := range data {
		switch {
		case c == '\n' && b.lastCR:
			b.lastCR = false // the rest of a CRLF
		case c == '\r' || c == '\n':
			if !b.at && b.empty {
				b.at = true // a blank line ends the event
			}
			b.empty, b.lastCR = true, c == '\r'
		default:
			b.at, b.empty, b.lastCR = false, false, false
		}
	}
}

// declareListChanged rewrites an initialize answer (a JSON-RPC message, a batch, or an SSE
// event's data) so that a server with tools declares tools.listChanged: trustgate sends the
// notification when the policy changes the agent's list. A server without the tools
// capability is left as it is. out is nil when nothing changes.
type declareListChanged struct{}

func (declareListChanged) filter(data []byte) ([]byte, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(bytes.TrimSpace(trimmed)) == 0:
		return nil, nil
	case trimmed[0] == '{':
		out, changed, err := declareInMessage(data)
		if err != nil || !changed {
			return nil, err
		}
		return out, nil
	case trimmed[0] == '[':
		return rewriteBatch(data, declareInMessage)
	case strictjson.Check(trimmed) == nil:
		return nil, nil
	default:
		return nil, unreadable("not JSON")
	}
}

// declareInMessage sets result.capabilities.tools.listChanged in one message when the result
// has a tools capability without it.
func declareInMessage(data []byte) ([]byte, bool, error) {
	env, err := strictjson.Shallow(data, envelopeKeys...)
	if err != nil {
		return nil, false, unreadable("message: %v", err)
	}
	result := bytes.TrimLeft(env["result"], " \t\r\n")
	if len(result) == 0 || result[0] != '{' {
		return nil, false, nil
	}
	res, err := strictjson.Shallow(result, "protocolVersion", "capabilities", "serverInfo", "instructions", "_meta")
	if err != nil {
		return nil, false, unreadable("result: %v", err)
	}
	caps := bytes.TrimLeft(res["capabilities"], " \t\r\n")
	if len(caps) == 0 || caps[0] != '{' {
		return nil, false, nil
	}
	capObj, err := strictjson.Shallow(caps, "tools", "resources", "prompts", "logging", "completions", "experimental")
	if err != nil {
		return nil, false, unreadable("capabilities: %v", err)
	}
	tools := bytes.TrimLeft(capObj["tools"], " \t\r\n")
	if len(tools) == 0 || tools[0] != '{' {
		return nil, false, nil // no tools: nothing for the policy to change
	}
	toolsObj, err := strictjson.Shallow(tools, "listChanged")
	if err != nil {
		return nil, false, unreadable("capabilities.tools: %v", err)
	}
	if string(bytes.TrimSpace(toolsObj["listChanged"])) == "true" {
		return nil, false, nil
	}
	toolsObj["listChanged"] = []byte("true")
	if capObj["tools"], err = json.Marshal(toolsObj); err != nil {
		return nil, false, err
	}
	if res["capabilities"], err = json.Marshal(capObj); err != nil {
		return nil, false, err
	}
	if env["result"], err = json.Marshal(res); err != nil {
		return nil, false, err
	}
	out, err := json.Marshal(env)
	return out, err == nil, err
}
