package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client is one MCP client speaking Streamable HTTP with raw JSON-RPC POSTs over a keep-alive
// connection: initialize once, then the same request again and again in the session.
type client struct {
	http    *http.Client
	url     string
	auth    string // "Bearer …" or ""
	session string
	buf     bytes.Buffer
}

const protocolVersion = "2025-06-18"

func newTransport(conns int) *http.Transport {
	return &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, IdleConnTimeout: time.Minute, DisableCompression: true}
}

func (c *client) post(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", protocolVersion)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL, _, _ = strings.Cut(ue.URL, "?") // a query may hold a secret
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(io.LimitReader(resp.Body, 16<<20)); err != nil {
		return 0, nil, err
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		c.session = id
	}
	return resp.StatusCode, c.buf.Bytes(), nil
}

// initialize opens the MCP session.
func (c *client) initialize(ctx context.Context) error {
	status, body, err := c.post(ctx, []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"`+protocolVersion+`","capabilities":{},"clientInfo":{"name":"trustgate-bench","version":"1"}}}`))
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"result"`)) {
		return fmt.Errorf("initialize: %w", &errStatus{status, body})
	}
	if status, body, err = c.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
		return fmt.Errorf("initialized: %w", err)
	}
	if status != http.StatusAccepted && status != http.StatusOK {
		return fmt.Errorf("initialized: %w", &errStatus{status, body})
	}
	return nil
}

// request is the JSON-RPC request of a mode.
func request(mode Mode, id int) []byte {
	ids := strconv.Itoa(id)
	switch mode {
	case ModeList:
		return []byte(`{"jsonrpc":"2.0","id":` + ids + `,"method":"tools/list"}`)
	case ModeLarge:
		return []byte(`{"jsonrpc":"2.0","id":` + ids + `,"method":"tools/call","params":{"name":"` + ToolLarge + `","arguments":{}}}`)
	case ModeDenied:
		return []byte(`{"jsonrpc":"2.0","id":` + ids + `,"method":"tools/call","params":{"name":"` + ToolDenied + `","arguments":{"text":"x"}}}`)
	}
	return []byte(`{"jsonrpc":"2.0","id":` + ids + `,"method":"tools/call","params":{"name":"` + ToolEcho + `","arguments":{"text":"hello from trustgate bench"}}}`)
}

var (
	errWrongAnswer = errors.New("unexpected answer")
	deniedError    = []byte(`"code":-31001`)
	deniedReason   = []byte(`"reason":"level_too_low"`)
	resultKey      = []byte(`"result"`)
	isError        = []byte(`"isError":true`)
)

// check tells whether an answer is the one the mode expects (through the gateway, denied calls
// must be denied; directly, the upstream runs them).
func check(mode Mode, viaGateway bool, status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("%w: HTTP %d: %.200s", errWrongAnswer, status, body)
	}
	if mode == ModeDenied && viaGateway {
		// A denial: the tool result with isError and the reason (the default), or the
		// JSON-RPC error of a host that wants one.
		denied := bytes.Contains(body, deniedError) || bytes.Contains(body, isError) && bytes.Contains(body, deniedReason)
		if !denied {
			return fmt.Errorf("%w: want a denial: %.200s", errWrongAnswer, body)
		}
		return nil
	}
	if !bytes.Contains(body, resultKey) || bytes.Contains(body, isError) {
		return fmt.Errorf("%w: %.200s", errWrongAnswer, body)
	}
	if mode == ModeLarge && len(body) < LargeBytes {
		return fmt.Errorf("%w: %d bytes, want at least %d", errWrongAnswer, len(body), LargeBytes)
	}
	return nil
}
