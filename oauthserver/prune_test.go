package oauthserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
)

// Clients registered but never used are deleted a day later; a client that got an
// authorization code stays. The pruner is called directly, with the server's clock advanced.
func TestPruneUnusedClients(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	used := e.register("acme")
	unused := e.register("acme")
	e.flow(e.browser(), used, "state-0123456789", oauth2.GenerateVerifier(), "low")
	if n, err := e.server.PruneUnusedClients(ctx); err != nil || n != 0 {
		t.Fatalf("fresh clients pruned: %d %v", n, err)
	}
	e.clock.advance(oauthserver.UnusedClientTTL + time.Minute)
	if n, err := e.server.PruneUnusedClients(ctx); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
	if _, err := e.st.GetOAuthClient(ctx, "acme", unused.ClientID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unused client kept: %v", err)
	}
	if _, err := e.st.GetOAuthClient(ctx, "acme", used.ClientID); err != nil {
		t.Fatalf("used client deleted: %v", err)
	}
}
