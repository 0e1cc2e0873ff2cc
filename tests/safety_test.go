package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/services"
)

// callResult is a tools/call answer as the safety tests read it.
type callResult struct {
	Result struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Meta map[string]map[string]any `json:"_meta"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *wireSession) callTool(id int, tool string) callResult {
	s.t.Helper()
	body := s.post(`{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
	var r callResult
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("tools/call answer %s: %v", body, err)
	}
	if r.Error != nil {
		s.t.Fatalf("tools/call %s: JSON-RPC error %d %s", tool, r.Error.Code, r.Error.Message)
	}
	return r
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// denial is the reason of a denied call's result ("" when it was not denied).
func (r callResult) denial() string {
	if !r.Result.IsError {
		return ""
	}
	reason, _ := r.Result.Meta["trustgate/denial"]["reason"].(string)
	return reason
}

func (s *wireSession) open() {
	s.t.Helper()
	s.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"safety","version":"1"}}}`)
	s.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// TestReplicasShareRateLimitsAndEmergencyStop: two processes on one PostgreSQL and one Redis.
// A rate limit set through p1 (3 calls, then one a minute) holds for calls spread over both:
// exactly 3 of 8 alternating calls pass, the others are refused naming the limit and
// retry_after. An emergency stop set through p1's CLI refuses the next call on p2 (tools/list
// still answers), is in the audit log, and once lifted calls pass again.
func TestReplicasShareRateLimitsAndEmergencyStop(t *testing.T) {
	redisURL, _ := services.Redis(t)
	rp := startReplicaPair(t, "--redis-url", redisURL)
	issuer := rp.lb.URL + "/h/acme"
	conf, code, verifier := authorizeCode(t, rp.lb.URL, issuer, issuer+"/mcp/tracker", "alice@acme.test", "correct horse battery staple")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	s1 := &wireSession{t: t, endpoint: rp.p1.url + "/h/acme/mcp/tracker", token: tok.AccessToken}
	s2 := &wireSession{t: t, endpoint: rp.p2.url + "/h/acme/mcp/tracker", token: tok.AccessToken}
	s1.open()
	s2.open()

	cli(t, rp.p1, rp.admin, "host", "limit", "set", "acme", "--scope", "agent", "--per-minute", "1", "--burst", "3")
	allowed := 0
	for i := range 8 {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		r := s.callTool(10+i, "list_issues")
		switch r.denial() {
		case "":
			allowed++
		case "rate_limited":
			d := r.Result.Meta["trustgate/denial"]
			if d["limit"] != "agent" || d["retry_after"] == nil || d["retry_after"].(float64) < 1 {
				t.Errorf("call %d: denial fields %v", i, d)
			}
			if text := r.Result.Content[0].Text; !strings.Contains(text, "this agent's limit of 1 calls a minute (burst 3) is spent") {
				t.Errorf("call %d: text %q", i, text)
			}
		default:
			t.Fatalf("call %d: unexpected denial %v", i, r.Result)
		}
	}
	if allowed != 3 {
		t.Fatalf("%d of 8 calls over two replicas passed a shared limit of 3", allowed)
	}

	// The emergency stop, set on p1, holds on p2 at its next call.
	cli(t, rp.p1, rp.admin, "host", "limit", "remove", "acme", "--scope", "agent")
	if r := s2.callTool(30, "list_issues"); r.denial() != "" {
		t.Fatalf("after the limit was removed: %v", r.Result)
	}
	out := cli(t, rp.p1, rp.admin, "host", "stop", "acme", "--reason", "incident drill")
	if !strings.Contains(out, "Stopped host acme") {
		t.Errorf("host stop printed %q", out)
	}
	r := s2.callTool(31, "list_issues")
	if r.denial() != "emergency_stop" || !strings.Contains(r.Result.Content[0].Text, "incident drill") {
		t.Fatalf("call on p2 after the stop on p1: %v", r.Result)
	}
	if got := s2.toolNames(); len(got) == 0 {
		t.Fatal("tools/list answered nothing during the stop")
	}
	if show := cli(t, rp.p2, rp.admin, "host", "show", "acme"); !strings.Contains(show, "STOPPED since") || !strings.Contains(show, "incident drill") {
		t.Errorf("host show during the stop:\n%s", show)
	}
	cli(t, rp.p2, rp.admin, "host", "resume", "acme")
	if r := s1.callTool(32, "list_issues"); r.denial() != "" {
		t.Fatalf("call on p1 after the stop was lifted on p2: %v", r.Result)
	}

	audit := cli(t, rp.p1, rp.admin, "audit", "list", "--host", "acme", "-o", "json")
	for _, s := range []string{"host.emergency_stop", "host.emergency_stop_lift", "emergency_stop: the host is stopped since", "rate_limited: this agent's limit"} {
		if !strings.Contains(audit, s) {
			t.Errorf("the audit log lacks %q", s)
		}
	}
}
