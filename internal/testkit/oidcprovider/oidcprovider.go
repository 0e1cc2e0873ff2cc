// Package oidcprovider runs a real OpenID provider on loopback for tests: zitadel/oidc's OP
// (discovery, authorization with PKCE, token endpoint, JWKS, its sign-in page) on its in-memory
// storage, with the people and clients a test names. A test may rewrite the claims of the ID
// tokens it issues (they are signed again with the provider's own key) to play a provider
// that vouches for the wrong thing, and may serve it the way Microsoft's identity platform
// does: a tenant's issuer "<authority>/<tenant id>/v2.0", the tid claim, and the multi-tenant
// discovery documents of "common" and "organizations".
package oidcprovider

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is a person who can sign in at the provider (username and password on its page).
type User struct {
	ID, Username, Password string
	Email                  string
	EmailVerified          bool
}

// Client is a relying party registered at the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Options configure the provider.
type Options struct {
	Users   []User
	Clients []Client
	// MicrosoftTenant, when set (a GUID), makes the issuer "<URL>/<tenant>/v2.0", adds the
	// tid claim to every ID token and serves "<URL>/common/v2.0" and "<URL>/organizations/v2.0"
	// discovery documents whose issuer is "<URL>/{tenantid}/v2.0", as Microsoft does.
	MicrosoftTenant string
}

// Provider is a running OpenID provider.
type Provider struct {
	// URL is the server's origin; Issuer the issuer (URL, or the tenant's under it).
	URL, Issuer string

	key     *rsa.PrivateKey
	kid     string
	tenant  string
	mu      sync.Mutex
	rewrite func(claims map[string]any)
	badSig  bool
}

// Start runs the provider until the test ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{key: key, kid: "test-key-1", tenant: opts.MicrosoftTenant}
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	p.Issuer = srv.URL
	prefix := ""
	if p.tenant != "" {
		prefix = "/" + p.tenant + "/v2.0"
		p.Issuer = srv.URL + prefix
	}
	users := userStore{}
	for _, u := range opts.Users {
		u := u
		users[u.ID] = &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, Email: u.Email,
			EmailVerified: u.EmailVerified, FirstName: u.Username, LastName: "Test", PreferredLanguage: language.English}
	}
	clients := map[string]*storage.Client{}
	for _, c := range opts.Clients {
		clients[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	st := &opStorage{Storage: storage.NewStorageWithClients(users, clients), p: p}
	router := exampleop.SetupServer(p.Issuer, st, slog.New(slog.DiscardHandler), false)
	mux := http.NewServeMux()
	if prefix != "" {
		mux.Handle(prefix+"/", http.StripPrefix(prefix, router))
		for _, multi := range []string{"common", "organizations"} {
			mux.HandleFunc("GET /"+multi+"/v2.0/.well-known/openid-configuration", p.multiTenantDiscovery(router))
		}
	}
	mux.Handle("/", router)
	handler = p.tokens(mux)
	return p
}

// Rewrite makes every ID token issued from now on carry the claims f leaves (nil: as issued).
// The token is signed again with the provider's key, so its signature stays valid.
func (p *Provider) Rewrite(f func(claims map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite = f
}

// BadSignature makes every ID token issued from now on signed by another key under the
// provider's key id (true), or by its own again (false).
func (p *Provider) BadSignature(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.badSig = on
}

// SignIn plays the person in browser: it opens authURL at the provider, signs in on its page
// with username and password and returns the URL the provider sent the browser back to (the
// relying party's redirect URI with code and state, or error). The browser follows redirects
// within the provider only.
func (p *Provider) SignIn(t testing.TB, browser *http.Client, authURL, username, password string) *url.URL {
	t.Helper()
	c := *browser
	if c.Jar == nil {
		c.Jar, _ = cookiejar.New(nil)
	}
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), p.URL+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("open the provider's sign-in page: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		loc, _ := resp.Location()
		return loc // the provider answered at once (an error, or a session)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("provider's sign-in page: %d %s", resp.StatusCode, body)
	}
	id := hiddenID(string(body))
	if id == "" {
		t.Fatalf("no sign-in form at the provider: %s", body)
	}
	resp, err = c.PostForm(p.URL+"/login/username", url.Values{"id": {id}, "username": {username}, "password": {password}})
	if err != nil {
		t.Fatalf("sign in at the provider: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		t.Fatalf("sign-in at the provider did not return to the relying party: %d %s", resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func hiddenID(page string) string {
	const marker = `name="id" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	rest := page[i+len(marker):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// multiTenantDiscovery serves the tenant's discovery document with Microsoft's multi-tenant
// issuer template.
func (p *Provider) multiTenantDiscovery(router http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(r.Context(), "GET", p.Issuer+"/.well-known/openid-configuration", nil)
		req.URL.Path = "/.well-known/openid-configuration"
		router.ServeHTTP(rec, req)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		doc["issuer"] = p.URL + "/{tenantid}/v2.0"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}
}

// tokens rewrites the ID token of token responses as Rewrite and BadSignature say, and adds
// the tid claim of a Microsoft tenant.
func (p *Provider) tokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/oauth/token") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var resp map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &resp) == nil {
			if raw, ok := resp["id_token"].(string); ok {
				if signed, err := p.reissue(raw); err == nil {
					resp["id_token"] = signed
					body, _ = json.Marshal(resp)
				} else {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

func (p *Provider) reissue(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", io.ErrUnexpectedEOF
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return "", err
	}
	p.mu.Lock()
	rewrite, bad := p.rewrite, p.badSig
	p.mu.Unlock()
	if p.tenant != "" {
		claims["tid"] = p.tenant
	}
	if rewrite != nil {
		rewrite(claims)
	}
	key := p.key
	if bad {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return "", err
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", p.kid))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(b)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// opStorage is zitadel's example storage with the test's signing key, and clients whose ID
// tokens carry the person's claims (email, email_verified) as well as the access token.
type opStorage struct {
	*storage.Storage
	p *Provider
}

type signingKey struct{ p *Provider }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.p.key }
func (k signingKey) ID() string                                  { return k.p.kid }

type publicKey struct{ p *Provider }

func (k publicKey) ID() string                         { return k.p.kid }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.p.key.PublicKey }

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.p}, nil
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.p}}, nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return userinfoInIDToken{c}, nil
}

// userinfoInIDToken puts the userinfo claims in the ID token of the code flow.
type userinfoInIDToken struct{ op.Client }

func (userinfoInIDToken) IDTokenUserinfoClaimsAssertion() bool { return true }

// userStore is the provider's people by id.
type userStore map[string]*storage.User

func (u userStore) GetUserByID(id string) *storage.User { return u[id] }

func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}

func (u userStore) ExampleClientID() string { return "" }

var _ = oidc.ScopeOpenID
