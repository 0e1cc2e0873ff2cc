package proxy_test

import (
	"context"
	"testing"
	"time"
)

// TestAgentLastUseIsRecorded: an agent's request is its last use in the store (what the admin
// API, the dashboard's agents and My connections show), written in the background.
func TestAgentLastUseIsRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before, err := e.st.GetAgent(ctx, host, e.agentID)
	if err != nil {
		t.Fatal(err)
	}
	if !before.LastActiveAt.IsZero() {
		t.Fatalf("a new agent was already used at %v", before.LastActiveAt)
	}
	start := time.Now().Add(-time.Second)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	if _, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := e.st.GetAgent(ctx, host, e.agentID)
		if err != nil {
			t.Fatal(err)
		}
		if !a.LastActiveAt.IsZero() {
			if a.LastActiveAt.Before(start) || a.LastActiveAt.After(time.Now().Add(time.Second)) {
				t.Fatalf("last use %v, want about now", a.LastActiveAt)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent's call was not recorded as its last use")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
