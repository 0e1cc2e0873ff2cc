package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/gateway"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// SetupOptions configure an Env.
type SetupOptions struct {
	// Database is the gateway's store (empty: the embedded default, SQLite in a temporary
	// directory with the in-memory SpiceDB). A PostgreSQL database should be a scratch one:
	// the benchmark leaves its host there.
	Database string
	// ExtraTools are added to the upstream's three (for the tools/list mode).
	ExtraTools int
	// UpstreamSSE makes the upstream answer each POST with an SSE stream instead of JSON.
	UpstreamSSE bool
	Logger      *slog.Logger
}

// Env is a running benchmark setup: an upstream MCP server, a gateway in process with a host,
// the server imported, a human granted high on it, and an agent that human consented at medium
// through the real OAuth flow.
type Env struct {
	Upstream *Upstream
	Gateway  *gateway.Gateway
	// Resource is the agent's MCP endpoint through the gateway; Token its access token.
	Resource string
	Token    string

	dataDir string
	stop    context.CancelFunc
	done    chan error
}

const (
	benchEmail    = "bench@bench.test"
	benchPassword = "benchmark password 1"
	serverKey     = "up"
)

// Setup starts everything. Close releases it.
func Setup(ctx context.Context, opts SetupOptions) (_ *Env, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Env{}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	if e.Upstream, err = StartUpstream(opts.ExtraTools, opts.UpstreamSSE); err != nil {
		return nil, err
	}
	if e.dataDir, err = os.MkdirTemp("", "trustgate-bench-"); err != nil {
		return nil, fmt.Errorf("temporary data directory: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g, err := gateway.New(ctx, gateway.Config{Listen: addr, DataDir: e.dataDir, DatabaseURL: opts.Database, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("start the gateway: %w", err)
	}
	e.Gateway = g
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stop, e.done = stop, make(chan error, 1)
	go func() { e.done <- g.Run(runCtx) }()
	base := "http://" + addr

	// The admin: a global API token straight in the store, then the admin API.
	secret, hash, prefix := admin.NewTokenSecret()
	if _, err := g.Store().CreateAPIToken(ctx, store.APIToken{Name: "bench", Hash: hash, Prefix: prefix}); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	ac, err := sdk.NewClient(base, secret)
	if err != nil {
		return nil, err
	}
	host := "bench-" + randomHex(4) // unique, so that a shared PostgreSQL database can be reused
	if _, err := ac.CreateHost(ctx, sdk.HostCreate{Key: host, Exact: true}); err != nil {
		return nil, fmt.Errorf("create host: %w", err)
	}
	if _, err := ac.ImportServer(ctx, host, sdk.ServerImport{URL: e.Upstream.URL, Key: serverKey}); err != nil {
		return nil, fmt.Errorf("import the upstream server: %w", err)
	}
	human, err := ac.CreateHuman(ctx, host, sdk.HumanCreate{Email: benchEmail, Invite: true})
	if err != nil {
		return nil, fmt.Errorf("add the human: %w", err)
	}
	if human.Invitation == nil {
		return nil, errors.New("add the human: no invitation link in the answer")
	}
	if err := acceptInvitation(ctx, base, human.Invitation.URL); err != nil {
		return nil, fmt.Errorf("accept the invitation: %w", err)
	}
	if _, err := ac.SetGrant(ctx, host, benchEmail, serverKey, "high"); err != nil {
		return nil, fmt.Errorf("grant the human: %w", err)
	}
	e.Resource = base + "/h/" + host + "/mcp/" + serverKey
	if e.Token, err = consent(ctx, base, base+"/h/"+host, e.Resource); err != nil {
		return nil, fmt.Errorf("OAuth flow: %w", err)
	}
	return e, nil
}

// Close stops the gateway and the upstream and removes the data directory.
func (e *Env) Close() error {
	var err error
	if e.stop != nil {
		e.stop()
		err = <-e.done
	}
	if e.Upstream != nil {
		err = errors.Join(err, e.Upstream.Close())
	}
	if e.dataDir != "" {
		err = errors.Join(err, os.RemoveAll(e.dataDir))
	}
	return err
}

// acceptInvitation opens the human's invitation link and chooses the password.
func acceptInvitation(ctx context.Context, origin, link string) error {
	b := newBrowser(origin)
	p, err := b.get(ctx, link)
	if err != nil {
		return err
	}
	if p, err = b.submit(ctx, p, map[string]string{"password": benchPassword, "password_confirm": benchPassword}); err != nil {
		return err
	}
	if p.status != http.StatusOK || !strings.Contains(p.body, "Your password is set") {
		return fmt.Errorf("HTTP %d", p.status)
	}
	return nil
}

// consent runs the OAuth flow an MCP client and its human go through: dynamic registration,
// authorization with PKCE, sign-in, consent at medium, and the token exchange.
func consent(ctx context.Context, origin, issuer, resource string) (string, error) {
	redirect := "http://127.0.0.1:9/callback"
	reg, _ := json.Marshal(map[string]any{"client_name": "trustgate bench", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	var client struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &client) != nil || client.ClientID == "" {
		return "", fmt.Errorf("register: HTTP %d: %s", resp.StatusCode, body)
	}
	conf := &oauth2.Config{ClientID: client.ClientID, RedirectURL: redirect, Scopes: []string{"mcp"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	state := randomHex(8)
	b := newBrowser(origin)
	page, err := b.get(ctx, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	if err != nil {
		return "", err
	}
	if page, err = b.submit(ctx, page, map[string]string{"email": benchEmail, "password": benchPassword}); err != nil {
		return "", fmt.Errorf("sign-in: %w", err)
	}
	if !strings.Contains(page.body, `name="trust_level"`) {
		return "", fmt.Errorf("sign-in: no consent form (HTTP %d)", page.status)
	}
	if page, err = b.submit(ctx, page, map[string]string{"trust_level": "medium", "decision": "allow"}); err != nil {
		return "", fmt.Errorf("consent: %w", err)
	}
	if page.loc == nil || page.loc.Query().Get("code") == "" || page.loc.Query().Get("state") != state {
		return "", fmt.Errorf("consent: no authorization code (HTTP %d)", page.status)
	}
	tok, err := conf.Exchange(ctx, page.loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	return tok.AccessToken, nil
}

// browser keeps cookies and follows redirects while they stay on the gateway's origin.
type browser struct{ client *http.Client }

type page struct {
	status int
	body   string
	loc    *url.URL // set when redirected to another site
}

func newBrowser(origin string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), origin) {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

func (b *browser) do(req *http.Request) (page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := page{status: resp.StatusCode, body: string(body)}
	if resp.StatusCode/100 == 3 {
		p.loc, _ = url.Parse(resp.Header.Get("Location"))
	}
	return p, err
}

func (b *browser) get(ctx context.Context, u string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	return b.do(req)
}

var (
	formActionRE  = regexp.MustCompile(`<form method="post"(?: action="([^"]*)")?>`)
	hiddenFieldRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// submit posts the page's form with its hidden fields and fields.
func (b *browser) submit(ctx context.Context, p page, fields map[string]string) (page, error) {
	m := formActionRE.FindStringSubmatch(p.body)
	if m == nil {
		return page{}, fmt.Errorf("no form in the page (HTTP %d)", p.status)
	}
	form := url.Values{}
	for _, h := range hiddenFieldRE.FindAllStringSubmatch(p.body, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, v := range fields {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, html.UnescapeString(m[1]), strings.NewReader(form.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
