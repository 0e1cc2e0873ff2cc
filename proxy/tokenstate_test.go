package proxy_test

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
)

// levelLog records the level of every log record.
type levelLog struct {
	mu     sync.Mutex
	levels []slog.Level
	msgs   []string
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.levels = append(l.levels, r.Level)
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

func (l *levelLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, lv := range l.levels {
		if lv >= slog.LevelError {
			out = append(out, l.msgs[i])
		}
	}
	return out
}

// otherSignatureForm is tok with its ES256 signature (r, s) replaced by (r, n−s).
func otherSignatureForm(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature of %d bytes: %v", len(sig), err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	out := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	if out == tok {
		t.Fatal("the other form is the same token")
	}
	return out
}

// TestTokenOfRemovedPrincipalIs401: a still-valid access token whose grant was revoked, or
// whose human or agent was deleted or killed, is answered 401 invalid_token (the client signs
// in again), not a store failure; it reaches no upstream and logs no error.
func TestTokenOfRemovedPrincipalIs401(t *testing.T) {
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	ctx := context.Background()
	for name, remove := range map[string]func(e *env) string{
		"human deleted, token of no grant": func(e *env) string {
			if err := e.st.DeleteUser(ctx, host, e.userID); err != nil {
				t.Fatal(err)
			}
			return "this app was removed by an administrator"
		},
		"human deleted": func(e *env) string {
			if err := e.st.DeleteUser(ctx, host, e.userID); err != nil {
				t.Fatal(err)
			}
			return "this app was removed by an administrator"
		},
		"agent deleted": func(e *env) string {
			if err := e.st.DeleteAgent(ctx, host, e.agentID); err != nil {
				t.Fatal(err)
			}
			return "this app was removed by an administrator"
		},
		"agent killed": func(e *env) string {
			if _, err := e.st.KillAgent(ctx, host, e.agentID); err != nil {
				t.Fatal(err)
			}
			return "this app was disabled by an administrator. Reconnecting will not help until an administrator enables it again"
		},
		"grant revoked": func(e *env) string {
			if _, err := e.st.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, "grant-1"); err != nil {
				t.Fatal(err)
			}
			return "the access token was revoked"
		},
		"access token revoked": func(e *env) string {
			if _, err := e.st.DeleteOAuthRequestsByRequestID(ctx, store.OAuthAccess, "grant-1"); err != nil {
				t.Fatal(err)
			}
			return "the access token was revoked"
		},
	} {
		t.Run(name, func(t *testing.T) {
			logs := &levelLog{}
			e := newEnv(t, func(c *proxy.Config) { c.Logger = slog.New(logs) })
			// The grant's rows, as the OAuth server stores them.
			if _, err := e.st.CreateOAuthClient(ctx, store.OAuthClient{Host: host, ID: "client-1", Kind: store.OAuthClientDCR,
				RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
				t.Fatal(err)
			}
			row := store.OAuthRequest{Kind: store.OAuthRefresh, Signature: "rt-1", RequestID: "grant-1", Host: host,
				ClientID: "client-1", Subject: e.userID, AgentID: e.agentID, Data: "{}"}
			if err := e.st.CreateOAuthRequest(ctx, row); err != nil {
				t.Fatal(err)
			}
			row.Kind, row.Signature, row.TokenID = store.OAuthAccess, "at-1", "jti-1"
			if err := e.st.CreateOAuthRequest(ctx, row); err != nil {
				t.Fatal(err)
			}
			tok := e.token(e.endpoint(""), func(c *accesstoken.AccessClaims) {
				if !strings.Contains(name, "no grant") {
					c.JTI = "jti-1"
					c.Grant = "grant-1"
				}
			})
			e.post(tok, "", ping, 200)
			// The same token with its ECDSA signature in the other form, (r, n−s), verifies too
			// (go-jose accepts both); revocation must not depend on the signature's bytes.
			other := otherSignatureForm(t, tok)
			e.post(other, "", ping, 200)

			want := remove(e)
			e.sync()
			before := e.upCalls.Load()
			h, body := e.post(tok, "", ping, 401)
			got := h.Get("WWW-Authenticate")
			if !strings.Contains(got, `error="invalid_token"`) || !strings.Contains(got, "resource_metadata=") {
				t.Errorf("WWW-Authenticate %q, want invalid_token with the resource metadata", got)
			}
			if !strings.Contains(got, want) {
				t.Errorf("WWW-Authenticate %q, want the reason %q", got, want)
			}
			if h, _ := e.post(other, "", ping, 401); !strings.Contains(h.Get("WWW-Authenticate"), want) {
				t.Errorf("the other signature form: WWW-Authenticate %q, want %q", h.Get("WWW-Authenticate"), want)
			}
			if strings.Contains(string(body), "could not read its configuration") {
				t.Errorf("answered as a store failure: %s", body)
			}
			if e.upCalls.Load() != before {
				t.Error("the refused call reached the upstream")
			}
			if errs := logs.errors(); len(errs) > 0 {
				t.Errorf("logged at ERROR: %q", errs)
			}
		})
	}
}
