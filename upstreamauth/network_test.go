package upstreamauth_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// The gateway's OAuth requests for an upstream follow the server's network: an
// operator-approved server on "any" (here on loopback, over http) is probed and its sign-in
// demand seen; for a server on "host" the same address is refused before anything is sent.
func TestRequestsFollowTheServersNetwork(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c, err := upstreamauth.NewClient(upstreamauth.Config{Store: st, Keys: keys}) // production clients
	if err != nil {
		t.Fatal(err)
	}
	up := mcpserver.Start(t, "upstream-token") // 401 without the token

	required, _, err := c.Probe(upstreamauth.WithNetwork(ctx, store.NetworkAny), up.URL, "")
	if err != nil || !required {
		t.Fatalf("probe of a server on any network: required=%v, %v", required, err)
	}
	required, _, err = c.Probe(upstreamauth.WithNetwork(ctx, store.NetworkAny), up.URL, "upstream-token")
	if err != nil || required {
		t.Fatalf("probe with the token: required=%v, %v", required, err)
	}
	for _, probeCtx := range []context.Context{upstreamauth.WithNetwork(ctx, store.NetworkHost), ctx} {
		if _, _, err := c.Probe(probeCtx, up.URL, ""); !errors.Is(err, ssrf.ErrSchemeNotAllowed) && !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Fatalf("probe of a loopback server on network host: %v, want it refused", err)
		}
	}
	if _, _, err := c.Probe(upstreamauth.WithNetwork(ctx, store.NetworkHost), "https://169.254.169.254/mcp", ""); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("probe of the metadata address on network host: %v", err)
	}
}
