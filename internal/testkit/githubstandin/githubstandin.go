// Package githubstandin is a local server that speaks GitHub's documented OAuth app flow and
// the REST API calls a sign-in needs, for tests (GitHub itself cannot be reached from them):
// GET /login/oauth/authorize (the person already signed in at GitHub approves at once),
// POST /login/oauth/access_token (client secret, single-use code, redirect URI and PKCE
// S256 checked; JSON answer with Accept: application/json, form-encoded otherwise), and with the
// access token GET /user and GET /user/emails.
package githubstandin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Email is one address of the account, as /user/emails lists it.
type Email struct {
	Email      string  `json:"email"`
	Primary    bool    `json:"primary"`
	Verified   bool    `json:"verified"`
	Visibility *string `json:"visibility"`
}

// Account is the person signed in at the stand-in.
type Account struct {
	ID     int64
	Login  string
	Emails []Email
}

// Server is a running stand-in.
type Server struct {
	URL string // serves /login/oauth/… and the API (its API URL is URL too)

	clientID, secret string
	mu               sync.Mutex
	account          Account
	codes            map[string]grant
	tokens           map[string]bool
}

type grant struct {
	redirectURI, challenge string
}

// Start runs a stand-in with one OAuth app until the test ends.
func Start(t testing.TB, clientID, secret string, account Account) *Server {
	s := &Server{clientID: clientID, secret: secret, account: account, codes: map[string]grant{}, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	mux.HandleFunc("GET /user", s.api(func() any {
		return map[string]any{"id": s.account.ID, "login": s.account.Login, "type": "User"}
	}))
	mux.HandleFunc("GET /user/emails", s.api(func() any { return s.account.Emails }))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetAccount changes who is signed in at the stand-in.
func (s *Server) SetAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account = a
}

// SignIn plays the browser of the person signed in at the stand-in: it opens authURL (where
// the app sent the browser) and returns where the stand-in sends the browser back, the app's
// callback with its code and state.
func (s *Server) SignIn(t testing.TB, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || back == "" {
		t.Fatalf("the stand-in answered the authorization request %s with %d", authURL, resp.StatusCode)
	}
	return back
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("client_id") != s.clientID || err != nil || redirect.Scheme == "" {
		http.Error(w, "The redirect_uri MUST match the registered callback URL for this application.", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "this stand-in requires PKCE S256", http.StatusBadRequest)
		return
	}
	code := random()
	s.mu.Lock()
	s.codes[code] = grant{redirectURI: redirect.String(), challenge: q.Get("code_challenge")}
	s.mu.Unlock()
	v := redirect.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	redirect.RawQuery = v.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer := func(v url.Values) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			m := map[string]string{}
			for k := range v {
				m[k] = v.Get(k)
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte(v.Encode()))
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	if id != s.clientID || secret != s.secret {
		answer(url.Values{"error": {"incorrect_client_credentials"}, "error_description": {"The client_id and/or client_secret passed are incorrect."}})
		return
	}
	code := r.PostForm.Get("code")
	s.mu.Lock()
	g, ok := s.codes[code]
	delete(s.codes, code)
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || g.redirectURI != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		answer(url.Values{"error": {"bad_verification_code"}, "error_description": {"The code passed is incorrect or expired."}})
		return
	}
	tok := "gho_" + random()
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	answer(url.Values{"access_token": {tok}, "token_type": {"bearer"}, "scope": {"read:user,user:email"}})
}

func (s *Server) api(body func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			tok, ok = strings.CutPrefix(auth, "token ")
		}
		s.mu.Lock()
		valid := ok && s.tokens[tok]
		var v any
		if valid {
			v = body()
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if !valid {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Requires authentication","documentation_url":"https://docs.github.com/rest"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
}

func random() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
