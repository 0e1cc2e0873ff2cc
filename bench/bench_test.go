package bench_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/bench"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/store/cache"
)

// backend is an embedded SpiceDB with 10^4 generated relationships, shared by the check
// benchmarks.
var backend = sync.OnceValues(func() (*authzserver.SpiceDB, error) {
	ctx := context.Background()
	b, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
	if err != nil {
		return nil, err
	}
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		return nil, err
	}
	if _, err := bench.Load(ctx, b, 10_000); err != nil {
		return nil, err
	}
	return b, nil
})

func loaded(b *testing.B) *authzserver.SpiceDB {
	s, err := backend()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var question = authzserver.CheckRequest{
	Resource: schema.Tool("h3", "s1", "tool_4"), Permission: schema.PermToolCall,
	Subject: schema.SubjectRef{Object: schema.Agent("h3", "a2_1")},
}

// BenchmarkCheckUncached is one tool-call check through SpiceDB (in process, fully consistent).
func BenchmarkCheckUncached(b *testing.B) {
	s := loaded(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Check(ctx, question); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCached is the same check answered by the decision cache.
func BenchmarkCheckCached(b *testing.B) {
	ctx := context.Background()
	c, err := authzserver.NewDecisionCache(ctx, loaded(b), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.StopWatch) // the backend is shared: only its watch ends
	for b.Loop() {
		if _, err := c.Check(ctx, question); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCachedOtherHostWrites is cached checks on host h3 (a working set of 100
// questions: 20 agents, 5 tools) while another host (h1) is written continuously: a
// relationship of h1 is touched or deleted in a loop beside the checks, so the datastore's
// head revision keeps moving. It reports the writes made per second.
func BenchmarkCheckCachedOtherHostWrites(b *testing.B) {
	ctx := context.Background()
	s := loaded(b)
	var set []authzserver.CheckRequest
	for human := range 10 {
		for n := range 2 {
			for tool := range 5 {
				set = append(set, authzserver.CheckRequest{
					Resource: schema.Tool("h3", "s1", fmt.Sprintf("tool_%d", tool)), Permission: schema.PermToolCall,
					Subject: schema.SubjectRef{Object: schema.Agent("h3", fmt.Sprintf("a%d_%d", human, n))},
				})
			}
		}
	}
	c, err := authzserver.NewDecisionCache(ctx, s, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.StopWatch)
	writeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var writes atomic.Int64
	go func() {
		grant := schema.Grant("h1", "s0", "a0_0", schema.High)
		for i := 0; ; i++ {
			writes.Add(1)
			op := authzserver.OpTouch
			if i%2 == 1 {
				op = authzserver.OpDelete
			}
			if _, err := s.WriteRelationships(writeCtx, []authzserver.Update{{Op: op, Relationship: grant}}); err != nil {
				if writeCtx.Err() != nil {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	began := time.Now()
	i := 0
	for b.Loop() {
		if _, err := c.Check(ctx, set[i%len(set)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(writes.Load())/time.Since(began).Seconds(), "writes/s")
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCheckPostgres is the check on the PostgreSQL datastore (TRUSTGATE_TEST_POSTGRES):
// uncached, and through the decision cache, whose hit costs one head-revision query.
func BenchmarkCheckPostgres(b *testing.B) {
	ctx := context.Background()
	s, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: services.Postgres(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.WriteSchema(ctx, schema.Text); err != nil {
		b.Fatal(err)
	}
	if _, err := bench.Load(ctx, s, 10_000); err != nil {
		b.Fatal(err)
	}
	c, err := authzserver.NewDecisionCache(ctx, s, 0)
	if err != nil {
		b.Fatal(err)
	}
	for name, backend := range map[string]authzserver.Backend{"uncached": s, "cached": c} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := backend.Check(ctx, question); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCallableTools is the tools/list filter's one lookup, uncached and cached.
func BenchmarkCallableTools(b *testing.B) {
	ctx := context.Background()
	s := loaded(b)
	c, err := authzserver.NewDecisionCache(ctx, s, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.StopWatch)
	for name, backend := range map[string]authzserver.Backend{"uncached": s, "cached": c} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := backend.CallableTools(ctx, "h3", "s1", "a2_1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newKeySet(b *testing.B, remembered int) *accesstoken.KeySet {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	raw := make([]byte, secrets.KeySize)
	_, _ = rand.Read(raw)
	ring, err := secrets.NewKeyring(raw)
	if err != nil {
		b.Fatal(err)
	}
	ks, err := accesstoken.Open(ctx, st, ring, accesstoken.Options{VerifiedTokens: remembered})
	if err != nil {
		b.Fatal(err)
	}
	return ks
}

// BenchmarkVerify is the access-token verification of every proxied request.
func BenchmarkVerify(b *testing.B) {
	for _, c := range []struct {
		name       string
		remembered int
	}{{"uncached", -1}, {"cached", 0}} {
		b.Run(c.name, func(b *testing.B) {
			ks := newKeySet(b, c.remembered)
			now := time.Now()
			tok, err := ks.Mint(accesstoken.AccessClaims{Issuer: "https://gw.example/h/acme", Subject: "u_1", ClientID: "c",
				Audience: []string{"https://gw.example/h/acme/mcp/up"}, Expiry: now.Add(time.Hour),
				AgentID: "a_1", Host: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			want := accesstoken.Expect{Issuer: "https://gw.example/h/acme", Audience: "https://gw.example/h/acme/mcp/up"}
			for b.Loop() {
				if _, err := ks.Verify(tok, want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenState is what the proxy reads of every verified access token besides its
// signature: whether its agent and human still exist and whether it or its grant was revoked,
// through the control-plane cache under one snapshot of the generation (as a request does).
func BenchmarkTokenState(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.EnsureHost(ctx, store.Host{Key: "acme"}); err != nil {
		b.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: "ann@example.com"})
	if err != nil {
		b.Fatal(err)
	}
	a, err := st.CreateAgent(ctx, store.Agent{Host: "acme", UserID: u.ID, ClientID: "c", Name: "Cursor"})
	if err != nil {
		b.Fatal(err)
	}
	hot := cache.New(st, 0)
	snap, err := hot.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := hot.GetAgent(snap, "acme", a.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := hot.GetUser(snap, "acme", u.ID); err != nil {
			b.Fatal(err)
		}
		if revoked, err := hot.OAuthTokenRevoked(snap, "jti-1", "grant-1"); err != nil || revoked {
			b.Fatal(revoked, err)
		}
	}
}

// env is one benchmark setup (upstream, gateway, consented agent) shared by the end-to-end
// benchmarks; the tools/list one needs the 200 tools.
var env = sync.OnceValues(func() (*bench.Env, error) {
	return bench.Setup(context.Background(), bench.SetupOptions{ExtraTools: 197})
})

func post(b *testing.B, c *http.Client, e *bench.Env, session, body string) (string, []byte) {
	req, _ := http.NewRequest(http.MethodPost, e.Resource, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e.Token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		b.Fatalf("HTTP %d: %s", resp.StatusCode, data)
	}
	if s := resp.Header.Get("Mcp-Session-Id"); s != "" {
		session = s
	}
	return session, data
}

func session(b *testing.B) (*http.Client, *bench.Env, string) {
	e, err := env()
	if err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	s, _ := post(b, c, e, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"go bench","version":"1"}}}`)
	post(b, c, e, s, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return c, e, s
}

// BenchmarkProxiedEcho is one allowed tools/call through the gateway, end to end over loopback
// HTTP (client, gateway and upstream in this process).
func BenchmarkProxiedEcho(b *testing.B) {
	c, e, s := session(b)
	for i := 0; b.Loop(); i++ {
		_, out := post(b, c, e, s, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`, i+1))
		if !bytes.Contains(out, []byte(`"result"`)) {
			b.Fatalf("echo through the gateway: %s", out)
		}
	}
}

// BenchmarkToolsListFiltered is tools/list of a 200-tool server through the gateway, filtered
// to the 101 the agent may call.
func BenchmarkToolsListFiltered(b *testing.B) {
	c, e, s := session(b)
	for i := 0; b.Loop(); i++ {
		_, out := post(b, c, e, s, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i+1))
		if n := bytes.Count(out, []byte(`"name":"lookup_`)); n != 99 || bytes.Contains(out, []byte(`"name":"delete_`)) {
			b.Fatalf("tools/list through the gateway kept %d lookup tools (want 99) and no delete tool: %.300s", n, out)
		}
	}
}
