package fositestore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/store"
)

// forEachEngine runs fn against a fresh store of every engine available: SQLite always,
// PostgreSQL when TRUSTGATE_TEST_POSTGRES is set.
func forEachEngine(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	engines := []struct {
		name   string
		config func(t *testing.T) store.Config
	}{
		{"sqlite", func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} }},
		{"postgres", func(t *testing.T) store.Config {
			return store.Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second}
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			st, err := store.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			fn(t, st)
		})
	}
}

// clock is a test clock running with real time plus an offset that tests advance.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", what, err, target)
	}
}

// setUpHost creates a host with a public client "cursor".
func setUpHost(t *testing.T, st store.Store, host string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.CreateHost(ctx, store.Host{Key: host}); err != nil {
		t.Fatalf("create host: %v", err)
	}
	if _, err := st.CreateOAuthClient(ctx, store.OAuthClient{
		Host: host, ID: "cursor", Kind: store.OAuthClientDCR,
		RedirectURIs: []string{"http://localhost:9999/callback"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		Metadata:     `{"scope":"mcp offline"}`,
	}); err != nil {
		t.Fatalf("create client: %v", err)
	}
}

// request builds a requester of host's client "cursor" as fosite hands it to storage.
func request(t *testing.T, fs *fositestore.Store, host, id string) *fosite.Request {
	t.Helper()
	ctx := fositestore.WithHost(context.Background(), host)
	client, err := fs.GetClient(ctx, "cursor")
	noErr(t, "get client", err)
	sess := fositestore.NewSession(host, "u_1", "a_1")
	sess.SetExpiresAt(fosite.AuthorizeCode, time.Now().Add(5*time.Minute).Round(time.Second))
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour).Round(time.Second))
	sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(24*time.Hour).Round(time.Second))
	return &fosite.Request{
		ID:                id,
		RequestedAt:       time.Now().UTC().Round(time.Second),
		Client:            client,
		RequestedScope:    fosite.Arguments{"mcp"},
		GrantedScope:      fosite.Arguments{"mcp"},
		RequestedAudience: fosite.Arguments{},
		GrantedAudience:   fosite.Arguments{"https://gw.example/h/" + host + "/mcp"},
		Form: url.Values{
			"redirect_uri":          {"http://localhost:9999/callback"},
			"code_challenge":        {"challenge"},
			"code_challenge_method": {"S256"},
			"code_verifier":         {"the-verifier-must-never-be-stored"},
			"code":                  {"the-code-must-never-be-stored"},
			"refresh_token":         {"the-refresh-token-must-never-be-stored"},
			"client_secret":         {"the-secret-must-never-be-stored"},
		},
		Session: sess,
	}
}

func TestRequestRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		setUpHost(t, st, "acme")
		fs := fositestore.New(st, fositestore.Options{})
		ctx := fositestore.WithHost(context.Background(), "acme")
		in := request(t, fs, "acme", "req-1")
		noErr(t, "create code", fs.CreateAuthorizeCodeSession(ctx, "sig-code", in))
		noErr(t, "create pkce", fs.CreatePKCERequestSession(ctx, "sig-code", in))
		noErr(t, "create access", fs.CreateAccessTokenSession(ctx, "sig-at", in))
		noErr(t, "create refresh", fs.CreateRefreshTokenSession(ctx, "sig-rt", "sig-at", in))

		// What the store holds: the request's owner, and never a credential.
		row, err := st.GetOAuthRequest(ctx, store.OAuthRefresh, "sig-rt")
		noErr(t, "get row", err)
		if row.RequestID != "req-1" || row.Host != "acme" || row.ClientID != "cursor" || row.Subject != "u_1" || row.AgentID != "a_1" {
			t.Fatalf("row = %+v", row)
		}
		if want := in.Session.GetExpiresAt(fosite.RefreshToken); !row.ExpiresAt.Equal(want) {
			t.Fatalf("refresh row expires at %v, want %v", row.ExpiresAt, want)
		}
		for _, kind := range []string{store.OAuthCode, store.OAuthPKCE, store.OAuthAccess, store.OAuthRefresh} {
			sig := map[string]string{store.OAuthCode: "sig-code", store.OAuthPKCE: "sig-code", store.OAuthAccess: "sig-at", store.OAuthRefresh: "sig-rt"}[kind]
			row, err := st.GetOAuthRequest(ctx, kind, sig)
			noErr(t, "get "+kind, err)
			if strings.Contains(row.Data, "must-never-be-stored") {
				t.Fatalf("%s row stores a credential: %s", kind, row.Data)
			}
		}

		// Loaded back: the same request, with a fresh client from the store.
		for name, get := range map[string]func() (fosite.Requester, error){
			"code": func() (fosite.Requester, error) { return fs.GetAuthorizeCodeSession(ctx, "sig-code", nil) },
			"pkce": func() (fosite.Requester, error) { return fs.GetPKCERequestSession(ctx, "sig-code", nil) },
			"access": func() (fosite.Requester, error) {
				return fs.GetAccessTokenSession(ctx, "sig-at", fositestore.NewSession("", "", ""))
			},
			"refresh": func() (fosite.Requester, error) { return fs.GetRefreshTokenSession(ctx, "sig-rt", nil) },
		} {
			got, err := get()
			noErr(t, "load "+name, err)
			if got.GetID() != "req-1" || !got.GetRequestedAt().Equal(in.RequestedAt) || got.GetClient().GetID() != "cursor" {
				t.Fatalf("%s: id %q, requested at %v, client %q", name, got.GetID(), got.GetRequestedAt(), got.GetClient().GetID())
			}
			if !got.GetGrantedScopes().Has("mcp") || !got.GetGrantedAudience().Has("https://gw.example/h/acme/mcp") {
				t.Fatalf("%s: scopes %v, audience %v", name, got.GetGrantedScopes(), got.GetGrantedAudience())
			}
			f := got.GetRequestForm()
			if f.Get("redirect_uri") != "http://localhost:9999/callback" || f.Get("code_challenge") != "challenge" || f.Get("code_challenge_method") != "S256" {
				t.Fatalf("%s: form %v", name, f)
			}
			sess, ok := got.GetSession().(*fositestore.Session)
			if !ok || sess.Host != "acme" || sess.UserID != "u_1" || sess.AgentID != "a_1" || sess.GetSubject() != "u_1" {
				t.Fatalf("%s: session %#v", name, got.GetSession())
			}
			for _, tt := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken} {
				if !sess.GetExpiresAt(tt).Equal(in.Session.GetExpiresAt(tt)) {
					t.Fatalf("%s: %s expires at %v, want %v", name, tt, sess.GetExpiresAt(tt), in.Session.GetExpiresAt(tt))
				}
			}
			if c := got.GetClient(); !c.GetScopes().Has("mcp") || !c.GetScopes().Has("offline") || !c.IsPublic() {
				t.Fatalf("%s: client scopes %v, public %v", name, c.GetScopes(), c.IsPublic())
			}
		}

		// Another host's context finds nothing; a request naming another host is refused.
		other := fositestore.WithHost(context.Background(), "other")
		_, err = fs.GetAccessTokenSession(other, "sig-at", nil)
		wantErr(t, "token of another host", err, fosite.ErrNotFound)
		if err := fs.CreateAccessTokenSession(other, "sig-x", in); err == nil {
			t.Fatal("stored a request of host acme in host other's context")
		}
		// Without a session of ours, nothing is stored.
		bad := request(t, fs, "acme", "req-2")
		bad.Session = &fosite.DefaultSession{}
		if err := fs.CreateAccessTokenSession(ctx, "sig-y", bad); err == nil {
			t.Fatal("stored a request with a foreign session type")
		}

		// GetClient needs the host.
		if _, err := fs.GetClient(context.Background(), "cursor"); err == nil {
			t.Fatal("GetClient without a host in the context succeeded")
		}
		_, err = fs.GetClient(ctx, "nobody")
		wantErr(t, "unknown client", err, fosite.ErrNotFound)

		// A deleted client's tokens are unusable.
		noErr(t, "delete client", st.DeleteOAuthClient(ctx, "acme", "cursor"))
		_, err = fs.GetAccessTokenSession(ctx, "sig-at", nil)
		wantErr(t, "token of a deleted client", err, fosite.ErrNotFound)
		_, err = fs.GetRefreshTokenSession(ctx, "sig-rt", nil)
		wantErr(t, "refresh token of a deleted client", err, fosite.ErrNotFound)
	})
}

func TestAuthorizeCodeUse(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		setUpHost(t, st, "acme")
		fs := fositestore.New(st, fositestore.Options{})
		ctx := fositestore.WithHost(context.Background(), "acme")
		noErr(t, "create code", fs.CreateAuthorizeCodeSession(ctx, "c1", request(t, fs, "acme", "req-1")))
		noErr(t, "use code", fs.InvalidateAuthorizeCodeSession(ctx, "c1"))
		r, err := fs.GetAuthorizeCodeSession(ctx, "c1", nil)
		wantErr(t, "used code", err, fosite.ErrInvalidatedAuthorizeCode)
		if r == nil || r.GetID() != "req-1" {
			t.Fatalf("a used code must load with its request (fosite revokes its grant): %v", r)
		}
		wantErr(t, "use a code twice", fs.InvalidateAuthorizeCodeSession(ctx, "c1"), fosite.ErrInvalidatedAuthorizeCode)
		wantErr(t, "use a missing code", fs.InvalidateAuthorizeCodeSession(ctx, "c2"), fosite.ErrNotFound)
		_, err = fs.GetAuthorizeCodeSession(ctx, "c2", nil)
		wantErr(t, "missing code", err, fosite.ErrNotFound)
		// PKCE rows are single use.
		noErr(t, "create pkce", fs.CreatePKCERequestSession(ctx, "c1", request(t, fs, "acme", "req-1")))
		noErr(t, "delete pkce", fs.DeletePKCERequestSession(ctx, "c1"))
		wantErr(t, "delete pkce twice", fs.DeletePKCERequestSession(ctx, "c1"), fosite.ErrNotFound)
	})
}

func TestRefreshRotation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		setUpHost(t, st, "acme")
		clk := &clock{}
		fs := fositestore.New(st, fositestore.Options{Now: clk.Now})
		ctx := fositestore.WithHost(context.Background(), "acme")
		req := request(t, fs, "acme", "req-1")
		noErr(t, "create at1", fs.CreateAccessTokenSession(ctx, "at1", req))
		noErr(t, "create rt1", fs.CreateRefreshTokenSession(ctx, "rt1", "at1", req))

		wantErr(t, "rotate with another grant's id", fs.RotateRefreshToken(ctx, "req-2", "rt1"), fosite.ErrNotFound)
		noErr(t, "rotate rt1", fs.RotateRefreshToken(ctx, "req-1", "rt1"))
		// The access token issued with rt1 is gone; rt1 is inactive at once (no grace window).
		_, err := fs.GetAccessTokenSession(ctx, "at1", nil)
		wantErr(t, "access token of a rotated refresh token", err, fosite.ErrNotFound)
		r, err := fs.GetRefreshTokenSession(ctx, "rt1", nil)
		wantErr(t, "rt1 right after its rotation", err, fosite.ErrInactiveToken)
		if r == nil || r.GetID() != "req-1" {
			t.Fatalf("an inactive refresh token must load with its request (fosite revokes its grant): %v", r)
		}
		wantErr(t, "rotate rt1 again", fs.RotateRefreshToken(ctx, "req-1", "rt1"), fosite.ErrInactiveToken)

		// A revoked grant: no new tokens.
		noErr(t, "create rt2", fs.CreateRefreshTokenSession(ctx, "rt2", "", req))
		noErr(t, "revoke refresh tokens", fs.RevokeRefreshToken(ctx, "req-1"))
		noErr(t, "revoke access tokens", fs.RevokeAccessToken(ctx, "req-1"))
		_, err = fs.GetRefreshTokenSession(ctx, "rt2", nil)
		wantErr(t, "revoked", err, fosite.ErrInactiveToken)
		wantErr(t, "rotate a revoked token", fs.RotateRefreshToken(ctx, "req-1", "rt2"), fosite.ErrInactiveToken)
		wantErr(t, "new access token in a revoked grant", fs.CreateAccessTokenSession(ctx, "at9", req), fosite.ErrInactiveToken)
		// Deleting what is gone is fine (fosite's reuse handling deletes before it revokes).
		noErr(t, "delete a missing refresh token", fs.DeleteRefreshTokenSession(ctx, "nope"))
		noErr(t, "delete a missing access token", fs.DeleteAccessTokenSession(ctx, "nope"))
	})
}

func TestSHA256Hasher(t *testing.T) {
	h := fositestore.SHA256Hasher{}
	ctx := context.Background()
	hash, err := h.Hash(ctx, []byte("s3cret"))
	noErr(t, "hash", err)
	if string(hash) != fositestore.HashSecret("s3cret") || len(hash) != 64 {
		t.Fatalf("hash %q", hash)
	}
	noErr(t, "compare the right secret", h.Compare(ctx, hash, []byte("s3cret")))
	for name, c := range map[string]struct{ hash, secret string }{
		"wrong secret":   {string(hash), "s3cres"},
		"empty secret":   {string(hash), ""},
		"no hash":        {"", "s3cret"},
		"truncated hash": {string(hash[:63]), "s3cret"},
	} {
		if h.Compare(ctx, []byte(c.hash), []byte(c.secret)) == nil {
			t.Fatalf("%s: compare succeeded", name)
		}
	}
}

func TestClientAssertionJTIs(t *testing.T) {
	clk := &clock{}
	fs := fositestore.New(nil, fositestore.Options{Now: clk.Now})
	ctx := context.Background()
	noErr(t, "unknown jti", fs.ClientAssertionJWTValid(ctx, "j1"))
	noErr(t, "set jti", fs.SetClientAssertionJWT(ctx, "j1", clk.Now().Add(time.Minute)))
	wantErr(t, "known jti", fs.ClientAssertionJWTValid(ctx, "j1"), fosite.ErrJTIKnown)
	wantErr(t, "set a known jti", fs.SetClientAssertionJWT(ctx, "j1", clk.Now().Add(time.Minute)), fosite.ErrJTIKnown)
	clk.advance(2 * time.Minute)
	noErr(t, "expired jti", fs.ClientAssertionJWTValid(ctx, "j1"))
	noErr(t, "set an expired jti again", fs.SetClientAssertionJWT(ctx, "j1", clk.Now().Add(time.Minute)))
}

func TestSessionClone(t *testing.T) {
	at := time.Unix(1_700_000_000, 0).UTC()
	s := fositestore.NewSession("acme", "u_1", "a_1")
	s.SetExpiresAt(fosite.AccessToken, at)
	s.JWTClaims = &jwt.JWTClaims{Extra: map[string]any{"k": "v"}}
	c, ok := s.Clone().(*fositestore.Session)
	if !ok || c.Host != "acme" || c.UserID != "u_1" || c.AgentID != "a_1" || c.GetSubject() != "u_1" || !c.GetExpiresAt(fosite.AccessToken).Equal(at) {
		t.Fatalf("clone = %#v", s.Clone())
	}
	c.SetExpiresAt(fosite.AccessToken, at.Add(time.Hour))
	c.JWTClaims.Extra["k"] = "changed"
	if !s.GetExpiresAt(fosite.AccessToken).Equal(at) || s.JWTClaims.Extra["k"] != "v" {
		t.Fatal("changing the clone changed the original")
	}
	var none *fositestore.Session
	if none.Clone() != nil {
		t.Fatal("clone of a nil session is not nil")
	}
}
