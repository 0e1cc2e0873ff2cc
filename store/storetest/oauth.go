package storetest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// The OAuth part of the conformance suite: clients and the stored requests behind codes and
// tokens.

var regexpOAuthClientID = regexp.MustCompile(`^c_[a-z2-7]{20}$`)

const secretHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")

func publicClient(host, id string) store.OAuthClient {
	return store.OAuthClient{
		Host: host, ID: id, Kind: store.OAuthClientDCR, Name: "Cursor",
		RedirectURIs:            []string{"http://127.0.0.1:33418/callback"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: store.OAuthAuthNone,
		Metadata:                `{"client_name":"Cursor"}`,
	}
}

func testOAuthClients(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "other"}))

		// A DCR client without an id gets one.
		c := publicClient("acme", "")
		created := must[store.OAuthClient](t, "create client")(s.CreateOAuthClient(ctx, c))
		if !regexpOAuthClientID.MatchString(created.ID) {
			t.Fatalf("generated client id %q does not match %s", created.ID, regexpOAuthClientID)
		}
		if created.CreatedAt.IsZero() || !created.FetchedAt.IsZero() {
			t.Fatalf("created client times: created %v, fetched %v", created.CreatedAt, created.FetchedAt)
		}
		wantEqual(t, "GetOAuthClient", must[store.OAuthClient](t, "get client")(s.GetOAuthClient(ctx, "acme", created.ID)), created)

		// Duplicates, unknown hosts, other hosts.
		_, err := s.CreateOAuthClient(ctx, publicClient("acme", created.ID))
		wantErr(t, "duplicate client", err, store.ErrConflict)
		_, err = s.CreateOAuthClient(ctx, publicClient("nohost", "x"))
		wantErr(t, "client of an unknown host", err, store.ErrNotFound)
		_, err = s.GetOAuthClient(ctx, "other", created.ID)
		wantErr(t, "client of another host", err, store.ErrNotFound)
		wantEqual(t, "host of a registered client", must[string](t, "find host")(s.RegisteredOAuthClientHost(ctx, created.ID)), "acme")
		_, err = s.RegisteredOAuthClientHost(ctx, "c_unknown")
		wantErr(t, "host of an unknown client", err, store.ErrNotFound)
		_, err = s.RegisteredOAuthClientHost(ctx, "")
		wantErr(t, "host of an empty client id", err, store.ErrNotFound)
		must[store.OAuthClient](t, "same id in another host")(s.CreateOAuthClient(ctx, publicClient("other", created.ID)))
		_, err = s.RegisteredOAuthClientHost(ctx, created.ID)
		wantErr(t, "host of a client id two hosts registered", err, store.ErrConflict)

		// A confidential client, with empty lists and metadata.
		conf := must[store.OAuthClient](t, "create confidential client")(s.CreateOAuthClient(ctx, store.OAuthClient{
			Host: "acme", ID: "rs", Kind: store.OAuthClientDCR, SecretHash: secretHash,
			TokenEndpointAuthMethod: store.OAuthAuthClientSecretBasic, RedirectURIs: []string{},
		}))
		wantEqual(t, "normalized confidential client", conf, store.OAuthClient{
			Host: "acme", ID: "rs", Kind: store.OAuthClientDCR, SecretHash: secretHash,
			TokenEndpointAuthMethod: store.OAuthAuthClientSecretBasic, Metadata: "{}", CreatedAt: conf.CreatedAt,
		})
		wantEqual(t, "get confidential client", must[store.OAuthClient](t, "get")(s.GetOAuthClient(ctx, "acme", "rs")), conf)

		// A CIMD client: its id is a URL, up to 2048 characters.
		longURL := "https://client.example/" + strings.Repeat("a", 2048-len("https://client.example/"))
		cimd := publicClient("acme", longURL)
		cimd.Kind = store.OAuthClientCIMD
		cimd.FetchedAt = ms(1_700_000_000, 123)
		gotCIMD := must[store.OAuthClient](t, "create CIMD client")(s.CreateOAuthClient(ctx, cimd))
		wantEqual(t, "get CIMD client", must[store.OAuthClient](t, "get")(s.GetOAuthClient(ctx, "acme", longURL)), gotCIMD)
		_, err = s.RegisteredOAuthClientHost(ctx, longURL)
		wantErr(t, "host of a CIMD client", err, store.ErrNotFound)

		// Put replaces all but the kind and the creation time.
		refetched := cimd
		refetched.Name = "Renamed"
		refetched.RedirectURIs = []string{"http://localhost/cb", "https://app.example/cb"}
		refetched.Metadata = `{"client_name":"Renamed"}`
		refetched.FetchedAt = ms(1_700_000_100, 0)
		put := must[store.OAuthClient](t, "put CIMD client")(s.PutOAuthClient(ctx, refetched))
		want := refetched
		want.CreatedAt = gotCIMD.CreatedAt
		wantEqual(t, "put result", put, want)
		wantEqual(t, "get after put", must[store.OAuthClient](t, "get")(s.GetOAuthClient(ctx, "acme", longURL)), want)
		refetched.Kind = store.OAuthClientDCR
		_, err = s.PutOAuthClient(ctx, refetched)
		wantErr(t, "put changing the kind", err, store.ErrConflict)
		// Put creates a missing client.
		fresh := publicClient("acme", "https://new.example/client.json")
		fresh.Kind = store.OAuthClientCIMD
		putNew := must[store.OAuthClient](t, "put new client")(s.PutOAuthClient(ctx, fresh))
		if putNew.CreatedAt.IsZero() {
			t.Fatal("put of a new client: CreatedAt is zero")
		}
		_, err = s.PutOAuthClient(ctx, publicClient("acme", ""))
		wantErr(t, "put without id", err, store.ErrInvalid)
		_, err = s.PutOAuthClient(ctx, publicClient("nohost", "x"))
		wantErr(t, "put in an unknown host", err, store.ErrNotFound)

		// Invalid clients.
		for name, mod := range map[string]func(*store.OAuthClient){
			"kind":                      func(c *store.OAuthClient) { c.Kind = "static" },
			"CIMD without id":           func(c *store.OAuthClient) { c.Kind, c.ID = store.OAuthClientCIMD, "" },
			"id too long":               func(c *store.OAuthClient) { c.ID = strings.Repeat("a", 2049) },
			"id with a control char":    func(c *store.OAuthClient) { c.ID = "a\nb" },
			"auth method":               func(c *store.OAuthClient) { c.TokenEndpointAuthMethod = "private_key_jwt" },
			"public client with secret": func(c *store.OAuthClient) { c.SecretHash = secretHash },
			"confidential without secret": func(c *store.OAuthClient) {
				c.TokenEndpointAuthMethod = store.OAuthAuthClientSecretPost
			},
			"upper-case secret hash": func(c *store.OAuthClient) {
				c.TokenEndpointAuthMethod, c.SecretHash = store.OAuthAuthClientSecretPost, strings.ToUpper(secretHash)
			},
			"metadata not JSON":  func(c *store.OAuthClient) { c.Metadata = "{" },
			"metadata too large": func(c *store.OAuthClient) { c.Metadata = `"` + strings.Repeat("a", 64<<10) + `"` },
			"too many redirect URIs": func(c *store.OAuthClient) {
				c.RedirectURIs = make([]string, 21)
				for i := range c.RedirectURIs {
					c.RedirectURIs[i] = fmt.Sprintf("https://app.example/%d", i)
				}
			},
			"empty grant type": func(c *store.OAuthClient) { c.GrantTypes = []string{""} },
			"host key":         func(c *store.OAuthClient) { c.Host = "Bad Host" },
			"name too long":    func(c *store.OAuthClient) { c.Name = strings.Repeat("n", 1025) },
		} {
			c := publicClient("acme", "bad")
			mod(&c)
			_, err := s.CreateOAuthClient(ctx, c)
			wantErr(t, "create client with invalid "+name, err, store.ErrInvalid)
		}

		// Delete.
		noErr(t, "delete client", s.DeleteOAuthClient(ctx, "acme", created.ID))
		_, err = s.GetOAuthClient(ctx, "acme", created.ID)
		wantErr(t, "get deleted client", err, store.ErrNotFound)
		wantErr(t, "delete deleted client", s.DeleteOAuthClient(ctx, "acme", created.ID), store.ErrNotFound)
		must[store.OAuthClient](t, "other host's client stays")(s.GetOAuthClient(ctx, "other", created.ID))
	})
}

// oauthRow is a row of a grant for tests.
func oauthRow(kind, sig, requestID, subject, agent string) store.OAuthRequest {
	return store.OAuthRequest{
		Kind: kind, Signature: sig, RequestID: requestID, Host: "acme", ClientID: "cursor",
		Subject: subject, AgentID: agent, Data: `{"id":"` + requestID + `"}`,
		RequestedAt: ms(1_700_000_000, 1), ExpiresAt: ms(1_700_003_600, 0),
	}
}

func setUpOAuth(t *testing.T, s store.Store) {
	t.Helper()
	must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
	must[store.OAuthClient](t, "create client")(s.CreateOAuthClient(ctx, publicClient("acme", "cursor")))
}

func createRows(t *testing.T, s store.Store, rows ...store.OAuthRequest) {
	t.Helper()
	for _, r := range rows {
		noErr(t, "create "+r.Kind+" "+r.Signature, s.CreateOAuthRequest(ctx, r))
	}
}

func getRow(t *testing.T, s store.Store, kind, sig string) store.OAuthRequest {
	t.Helper()
	return must[store.OAuthRequest](t, "get "+kind+" "+sig)(s.GetOAuthRequest(ctx, kind, sig))
}

// wantState checks a row: "active", "rotated" (inactive, RotatedAt set), "revoked" (inactive,
// RotatedAt zero) or "gone".
func wantState(t *testing.T, s store.Store, kind, sig, state string) {
	t.Helper()
	r, err := s.GetOAuthRequest(ctx, kind, sig)
	got := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		got = "gone"
	case err != nil:
		t.Fatalf("get %s %s: %v", kind, sig, err)
	case r.Active:
		got = "active"
	case r.RotatedAt.IsZero():
		got = "revoked"
	default:
		got = "rotated"
	}
	if got != state {
		t.Fatalf("%s %s is %s, want %s", kind, sig, got, state)
	}
}

func testOAuthRequests(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		r := oauthRow(store.OAuthCode, "sig-code", "req-1", "u_1", "a_1")
		r.Active = false                   // ignored: rows are created active
		r.RotatedAt = ms(1_700_000_000, 0) // ignored
		createRows(t, s, r)
		want := r
		want.Active, want.RotatedAt = true, time.Time{}
		wantEqual(t, "GetOAuthRequest", getRow(t, s, store.OAuthCode, "sig-code"), want)

		// The same signature of another kind is another row; the same kind is a conflict.
		createRows(t, s, oauthRow(store.OAuthPKCE, "sig-code", "req-1", "u_1", "a_1"))
		wantErr(t, "duplicate row", s.CreateOAuthRequest(ctx, r), store.ErrConflict)
		_, err := s.GetOAuthRequest(ctx, store.OAuthAccess, "sig-code")
		wantErr(t, "get missing row", err, store.ErrNotFound)

		// A zero RequestedAt is now; a zero ExpiresAt stays zero.
		before := time.Now().Add(-time.Second)
		now := oauthRow(store.OAuthAccess, "sig-now", "req-1", "", "")
		now.RequestedAt, now.ExpiresAt = time.Time{}, time.Time{}
		createRows(t, s, now)
		got := getRow(t, s, store.OAuthAccess, "sig-now")
		if got.RequestedAt.Before(before) || !got.ExpiresAt.IsZero() {
			t.Fatalf("defaults: requested %v, expires %v", got.RequestedAt, got.ExpiresAt)
		}

		// The client must exist.
		orphan := oauthRow(store.OAuthAccess, "sig-orphan", "req-9", "u_1", "a_1")
		orphan.ClientID = "nobody"
		wantErr(t, "row of an unknown client", s.CreateOAuthRequest(ctx, orphan), store.ErrNotFound)

		// Invalid rows.
		for name, mod := range map[string]func(*store.OAuthRequest){
			"kind":               func(r *store.OAuthRequest) { r.Kind = "id_token" },
			"empty signature":    func(r *store.OAuthRequest) { r.Signature = "" },
			"signature too long": func(r *store.OAuthRequest) { r.Signature = strings.Repeat("s", 513) },
			"empty request id":   func(r *store.OAuthRequest) { r.RequestID = "" },
			"request id too long": func(r *store.OAuthRequest) {
				r.RequestID = strings.Repeat("r", 2049)
			},
			"subject too long": func(r *store.OAuthRequest) { r.Subject = strings.Repeat("u", 2049) },
			"data not JSON":    func(r *store.OAuthRequest) { r.Data = "{" },
			"data too large":   func(r *store.OAuthRequest) { r.Data = `"` + strings.Repeat("d", 64<<10) + `"` },
			"data with NUL":    func(r *store.OAuthRequest) { r.Data = "\"a\x00\"" },
			"host":             func(r *store.OAuthRequest) { r.Host = "" },
		} {
			r := oauthRow(store.OAuthAccess, "sig-bad", "req-bad", "u_1", "a_1")
			mod(&r)
			wantErr(t, "create row with invalid "+name, s.CreateOAuthRequest(ctx, r), store.ErrInvalid)
		}
		// The limits themselves are accepted.
		big := oauthRow(store.OAuthAccess, strings.Repeat("s", 512), strings.Repeat("r", 2048), "u_1", "a_1")
		big.Data = `"` + strings.Repeat("d", 64<<10-2) + `"`
		createRows(t, s, big)
		wantEqual(t, "row at the limits", getRow(t, s, store.OAuthAccess, big.Signature).Data, big.Data)

		// Deactivate: once; the first time stays.
		at := ms(1_700_000_010, 500)
		noErr(t, "deactivate code", s.DeactivateOAuthRequest(ctx, store.OAuthCode, "sig-code", at))
		got = getRow(t, s, store.OAuthCode, "sig-code")
		if got.Active || !got.RotatedAt.Equal(at) {
			t.Fatalf("deactivated code: active %v, rotated at %v, want false, %v", got.Active, got.RotatedAt, at)
		}
		wantErr(t, "deactivate twice", s.DeactivateOAuthRequest(ctx, store.OAuthCode, "sig-code", at.Add(time.Hour)), store.ErrConflict)
		wantEqual(t, "rotated at after a second deactivation", getRow(t, s, store.OAuthCode, "sig-code").RotatedAt, at)
		wantErr(t, "deactivate a missing row", s.DeactivateOAuthRequest(ctx, store.OAuthRefresh, "nope", at), store.ErrNotFound)
		wantErr(t, "deactivate at the zero time", s.DeactivateOAuthRequest(ctx, store.OAuthPKCE, "sig-code", time.Time{}), store.ErrInvalid)

		// Delete.
		noErr(t, "delete pkce", s.DeleteOAuthRequest(ctx, store.OAuthPKCE, "sig-code"))
		wantState(t, s, store.OAuthPKCE, "sig-code", "gone")
		wantState(t, s, store.OAuthCode, "sig-code", "rotated")
		wantErr(t, "delete twice", s.DeleteOAuthRequest(ctx, store.OAuthPKCE, "sig-code"), store.ErrNotFound)
	})
}

func testOAuthGrantRevocation(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		createRows(t, s,
			oauthRow(store.OAuthCode, "c1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthAccess, "at1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthAccess, "at2", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt2", "req-1", "u_1", "a_1"),
			// another grant
			oauthRow(store.OAuthAccess, "at-x", "req-2", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt-x", "req-2", "u_1", "a_1"),
		)
		at := ms(1_700_000_020, 0)
		noErr(t, "use code", s.DeactivateOAuthRequest(ctx, store.OAuthCode, "c1", at))
		noErr(t, "rotate rt1", s.DeactivateOAuthRequest(ctx, store.OAuthRefresh, "rt1", at))

		// Neither a used code nor a rotated refresh token stops the grant.
		createRows(t, s, oauthRow(store.OAuthAccess, "at3", "req-1", "u_1", "a_1"))

		n := must[int](t, "delete access tokens")(s.DeleteOAuthRequestsByRequestID(ctx, store.OAuthAccess, "req-1"))
		wantEqual(t, "access tokens deleted", n, 3)
		n = must[int](t, "revoke refresh tokens")(s.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, "req-1"))
		wantEqual(t, "refresh tokens revoked", n, 2) // the rotated one too: out of its grace window
		wantState(t, s, store.OAuthRefresh, "rt1", "revoked")
		wantState(t, s, store.OAuthRefresh, "rt2", "revoked")
		wantState(t, s, store.OAuthCode, "c1", "rotated")
		_, err := s.RevokeOAuthRequestsByRequestID(ctx, "refrsh", "req-1")
		wantErr(t, "revoke rows of an unknown kind", err, store.ErrInvalid)
		_, err = s.DeleteOAuthRequestsByRequestID(ctx, "acess", "req-1")
		wantErr(t, "delete rows of an unknown kind", err, store.ErrInvalid)
		n = must[int](t, "revoke again")(s.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, "req-1"))
		wantEqual(t, "refresh tokens revoked again", n, 0)
		wantErr(t, "deactivate a revoked token", s.DeactivateOAuthRequest(ctx, store.OAuthRefresh, "rt2", at), store.ErrConflict)
		wantState(t, s, store.OAuthRefresh, "rt2", "revoked")

		// A revoked grant takes no new rows, of any kind.
		for _, kind := range []string{store.OAuthAccess, store.OAuthRefresh} {
			err := s.CreateOAuthRequest(ctx, oauthRow(kind, "late", "req-1", "u_1", "a_1"))
			wantErr(t, "new "+kind+" in a revoked grant", err, store.ErrOAuthGrantRevoked)
			wantErr(t, "new "+kind+" in a revoked grant", err, store.ErrConflict)
		}
		// The other grant is untouched.
		wantState(t, s, store.OAuthAccess, "at-x", "active")
		wantState(t, s, store.OAuthRefresh, "rt-x", "active")
		createRows(t, s, oauthRow(store.OAuthAccess, "at-y", "req-2", "u_1", "a_1"))
	})
}

func testRevokeOAuthBySubjectAndAgent(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "other"}))
		must[store.OAuthClient](t, "create client")(s.CreateOAuthClient(ctx, publicClient("other", "cursor")))
		elsewhere := oauthRow(store.OAuthRefresh, "rt-other-host", "req-9", "u_1", "a_1")
		elsewhere.Host = "other"
		createRows(t, s,
			oauthRow(store.OAuthCode, "c1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthPKCE, "c1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthAccess, "at1", "req-2", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt1", "req-2", "u_1", "a_1"),
			oauthRow(store.OAuthAccess, "at2", "req-3", "u_1", "a_2"),
			oauthRow(store.OAuthRefresh, "rt2", "req-3", "u_1", "a_2"),
			oauthRow(store.OAuthAccess, "at3", "req-4", "u_2", "a_3"),
			oauthRow(store.OAuthRefresh, "rt3", "req-4", "u_2", "a_3"),
			elsewhere,
		)

		n := must[int](t, "revoke agent a_1")(s.RevokeOAuthByAgent(ctx, "acme", "a_1"))
		wantEqual(t, "rows of a_1", n, 4)
		wantState(t, s, store.OAuthCode, "c1", "revoked")
		wantState(t, s, store.OAuthPKCE, "c1", "gone")
		wantState(t, s, store.OAuthAccess, "at1", "gone")
		wantState(t, s, store.OAuthRefresh, "rt1", "revoked")
		wantState(t, s, store.OAuthRefresh, "rt2", "active")
		wantState(t, s, store.OAuthRefresh, "rt-other-host", "active")
		wantErr(t, "code exchange after the kill", s.CreateOAuthRequest(ctx, oauthRow(store.OAuthAccess, "late", "req-1", "u_1", "a_1")), store.ErrOAuthGrantRevoked)

		n = must[int](t, "revoke user u_1")(s.RevokeOAuthBySubject(ctx, "acme", "u_1"))
		wantEqual(t, "rows of u_1 still live", n, 2)
		wantState(t, s, store.OAuthAccess, "at2", "gone")
		wantState(t, s, store.OAuthRefresh, "rt2", "revoked")
		wantState(t, s, store.OAuthAccess, "at3", "active")
		wantState(t, s, store.OAuthRefresh, "rt3", "active")
		wantState(t, s, store.OAuthRefresh, "rt-other-host", "active")

		_, err := s.RevokeOAuthBySubject(ctx, "acme", "")
		wantErr(t, "revoke by empty subject", err, store.ErrInvalid)
		_, err = s.RevokeOAuthByAgent(ctx, "acme", "")
		wantErr(t, "revoke by empty agent", err, store.ErrInvalid)
	})
}

func testDeleteOAuthClientRevokesItsTokens(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		must[store.OAuthClient](t, "create client")(s.CreateOAuthClient(ctx, publicClient("acme", "vscode")))
		other := oauthRow(store.OAuthRefresh, "rt-vscode", "req-2", "u_1", "a_2")
		other.ClientID = "vscode"
		createRows(t, s,
			oauthRow(store.OAuthAccess, "at1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt1", "req-1", "u_1", "a_1"),
			other,
		)
		noErr(t, "delete client", s.DeleteOAuthClient(ctx, "acme", "cursor"))
		wantState(t, s, store.OAuthAccess, "at1", "gone")
		wantState(t, s, store.OAuthRefresh, "rt1", "revoked")
		wantState(t, s, store.OAuthRefresh, "rt-vscode", "active")

		// Registered again under the same id (a CIMD URL is): the old grant stays revoked.
		must[store.OAuthClient](t, "re-create client")(s.CreateOAuthClient(ctx, publicClient("acme", "cursor")))
		wantState(t, s, store.OAuthRefresh, "rt1", "revoked")
		wantErr(t, "new token in the old grant", s.CreateOAuthRequest(ctx, oauthRow(store.OAuthAccess, "at9", "req-1", "u_1", "a_1")), store.ErrOAuthGrantRevoked)
	})
}

func testPruneOAuthRequests(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		cut := ms(1_700_000_000, 0)
		expired := oauthRow(store.OAuthAccess, "expired", "req-1", "u_1", "a_1")
		expired.ExpiresAt = cut.Add(-time.Millisecond)
		rotated := oauthRow(store.OAuthRefresh, "rotated", "req-1", "u_1", "a_1")
		rotated.ExpiresAt = cut.Add(-time.Hour)
		live := oauthRow(store.OAuthRefresh, "live", "req-1", "u_1", "a_1")
		live.ExpiresAt = cut
		forever := oauthRow(store.OAuthRefresh, "forever", "req-2", "u_1", "a_1")
		forever.ExpiresAt = time.Time{}
		createRows(t, s, expired, rotated, live, forever)
		noErr(t, "rotate", s.DeactivateOAuthRequest(ctx, store.OAuthRefresh, "rotated", cut.Add(-2*time.Hour)))

		n := must[int](t, "prune")(s.PruneOAuthRequests(ctx, cut))
		wantEqual(t, "pruned", n, 2)
		wantState(t, s, store.OAuthAccess, "expired", "gone")
		wantState(t, s, store.OAuthRefresh, "rotated", "gone")
		wantState(t, s, store.OAuthRefresh, "live", "active")
		wantState(t, s, store.OAuthRefresh, "forever", "active")
	})
}

// testDeactivateOAuthRequestOnce: of concurrent uses of one code, exactly one wins.
func testDeactivateOAuthRequestOnce(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		createRows(t, s, oauthRow(store.OAuthCode, "c1", "req-1", "u_1", "a_1"))
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = s.DeactivateOAuthRequest(ctx, store.OAuthCode, "c1", ms(1_700_000_000, int64(i+1)))
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("concurrent deactivation: %v", err)
			}
		}
		wantEqual(t, "winners", wins, 1)
	})
}

// testOAuthRevocationRacesTokenCreation: a token created concurrently with the revocation of its
// grant (a refresh racing the kill switch) never survives it: either the revocation sees and
// deletes it, or its creation sees the revocation and fails.
func testOAuthRevocationRacesTokenCreation(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		for i := range 10 {
			req := fmt.Sprintf("req-%d", i)
			agent := fmt.Sprintf("a_%d", i)
			createRows(t, s, oauthRow(store.OAuthRefresh, "rt-"+req, req, "u_1", agent))
			var createErr, revokeErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				createErr = s.CreateOAuthRequest(ctx, oauthRow(store.OAuthAccess, "at-"+req, req, "u_1", agent))
			})
			wg.Go(func() { _, revokeErr = s.RevokeOAuthByAgent(ctx, "acme", agent) })
			wg.Wait()
			noErr(t, "revoke", revokeErr)
			if createErr != nil && !errors.Is(createErr, store.ErrOAuthGrantRevoked) {
				t.Fatalf("create: %v", createErr)
			}
			wantState(t, s, store.OAuthAccess, "at-"+req, "gone")
			wantState(t, s, store.OAuthRefresh, "rt-"+req, "revoked")
		}
	})
}

// testDeleteHostWithOAuth: deleting a host removes its OAuth clients and requests.
func testDeleteHostWithOAuth(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		createRows(t, s, oauthRow(store.OAuthRefresh, "rt1", "req-1", "u_1", "a_1"))
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		_, err := s.GetOAuthClient(ctx, "acme", "cursor")
		wantErr(t, "client of a deleted host", err, store.ErrNotFound)
		wantState(t, s, store.OAuthRefresh, "rt1", "gone")
	})
}

// testDeletingHumanOrKillingAgentRevokesTokens: the human's and the agent's tokens go in the
// same transaction as the deletion or the kill switch; other people's tokens stay.
func testDeletingHumanOrKillingAgentRevokesTokens(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		alice := must[store.User](t, "create alice")(s.CreateUser(ctx, store.User{Host: "acme", Email: "alice@acme.test"}))
		bob := must[store.User](t, "create bob")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@acme.test"}))
		aliceAgent := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: alice.ID}))
		bobAgent := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: bob.ID}))
		createRows(t, s,
			oauthRow(store.OAuthAccess, "at-alice", "req-a", alice.ID, aliceAgent.ID),
			oauthRow(store.OAuthRefresh, "rt-alice", "req-a", alice.ID, aliceAgent.ID),
			oauthRow(store.OAuthAccess, "at-bob", "req-b", bob.ID, bobAgent.ID),
			oauthRow(store.OAuthRefresh, "rt-bob", "req-b", bob.ID, bobAgent.ID),
		)
		must[store.Agent](t, "kill bob's agent")(s.KillAgent(ctx, "acme", bobAgent.ID))
		wantState(t, s, store.OAuthAccess, "at-bob", "gone")
		wantState(t, s, store.OAuthRefresh, "rt-bob", "revoked")
		wantState(t, s, store.OAuthRefresh, "rt-alice", "active")

		noErr(t, "delete alice", s.DeleteUser(ctx, "acme", alice.ID))
		wantState(t, s, store.OAuthAccess, "at-alice", "gone")
		wantState(t, s, store.OAuthRefresh, "rt-alice", "revoked")
	})
}
