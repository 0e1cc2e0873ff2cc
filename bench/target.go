package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// TargetOptions configure RunTarget.
type TargetOptions struct {
	// URL is the MCP endpoint (Streamable HTTP) to drive: another gateway, or a server directly.
	URL string
	// Token, when set, is sent as "Authorization: Bearer Token" (never printed).
	Token string
	// Tool is the tool to call (empty: the first one tools/list returns).
	Tool string
	// Arguments of the tool, a JSON object (empty: {}).
	Arguments json.RawMessage
	Clients   int
	Duration  time.Duration
	// Warmup is run before the measured phase (default 1s, at most Duration).
	Warmup time.Duration
}

// TargetReport is the result of RunTarget.
type TargetReport struct {
	Date time.Time `json:"date"`
	// Target is the endpoint without credentials or query.
	Target   string        `json:"target"`
	Tool     string        `json:"tool"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration_ns"`
	CPUs     int           `json:"cpus"`
	// Phase is the measurement; its allocations and CPU time are the load generator's only.
	Phase Phase `json:"target_phase"`
}

// targetSetupTimeout bounds each call made before the measurement (initialize, tools/list,
// the first tools/call).
const targetSetupTimeout = 15 * time.Second

// RunTarget drives the same load as Run against any MCP endpoint: each client initializes a
// session, then calls the tool again and again for opts.Duration.
func RunTarget(ctx context.Context, opts TargetOptions) (*TargetReport, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("--target: want an http:// or https:// URL of an MCP endpoint")
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	if opts.Clients <= 0 {
		opts.Clients = 32
	}
	if opts.Duration <= 0 {
		opts.Duration = 10 * time.Second
	}
	if opts.Warmup <= 0 {
		opts.Warmup = min(time.Second, opts.Duration)
	}
	args := opts.Arguments
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage(`{}`)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
		return nil, errors.New("--arguments: want a JSON object")
	}
	auth := ""
	if opts.Token != "" {
		auth = "Bearer " + opts.Token
	}

	probe := &client{http: &http.Client{Timeout: targetSetupTimeout}, url: opts.URL, auth: auth}
	defer probe.http.CloseIdleConnections()
	setupCtx, cancel := context.WithTimeout(ctx, targetSetupTimeout)
	defer cancel()
	if err := targetError(shown, opts.Token != "", probe.initialize(setupCtx)); err != nil {
		return nil, err
	}
	tool, err := chooseTool(setupCtx, probe, opts.Tool)
	if err != nil {
		return nil, targetError(shown, opts.Token != "", err)
	}
	cs, err := toolCalls(tool, obj)
	if err != nil {
		return nil, err
	}
	status, body, err := probe.post(setupCtx, cs.request(1))
	if err == nil {
		err = cs.check(status, body)
	}
	if err != nil {
		return nil, targetError(shown, opts.Token != "", fmt.Errorf("tools/call %s: %w", tool, err))
	}

	rep := &TargetReport{Date: time.Now().UTC(), Target: shown, Tool: tool, Clients: opts.Clients,
		Duration: opts.Duration, CPUs: runtime.GOMAXPROCS(0)}
	rep.Phase, err = measure(ctx, load{clients: opts.Clients, warmup: opts.Warmup, duration: opts.Duration}, opts.URL, auth, cs, nil)
	if err != nil {
		return nil, targetError(shown, opts.Token != "", err)
	}
	return rep, nil
}

// errStatus is an HTTP answer that is not the one expected.
type errStatus struct {
	status int
	body   []byte
}

func (e *errStatus) Error() string { return fmt.Sprintf("HTTP %d: %.300s", e.status, e.body) }

// targetError says what went wrong in the words a user needs: the target unreachable, the
// token refused. The URL in a transport error is replaced by the shown one (no query, no
// credentials).
func targetError(shown string, withToken bool, err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach the target %s: %w", shown, ue.Err)
	}
	var se *errStatus
	if errors.As(err, &se) && (se.status == http.StatusUnauthorized || se.status == http.StatusForbidden) {
		if !withToken {
			return fmt.Errorf("the target %s wants a token (HTTP %d): pass --token", shown, se.status)
		}
		return fmt.Errorf("the target %s refused the token (HTTP %d)", shown, se.status)
	}
	return fmt.Errorf("target %s: %w", shown, err)
}

// maxToolPages bounds how many pages of tools/list chooseTool reads.
const maxToolPages = 100

// chooseTool returns want if the target lists it, or the first tool listed when want is empty.
func chooseTool(ctx context.Context, c *client, want string) (string, error) {
	cursor := ""
	var seen []string
	for page := range maxToolPages {
		params := "{}"
		if cursor != "" {
			b, _ := json.Marshal(map[string]string{"cursor": cursor})
			params = string(b)
		}
		status, body, err := c.post(ctx, []byte(`{"jsonrpc":"2.0","id":`+strconv.Itoa(1_000_000+page)+`,"method":"tools/list","params":`+params+`}`))
		if err != nil {
			return "", fmt.Errorf("tools/list: %w", err)
		}
		if status != http.StatusOK {
			return "", fmt.Errorf("tools/list: %w", &errStatus{status, body})
		}
		var list struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if err := decodeResult(body, &list); err != nil {
			return "", fmt.Errorf("tools/list: %w", err)
		}
		for _, t := range list.Tools {
			if want == "" || t.Name == want {
				return t.Name, nil
			}
			seen = append(seen, t.Name)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	if want == "" {
		return "", errors.New("tools/list: the target lists no tools")
	}
	if len(seen) > 10 {
		seen = append(seen[:10], "…")
	}
	return "", fmt.Errorf("no tool %q: tools/list has %s", want, strings.Join(seen, ", "))
}

// toolCalls are tools/call requests of tool with args; an answer must be a result that is not
// an error.
func toolCalls(tool string, args map[string]json.RawMessage) (calls, error) {
	params, err := json.Marshal(map[string]any{"name": tool, "arguments": args})
	if err != nil {
		return calls{}, fmt.Errorf("tools/call parameters: %w", err)
	}
	head, tail := []byte(`{"jsonrpc":"2.0","id":`), []byte(`,"method":"tools/call","params":`+string(params)+`}`)
	return calls{
		request: func(id int) []byte {
			b := make([]byte, 0, len(head)+len(tail)+20)
			b = append(b, head...)
			b = strconv.AppendInt(b, int64(id), 10)
			return append(b, tail...)
		},
		check: func(status int, body []byte) error {
			if status != http.StatusOK {
				return &errStatus{status, body}
			}
			var res struct {
				IsError bool `json:"isError"`
			}
			if err := decodeResult(body, &res); err != nil {
				return err
			}
			if res.IsError {
				return fmt.Errorf("%w: the tool answered an error: %.200s", errWrongAnswer, body)
			}
			return nil
		},
	}, nil
}

// decodeResult reads the JSON-RPC response in an answer, JSON or an SSE stream (the first
// event carrying a response), into result; a JSON-RPC error is returned as an error.
func decodeResult(body []byte, result any) error {
	msg := bytes.TrimSpace(body)
	if len(msg) == 0 || msg[0] != '{' {
		var err error
		if msg, err = sseResponse(msg); err != nil {
			return err
		}
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg, &resp); err != nil {
		return fmt.Errorf("%w: not a JSON-RPC response: %.200s", errWrongAnswer, body)
	}
	if resp.Error != nil {
		return fmt.Errorf("%w: JSON-RPC error %d: %.200s", errWrongAnswer, resp.Error.Code, resp.Error.Message)
	}
	if resp.Result == nil {
		return fmt.Errorf("%w: no result: %.200s", errWrongAnswer, body)
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("%w: result: %v", errWrongAnswer, err)
	}
	return nil
}

// sseResponse is the data of the first event of an SSE stream that is a JSON-RPC response
// (it has a result or an error; requests and notifications from the server are skipped).
func sseResponse(stream []byte) ([]byte, error) {
	stream = bytes.ReplaceAll(stream, []byte("\r\n"), []byte("\n"))
	for event := range bytes.SplitSeq(stream, []byte("\n\n")) {
		var data [][]byte
		for line := range bytes.SplitSeq(event, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = append(data, bytes.TrimPrefix(v, []byte(" ")))
			}
		}
		msg := bytes.Join(data, []byte("\n"))
		var probe struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(msg, &probe) == nil && (probe.Result != nil || probe.Error != nil) {
			return msg, nil
		}
	}
	return nil, fmt.Errorf("%w: no JSON-RPC response in the answer: %.200s", errWrongAnswer, stream)
}

// WriteTable prints the report as a table.
func (r *TargetReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "trustgate bench: target %s, tool %s, %d clients, %s, %d CPUs, %s\n\n",
		r.Target, r.Tool, r.Clients, r.Duration, r.CPUs, r.Date.Format("2006-01-02 15:04 UTC"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := r.Phase
	fmt.Fprintf(tw, "\ttarget\t\n")
	fmt.Fprintf(tw, "calls/s\t%.0f\t\n", p.CallsPerSec)
	fmt.Fprintf(tw, "p50\t%s\t\n", ms(p.P50))
	fmt.Fprintf(tw, "p90\t%s\t\n", ms(p.P90))
	fmt.Fprintf(tw, "p99\t%s\t\n", ms(p.P99))
	fmt.Fprintf(tw, "p99.9\t%s\t\n", ms(p.P999))
	fmt.Fprintf(tw, "client CPU/call\t%s\t\n", ms(p.CPUPerCall))
	fmt.Fprintf(tw, "calls (errors)\t%d (%d)\t\n", p.Calls, p.Errors)
	return tw.Flush()
}
