package storetest

import (
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// accessRow is an access token's row with its jti.
func accessRow(sig, jti, requestID, subject, agent string) store.OAuthRequest {
	r := oauthRow(store.OAuthAccess, sig, requestID, subject, agent)
	r.TokenID = jti
	return r
}

func wantRevoked(t *testing.T, s store.Store, what, jti, grant string, want bool) {
	t.Helper()
	got, err := s.OAuthTokenRevoked(ctx, jti, grant)
	noErr(t, "OAuthTokenRevoked "+what, err)
	if got != want {
		t.Fatalf("%s: revoked = %v, want %v", what, got, want)
	}
}

func generation(t *testing.T, s store.Store) int64 {
	t.Helper()
	return must[int64](t, "control generation")(s.ControlGeneration(ctx))
}

// testOAuthRevocations: every way a grant or an access token is revoked is recorded for the
// proxy (which verifies JWTs without their rows) and advances the control-plane generation, so
// that replicas caching the answer see it at once; using or rotating tokens records nothing.
func testOAuthRevocations(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		createRows(t, s,
			oauthRow(store.OAuthCode, "c1", "req-1", "u_1", "a_1"),
			accessRow("at1", "jti-1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt1", "req-1", "u_1", "a_1"),
			accessRow("at2", "jti-2", "req-2", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt2", "req-2", "u_1", "a_1"),
		)
		wantEqual(t, "token id read back", getRow(t, s, store.OAuthAccess, "at1").TokenID, "jti-1")
		wantRevoked(t, s, "nothing", "", "", false)
		wantRevoked(t, s, "a live token", "jti-1", "req-1", false)

		// Use and rotation revoke nothing.
		gen := generation(t, s)
		noErr(t, "use code", s.DeactivateOAuthRequest(ctx, store.OAuthCode, "c1", time.Now()))
		noErr(t, "rotate", s.DeactivateOAuthRequest(ctx, store.OAuthRefresh, "rt1", time.Now()))
		noErr(t, "delete one access row", s.DeleteOAuthRequest(ctx, store.OAuthAccess, "at1"))
		wantRevoked(t, s, "a rotated grant", "jti-1", "req-1", false)
		wantEqual(t, "generation after use and rotation", generation(t, s), gen)

		// Deleting a grant's access tokens revokes them, not the grant.
		createRows(t, s, accessRow("at3", "jti-3", "req-1", "u_1", "a_1"))
		must[int](t, "delete access tokens")(s.DeleteOAuthRequestsByRequestID(ctx, store.OAuthAccess, "req-1"))
		wantRevoked(t, s, "a deleted access token", "jti-3", "", true)
		wantRevoked(t, s, "its grant", "", "req-1", false)
		if g := generation(t, s); g <= gen {
			t.Fatalf("generation after revoking an access token: %d, want > %d", g, gen)
		}

		// Revoking a grant's refresh tokens (or codes) revokes the grant: its every token.
		gen = generation(t, s)
		must[int](t, "revoke refresh tokens")(s.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, "req-1"))
		wantRevoked(t, s, "a revoked grant", "", "req-1", true)
		wantRevoked(t, s, "a token of a revoked grant", "jti-unknown", "req-1", true)
		wantRevoked(t, s, "another grant", "jti-2", "req-2", false)
		if g := generation(t, s); g <= gen {
			t.Fatalf("generation after revoking a grant: %d, want > %d", g, gen)
		}
		// Revoking it again changes nothing, the generation included.
		gen = generation(t, s)
		must[int](t, "revoke again")(s.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, "req-1"))
		must[int](t, "revoke codes")(s.RevokeOAuthRequestsByRequestID(ctx, store.OAuthCode, "req-1"))
		wantEqual(t, "generation after revoking again", generation(t, s), gen)
		// Deleting PKCE rows is no revocation.
		must[int](t, "delete pkce rows")(s.DeleteOAuthRequestsByRequestID(ctx, store.OAuthPKCE, "req-2"))
		wantEqual(t, "generation after deleting PKCE rows", generation(t, s), gen)

		// Killing the agent revokes its grants and their access tokens.
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "other"}))
		must[int](t, "revoke agent")(s.RevokeOAuthByAgent(ctx, "acme", "a_1"))
		wantRevoked(t, s, "the agent's grant", "", "req-2", true)
		wantRevoked(t, s, "the agent's access token", "jti-2", "", true)

		// Only access tokens have a token id.
		bad := oauthRow(store.OAuthRefresh, "rt-bad", "req-3", "u_1", "a_1")
		bad.TokenID = "jti-x"
		wantErr(t, "refresh row with a token id", s.CreateOAuthRequest(ctx, bad), store.ErrInvalid)

		// Revocations outlive every access token, then are pruned.
		must[int](t, "prune now")(s.PruneOAuthRequests(ctx, time.Now()))
		wantRevoked(t, s, "a revoked grant after pruning", "", "req-1", true)
		must[int](t, "prune later")(s.PruneOAuthRequests(ctx, time.Now().Add(store.OAuthRevocationRetention+time.Minute)))
		wantRevoked(t, s, "a revoked grant after its retention", "", "req-1", false)
	})
}

// testDeletingPrincipalsRevokesTheirGrants: deleting a human, deleting or killing an agent, and
// deleting a client record their grants as revoked.
func testDeletingPrincipalsRevokesTheirGrants(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		setUpOAuth(t, s)
		createRows(t, s,
			accessRow("at1", "jti-1", "req-1", "u_1", "a_1"),
			oauthRow(store.OAuthRefresh, "rt1", "req-1", "u_1", "a_1"),
			accessRow("at2", "jti-2", "req-2", "u_2", "a_2"),
			oauthRow(store.OAuthRefresh, "rt2", "req-2", "u_2", "a_2"),
		)
		must[int](t, "revoke subject")(s.RevokeOAuthBySubject(ctx, "acme", "u_1"))
		wantRevoked(t, s, "the human's grant", "", "req-1", true)
		wantRevoked(t, s, "another human's grant", "", "req-2", false)
		noErr(t, "delete client", s.DeleteOAuthClient(ctx, "acme", "cursor"))
		wantRevoked(t, s, "the deleted client's grant", "", "req-2", true)
		wantRevoked(t, s, "the deleted client's access token", "jti-2", "", true)
	})
}
