// Package samlidp is a real SAML 2.0 identity provider for tests (crewjam/saml's
// IdentityProvider) on loopback: a login form with its own users and session cookie, SP
// metadata fetched from the SP's entity ID (its metadata URL), signed responses and assertions
// posted back with the HTTP-POST binding, and a hook that changes assertions before they are
// signed (an IdP that asserts the wrong audience or an expired window).
package samlidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
	crewsp "github.com/crewjam/saml/samlsp"
)

// IdP is a running identity provider.
type IdP struct {
	URL         string // base URL
	EntityID    string // its metadata URL
	SSOURL      string // single sign-on service (HTTP-Redirect and HTTP-POST)
	Certificate *x509.Certificate
	// CertificatePEM is the signing certificate, as an admin pastes it.
	CertificatePEM string

	idp *saml.IdentityProvider

	mu       sync.Mutex
	users    map[string]user   // username → user
	sessions map[string]string // session cookie → username
	tamper   func(*saml.Assertion)
}

type user struct{ password, email string }

const sessionCookie = "idp_session"

// Start runs an IdP until t ends.
func Start(t testing.TB) *IdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &IdP{
		Certificate:    cert,
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		users:          map[string]user{},
		sessions:       map[string]string{},
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	p.URL = srv.URL
	p.EntityID = srv.URL + "/metadata"
	p.SSOURL = srv.URL + "/sso"
	p.idp = &saml.IdentityProvider{
		Key:                     key,
		Certificate:             cert,
		MetadataURL:             *base.JoinPath("metadata"),
		SSOURL:                  *base.JoinPath("sso"),
		SessionProvider:         p,
		ServiceProviderProvider: p,
		AssertionMaker:          p,
	}
	mux.HandleFunc("GET /metadata", p.idp.ServeMetadata)
	mux.HandleFunc("/sso", p.idp.ServeSSO)
	mux.HandleFunc("POST /login", p.login)
	// An IdP-initiated sign-in: an unsolicited response to the SP named by ?sp=.
	mux.HandleFunc("GET /initiate", func(w http.ResponseWriter, r *http.Request) {
		p.idp.ServeIDPInitiated(w, r, r.URL.Query().Get("sp"), "")
	})
	return p
}

// AddUser adds a person who can sign in with username and password; the assertion's email
// attribute (mail) is email, its NameID the username.
func (p *IdP) AddUser(username, password, email string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[username] = user{password: password, email: email}
}

// Tamper makes the IdP change every assertion with f before signing it (nil: no change).
func (p *IdP) Tamper(f func(*saml.Assertion)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = f
}

// Metadata is the IdP's metadata document.
func (p *IdP) Metadata() string {
	b, err := xml.MarshalIndent(p.idp.Metadata(), "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// GetServiceProvider fetches the SP's metadata from its entity ID, which trustgate makes its
// metadata URL.
func (p *IdP) GetServiceProvider(r *http.Request, id string) (*saml.EntityDescriptor, error) {
	resp, err := http.Get(id)
	if err != nil {
		return nil, os.ErrNotExist
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, os.ErrNotExist
	}
	return crewsp.ParseMetadata(body)
}

// GetSession is the IdP's sign-in: a person with the IdP's session cookie is signed in;
// anyone else gets the login form, which comes back to the same request.
func (p *IdP) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	p.mu.Lock()
	var name string
	if c, err := r.Cookie(sessionCookie); err == nil {
		name = p.sessions[c.Value]
	}
	u, ok := p.users[name]
	p.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Test IdP sign-in</title>`+
			`<form method="post" action="/login"><input type="hidden" name="back" value="%s">`+
			`<label>Username <input name="username"></label><label>Password <input type="password" name="password"></label>`+
			`<button>Sign in</button></form>`, html.EscapeString(r.URL.RequestURI()))
		return nil
	}
	return &saml.Session{
		ID: "s-" + name, CreateTime: time.Now(), ExpireTime: time.Now().Add(time.Hour), Index: "1",
		NameID: name, UserName: name, UserEmail: u.email,
	}
}

func (p *IdP) login(w http.ResponseWriter, r *http.Request) {
	name, pass, back := r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("back")
	p.mu.Lock()
	u, ok := p.users[name]
	ok = ok && u.password == pass
	var sid string
	if ok {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		sid = hex.EncodeToString(b)
		p.sessions[sid] = name
	}
	p.mu.Unlock()
	if !ok || !strings.HasPrefix(back, "/sso?") {
		http.Error(w, "wrong username or password", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// MakeAssertion makes the default assertion, then lets the test's Tamper change it.
func (p *IdP) MakeAssertion(req *saml.IdpAuthnRequest, s *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, s); err != nil {
		return err
	}
	p.mu.Lock()
	f := p.tamper
	p.mu.Unlock()
	if f != nil {
		f(req.Assertion)
	}
	return nil
}

// InitiateURL is where a signed-in person starts an IdP-initiated (unsolicited) sign-in at
// the SP whose entity ID is spEntityID.
func (p *IdP) InitiateURL(spEntityID string) string {
	return p.URL + "/initiate?sp=" + url.QueryEscape(spEntityID)
}

// Posted is the form the IdP's answer page posts to the SP (HTTP-POST binding).
type Posted struct {
	Action       string
	SAMLResponse string // base64, as posted
	RelayState   string
}

var (
	actionRE   = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	responseRE = regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`)
	relayRE    = regexp.MustCompile(`name="RelayState" value="([^"]*)"`)
)

// SignIn plays the person's browser at the IdP: it opens authURL (where the SP sent the
// browser), signs in with username and password on the login form, and returns the form the
// IdP's answer page posts to the SP. client keeps the IdP's cookies (a cookie jar).
func (p *IdP) SignIn(t testing.TB, client *http.Client, authURL, username, password string) Posted {
	t.Helper()
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `action="/login"`) {
		back := regexp.MustCompile(`name="back" value="([^"]*)"`).FindStringSubmatch(string(body))
		if back == nil {
			t.Fatalf("IdP login form without its request: %s", body)
		}
		resp, err = client.PostForm(p.URL+"/login", url.Values{"username": {username}, "password": {password}, "back": {html.UnescapeString(back[1])}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	a, r := actionRE.FindStringSubmatch(string(body)), responseRE.FindStringSubmatch(string(body))
	if resp.StatusCode != http.StatusOK || a == nil || r == nil {
		t.Fatalf("IdP answered %d without a response form: %s", resp.StatusCode, body)
	}
	out := Posted{Action: html.UnescapeString(a[1]), SAMLResponse: html.UnescapeString(r[1])}
	if m := relayRE.FindStringSubmatch(string(body)); m != nil {
		out.RelayState = html.UnescapeString(m[1])
	}
	return out
}
