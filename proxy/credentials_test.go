package proxy_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// A server's header credential is unsealed once and remembered, never past a change: the call
// after a change in the store sends the new value, and the sealed bytes of one server's
// credential copied onto another server are refused there (the seal names its server) even
// while the first server's credential is remembered.
func TestServerCredentialIsNeverUsedPastAChange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32)) // newEnv's
	if err != nil {
		t.Fatal(err)
	}
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	})
	seal := func(s *store.Server, key, value string) {
		t.Helper()
		kind, sealed, err := upstreamauth.SealCredentials(keys, host, key, upstreamauth.Credentials{Header: &upstreamauth.CredentialHeader{Name: "X-Api-Key", Value: value}})
		if err != nil {
			t.Fatal(err)
		}
		s.CredentialKind, s.Credentials = kind, sealed
	}
	one := e.addServer("one", answer, func(s *store.Server) { seal(s, "one", "first") })
	const ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	sent := func(u *upstream) string {
		t.Helper()
		h := u.headers()
		return h[len(h)-1].Get("X-Api-Key")
	}
	for range 2 {
		if resp, body := e.do("POST", "one", nil, ping); resp.StatusCode != http.StatusOK || strings.Contains(string(body), "error") {
			t.Fatalf("ping: %d %s", resp.StatusCode, body)
		}
		if got := sent(one); got != "first" {
			t.Fatalf("the upstream got X-Api-Key %q, want first", got)
		}
	}

	srv, err := e.st.GetServer(ctx, host, "one")
	if err != nil {
		t.Fatal(err)
	}
	seal(&srv, "one", "second")
	if _, err := e.st.UpdateServer(ctx, srv); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.do("POST", "one", nil, ping); resp.StatusCode != http.StatusOK || strings.Contains(string(body), "error") {
		t.Fatalf("ping after the change: %d %s", resp.StatusCode, body)
	}
	if got := sent(one); got != "second" {
		t.Fatalf("after the change the upstream got X-Api-Key %q, want second", got)
	}

	copied := e.addServer("copied", answer, func(s *store.Server) { s.CredentialKind, s.Credentials = srv.CredentialKind, srv.Credentials })
	resp, body := e.do("POST", "copied", nil, ping)
	if rpcCode(t, body) != proxy.ErrCodeUpstream || !strings.Contains(string(body), "could not use its stored credentials") {
		t.Fatalf("a call with another server's sealed credential: %d %s", resp.StatusCode, body)
	}
	if copied.calls.Load() != 0 {
		t.Fatalf("a call with another server's sealed credential reached the upstream")
	}
}
