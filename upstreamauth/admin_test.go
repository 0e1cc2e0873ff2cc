package upstreamauth_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/protectedmcp"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// TestAdminAuthorization: an administrator's own authorization at an upstream, for Create
// server. Inspect tells a server that requires authorization with OAuth metadata, with or
// without registration, from one that does not; BeginAdmin registers the gateway (once per host
// and authorization server, as consent does) or uses the client given, and FinishAdmin returns
// a token the upstream accepts only for the same host, session binding and state, within
// StateTTL; nothing of it is stored beyond the registration.
func TestAdminAuthorization(t *testing.T) {
	ctx := context.Background()
	cp := controlplane.New(t)
	for _, h := range []string{"acme", "beta"} {
		if _, err := cp.Store.EnsureHost(ctx, store.Host{Key: h}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	c, err := upstreamauth.NewClient(upstreamauth.Config{Store: cp.Store, Keys: keys, Now: clk.now,
		HTTPClient: ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: true})})
	if err != nil {
		t.Fatal(err)
	}
	withDCR := protectedmcp.Start(t, protectedmcp.Options{DCR: true})
	noDCR := protectedmcp.Start(t, protectedmcp.Options{})
	open := mcpserver.Start(t, "")
	const redirectURI = "http://localhost:7777/h/acme/oauth/upstream/callback"
	noDCR.AddClient("given", "its-secret", redirectURI)

	in, err := c.Inspect(ctx, withDCR.MCPURL, store.NetworkAny)
	if err != nil || !in.Required || !in.OAuth || !in.Registration || in.Issuer != withDCR.URL {
		t.Errorf("Inspect(with registration) = %+v, %v", in, err)
	}
	if in, err := c.Inspect(ctx, noDCR.MCPURL, store.NetworkAny); err != nil || !in.OAuth || in.Registration {
		t.Errorf("Inspect(without registration) = %+v, %v", in, err)
	}
	if in, err := c.Inspect(ctx, open.URL, store.NetworkAny); err != nil || in.Required {
		t.Errorf("Inspect(open server) = %+v, %v", in, err)
	}

	// The upstream's authorization endpoint approves at once: its redirect carries the code.
	authorize := func(authURL string) (state, code string) {
		t.Helper()
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("authorize answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("state"), loc.Query().Get("code")
	}
	begin := func(u string, client *upstreamauth.OAuthClient) (string, []byte) {
		t.Helper()
		authURL, sealed, err := c.BeginAdmin(ctx, upstreamauth.AdminBegin{Host: "acme", URL: u, Network: store.NetworkAny,
			Client: client, RedirectURI: redirectURI, Binding: "session-1", Context: []byte(`{"key":"issues"}`)})
		if err != nil {
			t.Fatalf("BeginAdmin(%s): %v", u, err)
		}
		return authURL, sealed
	}

	authURL, sealed := begin(withDCR.MCPURL, nil)
	state, code := authorize(authURL)
	if len(state) < 20 || state[:len(upstreamauth.AdminStatePrefix)] != upstreamauth.AdminStatePrefix {
		t.Errorf("state %q: want the admin prefix", state)
	}
	for name, try := range map[string]func() error{
		"another session": func() error { _, err := c.FinishAdmin(ctx, sealed, "acme", "session-2", state, code); return err },
		"another host":    func() error { _, err := c.FinishAdmin(ctx, sealed, "beta", "session-1", state, code); return err },
		"another state":   func() error { _, err := c.FinishAdmin(ctx, sealed, "acme", "session-1", state+"x", code); return err },
		"no flow":         func() error { _, err := c.FinishAdmin(ctx, nil, "acme", "session-1", state, code); return err },
	} {
		if err := try(); !errors.Is(err, upstreamauth.ErrState) {
			t.Errorf("FinishAdmin from %s: %v; want ErrState", name, err)
		}
	}
	fin, err := c.FinishAdmin(ctx, sealed, "acme", "session-1", state, code)
	if err != nil || !withDCR.Valid(ctx, fin.AccessToken) || fin.URL != withDCR.MCPURL || string(fin.Context) != `{"key":"issues"}` {
		t.Fatalf("FinishAdmin = %+v, %v", fin, err)
	}
	// The registration is the host's, reused by the next sign-in (and by consent); an
	// authorization finished after StateTTL is refused.
	authURL, sealed = begin(withDCR.MCPURL, nil)
	if n := withDCR.Registrations.Load(); n != 1 {
		t.Errorf("registrations = %d; want 1", n)
	}
	state, code = authorize(authURL)
	clk.advance(upstreamauth.StateTTL + time.Second)
	if _, err := c.FinishAdmin(ctx, sealed, "acme", "session-1", state, code); !errors.Is(err, upstreamauth.ErrState) {
		t.Errorf("FinishAdmin after StateTTL: %v; want ErrState", err)
	}

	// Without registration: no client is ErrNoClient; the client given works.
	if _, _, err := c.BeginAdmin(ctx, upstreamauth.AdminBegin{Host: "acme", URL: noDCR.MCPURL, Network: store.NetworkAny,
		RedirectURI: redirectURI, Binding: "session-1"}); !errors.Is(err, upstreamauth.ErrNoClient) {
		t.Errorf("BeginAdmin without registration or client: %v; want ErrNoClient", err)
	}
	authURL, sealed = begin(noDCR.MCPURL, &upstreamauth.OAuthClient{ClientID: "given", ClientSecret: "its-secret"})
	state, code = authorize(authURL)
	if fin, err := c.FinishAdmin(ctx, sealed, "acme", "session-1", state, code); err != nil || !noDCR.Valid(ctx, fin.AccessToken) {
		t.Fatalf("FinishAdmin with the given client = %+v, %v", fin, err)
	}
}
