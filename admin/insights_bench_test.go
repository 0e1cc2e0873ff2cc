package admin_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// BenchmarkInsights measures GET …/insights on one large host in SQLite: 1000 humans with a
// ceiling on each of 20 servers of 20 tools, 2000 agents holding a level on 2 servers each, and
// 20000 allowed tool calls in the audit log.
func BenchmarkInsights(b *testing.B) {
	ctx := context.Background()
	cp := controlplane.New(b)
	st := cp.Store
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	urls, _ := tenant.NewURLs("https://gw.example.com", false)
	log := audit.NewLog(st, audit.Options{})
	defer func() { _ = log.Close(ctx) }()
	api, err := admin.New(admin.Config{Store: st, Syncer: cp.Writer, Keys: keys, URLs: urls})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	if _, err := st.EnsureHost(ctx, store.Host{Key: "big"}); err != nil {
		b.Fatal(err)
	}
	secret, hash, prefix := admin.NewTokenSecret()
	if _, err := st.CreateAPIToken(ctx, store.APIToken{Host: "big", Name: "bench", Hash: hash, Prefix: prefix}); err != nil {
		b.Fatal(err)
	}
	const servers, tools, humans, agentsPer, calls = 20, 20, 1000, 2, 20000
	for s := range servers {
		key := fmt.Sprintf("s%02d", s)
		if _, err := st.CreateServer(ctx, store.Server{Host: "big", Key: key, Name: key, URL: "https://mcp.example.com/" + key}); err != nil {
			b.Fatal(err)
		}
		for t := range tools {
			if _, err := st.PutTool(ctx, store.Tool{Host: "big", Server: key, Name: fmt.Sprintf("t%02d", t), Level: schema.Level(t%3 + 1), Enabled: true}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var agentIDs []string
	for h := range humans {
		u, err := st.CreateUser(ctx, store.User{Host: "big", Email: fmt.Sprintf("h%04d@big.test", h)})
		if err != nil {
			b.Fatal(err)
		}
		for s := range servers {
			if _, err := st.SetGrant(ctx, store.Grant{Host: "big", Server: fmt.Sprintf("s%02d", s), UserID: u.ID, Ceiling: schema.High}); err != nil {
				b.Fatal(err)
			}
		}
		for a := range agentsPer {
			ag, err := st.CreateAgent(ctx, store.Agent{Host: "big", UserID: u.ID, ClientID: fmt.Sprintf("c%04d-%d", h, a), Name: "agent"})
			if err != nil {
				b.Fatal(err)
			}
			agentIDs = append(agentIDs, ag.ID)
			for s := range 2 {
				if _, err := st.SetConsent(ctx, store.Consent{Host: "big", AgentID: ag.ID, Server: fmt.Sprintf("s%02d", (h+s)%servers), Level: schema.Medium}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for i := range calls {
		if err := log.Append(ctx, audit.Entry{Host: "big", AgentID: agentIDs[i%len(agentIDs)], Server: fmt.Sprintf("s%02d", i%servers), Tool: fmt.Sprintf("t%02d", i%tools), Method: "tools/call", Decision: audit.Allowed}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/hosts/big/insights", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("insights = %d: %s", resp.StatusCode, body.String())
		}
		b.ReportMetric(float64(body.Len()), "bytes/answer")
	}
}
