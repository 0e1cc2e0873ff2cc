package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// TestRunPrunesExpiredOAuthRows: a running gateway deletes expired OAuth rows (and with them
// the revocations past their retention), so that they do not accumulate; live rows stay.
func TestRunPrunesExpiredOAuthRows(t *testing.T) {
	g := newTestGateway(t)
	ctx := context.Background()
	if _, err := g.store.EnsureHost(ctx, store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.store.CreateOAuthClient(ctx, store.OAuthClient{Host: "acme", ID: "c1", Kind: store.OAuthClientDCR,
		RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
		t.Fatal(err)
	}
	row := func(sig string, expires time.Time) store.OAuthRequest {
		return store.OAuthRequest{Kind: store.OAuthAccess, Signature: sig, RequestID: "req-" + sig, Host: "acme",
			ClientID: "c1", Subject: "u_1", AgentID: "a_1", Data: "{}", ExpiresAt: expires}
	}
	for _, r := range []store.OAuthRequest{row("expired", time.Now().Add(-time.Minute)), row("live", time.Now().Add(time.Hour))} {
		if err := g.store.CreateOAuthRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g.store.GetOAuthRequest(ctx, store.OAuthAccess, "expired")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired row is still there: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := g.store.GetOAuthRequest(ctx, store.OAuthAccess, "live"); err != nil {
		t.Fatalf("a live row was pruned: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
