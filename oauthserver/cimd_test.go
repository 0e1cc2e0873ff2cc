package oauthserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
)

func TestIsClientIDMetadataURL(t *testing.T) {
	valid := []string{
		"https://app.example.com/client.json",
		"https://app.example.com/oauth/client-metadata.json",
		"https://app.example.com/clients/cursor",
		"https://app.example.com/c/",
		"https://app.example.com:8443/client.json",
		"https://app.example.com/client.json?v=2",
		"https://127.0.0.1:4443/client.json", // syntactically fine; the fetch's SSRF guard refuses it
	}
	for _, s := range valid {
		if !IsClientIDMetadataURL(s) {
			t.Errorf("IsClientIDMetadataURL(%q) = false, want true", s)
		}
	}
	invalid := []string{
		"",
		"tgc_abcdefghijklmnopqrstuvwxyz",
		"my-client",
		"http://app.example.com/client.json",
		"HTTPS://app.example.com/client.json",
		"https://app.example.com",
		"https://app.example.com/",
		"https://app.example.com?x=1",
		"https://app.example.com/client.json#frag",
		"https://app.example.com/client.json#",
		"https://user@app.example.com/client.json",
		"https://user:pw@app.example.com/client.json",
		"https://app.example.com/./client.json",
		"https://app.example.com/a/../client.json",
		"https://app.example.com/a/..",
		"https://app.example.com/a/.",
		"https://app.example.com/%2e%2e/client.json",
		"https://app.example.com/%2E/client.json",
		"https://app.example.com/.%2e/client.json",
		"https:///client.json",
		"https://app.example.com:/client.json",
		"https://app.example.com/client json",
		"https://app.example.com/client.json\n",
		"https://app.example.com/caf\u00e9",
		"https://app.example.com\\@evil.com/client.json",
		"https://app.example.com/" + strings.Repeat("a", 2048),
	}
	for _, s := range invalid {
		if IsClientIDMetadataURL(s) {
			t.Errorf("IsClientIDMetadataURL(%q) = true, want false", s)
		}
	}
}

// cimdServer is a TLS test server serving Client ID Metadata Documents by path.
type cimdServer struct {
	*httptest.Server
	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hits     atomic.Int32
	accept   atomic.Value // the last Accept header
}

func newCIMDServer(t *testing.T) *cimdServer {
	s := &cimdServer{handlers: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.accept.Store(r.Header.Get("Accept"))
		s.mu.Lock()
		h := s.handlers[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve registers a handler at path and returns the path's URL (the client_id).
func (s *cimdServer) serve(path string, h http.HandlerFunc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[path] = h
	return s.URL + path
}

// serveDoc serves doc (with "client_id" set to the URL unless doc sets it) as JSON.
func (s *cimdServer) serveDoc(t *testing.T, path string, doc map[string]any, header http.Header) string {
	u := s.URL + path
	if _, ok := doc["client_id"]; !ok {
		doc["client_id"] = u
	}
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return s.serve(path, func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// client is an SSRF client that may reach the loopback test server and trusts its certificate.
func (s *cimdServer) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return ssrf.NewClient(ssrf.Options{AllowPrivate: true, TLSConfig: &tls.Config{RootCAs: pool}})
}

func validDoc() map[string]any {
	return map[string]any{
		"client_name":                "Example MCP Client",
		"client_uri":                 "https://app.example.com",
		"logo_uri":                   "https://app.example.com/logo.png",
		"redirect_uris":              []string{"http://127.0.0.1:3000/callback", "http://localhost:3000/callback"},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
}

func TestFetchClientMetadataHappyPath(t *testing.T) {
	srv := newCIMDServer(t)
	id := srv.serveDoc(t, "/oauth/client.json", validDoc(), nil)
	before := time.Now()
	md, err := FetchClientMetadata(context.Background(), srv.client(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientMetadata{
		ClientID:                id,
		ClientName:              "Example MCP Client",
		ClientURI:               "https://app.example.com",
		LogoURI:                 "https://app.example.com/logo.png",
		RedirectURIs:            []string{"http://127.0.0.1:3000/callback", "http://localhost:3000/callback"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "none",
	}
	got := *md
	got.Raw, got.FetchedAt, got.ExpiresAt = nil, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if md.FetchedAt.Before(before) || md.FetchedAt.After(time.Now()) {
		t.Errorf("FetchedAt %v", md.FetchedAt)
	}
	if d := md.ExpiresAt.Sub(md.FetchedAt); d != time.Hour {
		t.Errorf("default cache lifetime %v, want 1h", d)
	}
	var raw map[string]any
	if err := json.Unmarshal(md.Raw, &raw); err != nil || raw["client_id"] != id {
		t.Errorf("Raw %s: %v", md.Raw, err)
	}
	if a, _ := srv.accept.Load().(string); a != "application/json" {
		t.Errorf("Accept %q, want application/json", a)
	}
}

func TestFetchClientMetadataMinimalDocument(t *testing.T) {
	// Only client_id and redirect_uris: auth method none, default grant and response types.
	srv := newCIMDServer(t)
	id := srv.serveDoc(t, "/min.json", map[string]any{"redirect_uris": []string{"https://app.example.com/cb"}}, nil)
	md, err := FetchClientMetadata(context.Background(), srv.client(), id)
	if err != nil {
		t.Fatal(err)
	}
	if md.TokenEndpointAuthMethod != "none" || !reflect.DeepEqual(md.GrantTypes, []string{"authorization_code"}) ||
		!reflect.DeepEqual(md.ResponseTypes, []string{"code"}) || md.ClientName != "" {
		t.Fatalf("%+v", md)
	}
}

func TestFetchClientMetadataInvalidDocuments(t *testing.T) {
	srv := newCIMDServer(t)
	with := func(k string, v any) map[string]any {
		d := validDoc()
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
		return d
	}
	cases := []struct {
		name string
		doc  map[string]any
		want string // a fragment of the error
	}{
		{"client_id of another URL", with("client_id", "https://app.example.com/client.json"), "is not its URL"},
		{"client_id with trailing slash", nil, "is not its URL"}, // filled below
		{"client_id missing", with("client_id", ""), "no client_id"},
		{"client_id not a string", with("client_id", 42), "client_id must be a string"},
		{"no redirect_uris", with("redirect_uris", nil), "redirect_uris is required"},
		{"empty redirect_uris", with("redirect_uris", []string{}), "redirect_uris is required"},
		{"http redirect URI", with("redirect_uris", []string{"http://evil.example.com/cb"}), "redirect_uris[0]"},
		{"javascript redirect URI", with("redirect_uris", []string{"https://app.example.com/cb", "javascript:alert(1)"}), "redirect_uris[1]"},
		{"fragment redirect URI", with("redirect_uris", []string{"https://app.example.com/cb#x"}), "fragment"},
		{"client_secret_basic", with("token_endpoint_auth_method", "client_secret_basic"), "cannot carry a shared secret"},
		{"client_secret_post", with("token_endpoint_auth_method", "client_secret_post"), "cannot carry a shared secret"},
		{"client_secret_jwt", with("token_endpoint_auth_method", "client_secret_jwt"), "cannot carry a shared secret"},
		{"private_key_jwt", with("token_endpoint_auth_method", "private_key_jwt"), "private_key_jwt is not supported by trustgate yet"},
		{"unknown auth method", with("token_endpoint_auth_method", "tls_client_auth"), "not supported"},
		{"client_secret present", with("client_secret", "s3cr3t"), "must not contain client_secret"},
		{"client_secret_expires_at present", with("client_secret_expires_at", 0), "must not contain client_secret_expires_at"},
		{"implicit grant", with("grant_types", []string{"implicit"}), "not allowed"},
		{"token response type", with("response_types", []string{"token"}), "only code"},
		{"client_name too long", with("client_name", strings.Repeat("n", 201)), "client_name"},
		{"logo_uri http", with("logo_uri", "http://app.example.com/logo.png"), "logo_uri must be an https URL"},
		{"client_uri javascript", with("client_uri", "javascript:alert(1)"), "client_uri must be an https URL"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/doc" + string(rune('a'+i)) + ".json"
			doc := c.doc
			if doc == nil { // trailing slash variant of the URL
				doc = with("client_id", srv.URL+path+"/")
			}
			id := srv.serveDoc(t, path, doc, nil)
			md, err := FetchClientMetadata(context.Background(), srv.client(), id)
			if err == nil {
				t.Fatalf("accepted: %+v", md)
			}
			if !errors.Is(err, ErrCIMDInvalid) || errors.Is(err, ErrCIMDFetch) {
				t.Errorf("error %v does not wrap (only) ErrCIMDInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), id) {
				t.Errorf("error %q does not name the URL %s", err, id)
			}
		})
	}
}

func TestFetchClientMetadataMalformedBodies(t *testing.T) {
	srv := newCIMDServer(t)
	for name, body := range map[string]string{
		"not JSON":     "<html>hello</html>",
		"JSON array":   `[1,2]`,
		"JSON null":    `null`,
		"empty":        ``,
		"trailing":     `{"client_id":"x"} x`,
		"invalid utf8": "{\"client_id\":\"\xff\"}",
	} {
		t.Run(name, func(t *testing.T) {
			id := srv.serve("/"+strings.ReplaceAll(name, " ", "-"), func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(body))
			})
			_, err := FetchClientMetadata(context.Background(), srv.client(), id)
			if !errors.Is(err, ErrCIMDInvalid) {
				t.Fatalf("error %v, want ErrCIMDInvalid", err)
			}
		})
	}
}

func TestFetchClientMetadataSizeLimit(t *testing.T) {
	srv := newCIMDServer(t)
	// A valid document padded with an unknown field to exactly n bytes.
	docOfSize := func(path string, n int) []byte {
		d := validDoc()
		d["client_id"] = srv.URL + path
		d["padding"] = ""
		base, _ := json.Marshal(d)
		d["padding"] = strings.Repeat("p", n-len(base))
		b, _ := json.Marshal(d)
		if len(b) != n {
			t.Fatalf("document of %d bytes, want %d", len(b), n)
		}
		return b
	}
	exact := docOfSize("/exact.json", CIMDMaxBytes)
	over := docOfSize("/over.json", CIMDMaxBytes+1)
	overChunked := docOfSize("/chunked.json", 3*CIMDMaxBytes)

	idExact := srv.serve("/exact.json", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(exact) })
	idOver := srv.serve("/over.json", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(over) })
	idChunked := srv.serve("/chunked.json", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(overChunked); i += 1000 {
			_, _ = w.Write(overChunked[i:min(i+1000, len(overChunked))])
			w.(http.Flusher).Flush()
		}
	})

	if _, err := FetchClientMetadata(context.Background(), srv.client(), idExact); err != nil {
		t.Fatalf("a %d-byte document: %v", CIMDMaxBytes, err)
	}
	// A client without its own small body limit: the 5 KiB limit is FetchClientMetadata's.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	roomy := ssrf.NewClient(ssrf.Options{AllowPrivate: true, MaxBodyBytes: 1 << 20, TLSConfig: &tls.Config{RootCAs: pool}})
	for _, id := range []string{idOver, idChunked} {
		_, err := FetchClientMetadata(context.Background(), roomy, id)
		if !errors.Is(err, ErrCIMDInvalid) || !strings.Contains(err.Error(), "larger than 5120 bytes") {
			t.Errorf("%s: error %v, want ErrCIMDInvalid about the size", id, err)
		}
	}
}

func TestFetchClientMetadataNon200(t *testing.T) {
	srv := newCIMDServer(t)
	for _, status := range []int{http.StatusCreated, http.StatusNoContent, http.StatusNotModified, http.StatusNotFound, http.StatusForbidden, http.StatusInternalServerError} {
		body, _ := json.Marshal(validDoc())
		path := "/status-" + http.StatusText(status)
		path = strings.ReplaceAll(path, " ", "-")
		id := srv.serve(path, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
		_, err := FetchClientMetadata(context.Background(), srv.client(), id)
		if !errors.Is(err, ErrCIMDFetch) {
			t.Errorf("status %d: error %v, want ErrCIMDFetch", status, err)
			continue
		}
		if !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "not 200") {
			t.Errorf("status %d: error %q should name the URL and the status", status, err)
		}
	}
}

func TestFetchClientMetadataRefusesRedirects(t *testing.T) {
	srv := newCIMDServer(t)
	var targetHits atomic.Int32
	target := srv.serveDoc(t, "/real.json", validDoc(), nil)
	srv.serve("/real.json", func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		id := srv.serve("/moved-"+http.StatusText(status)[:3], func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target, status)
		})
		// Both with the SSRF client and with an ordinary client that would follow redirects.
		for name, client := range map[string]*http.Client{"ssrf": srv.client(), "ordinary": srv.Client()} {
			_, err := FetchClientMetadata(context.Background(), client, id)
			if !errors.Is(err, ErrCIMDFetch) || !strings.Contains(err.Error(), "redirects are not followed") {
				t.Errorf("%s client, status %d: error %v, want ErrCIMDFetch about redirects", name, status, err)
			}
		}
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("redirect target fetched %d times", n)
	}
	// The caller's client is not modified.
	c := srv.Client()
	_, _ = FetchClientMetadata(context.Background(), c, srv.URL+"/moved-Fou")
	if c.CheckRedirect != nil {
		t.Fatal("FetchClientMetadata modified the caller's client")
	}
}

func TestFetchClientMetadataSSRFGuard(t *testing.T) {
	srv := newCIMDServer(t)
	id := srv.serveDoc(t, "/client.json", validDoc(), nil)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	guarded := ssrf.NewClient(ssrf.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	for name, client := range map[string]*http.Client{"guarded": guarded, "default (nil)": nil} {
		_, err := FetchClientMetadata(context.Background(), client, id)
		if !errors.Is(err, ErrCIMDFetch) || !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("%s client: error %v, want ErrCIMDFetch wrapping ErrForbiddenAddress", name, err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the loopback server was reached %d times", n)
	}
}

func TestFetchClientMetadataRefusesNonMetadataURLs(t *testing.T) {
	srv := newCIMDServer(t)
	for _, id := range []string{"tgc_abc", "http://app.example.com/client.json", srv.URL + "/", srv.URL + "/x#f", strings.Replace(srv.URL, "https://", "https://u@", 1) + "/x"} {
		_, err := FetchClientMetadata(context.Background(), srv.client(), id)
		if !errors.Is(err, ErrCIMDInvalid) {
			t.Errorf("%q: error %v, want ErrCIMDInvalid", id, err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("server reached %d times for URLs that are not metadata document URLs", n)
	}
}

func TestFetchClientMetadataCacheControl(t *testing.T) {
	srv := newCIMDServer(t)
	cases := []struct {
		cacheControl []string
		want         time.Duration
	}{
		{nil, time.Hour},
		{[]string{"max-age=600"}, 10 * time.Minute},
		{[]string{"public, max-age=120"}, 2 * time.Minute},
		{[]string{"max-age=999999999"}, 24 * time.Hour},
		{[]string{"no-store"}, 0},
		{[]string{"max-age=600", "no-cache"}, 0},
	}
	for i, c := range cases {
		h := http.Header{}
		for _, v := range c.cacheControl {
			h.Add("Cache-Control", v)
		}
		id := srv.serveDoc(t, "/cc"+string(rune('a'+i))+".json", validDoc(), h)
		md, err := FetchClientMetadata(context.Background(), srv.client(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got := md.ExpiresAt.Sub(md.FetchedAt); got != c.want {
			t.Errorf("Cache-Control %q: lifetime %v, want %v", c.cacheControl, got, c.want)
		}
	}
}

func TestCIMDExpiresAt(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		cc   []string
		want time.Duration
	}{
		{nil, time.Hour},
		{[]string{""}, time.Hour},
		{[]string{"public"}, time.Hour},
		{[]string{"max-age=0"}, 0},
		{[]string{"max-age=1"}, time.Second},
		{[]string{"MAX-AGE=60"}, time.Minute},
		{[]string{`max-age="60"`}, time.Minute},
		{[]string{" private , max-age = 60 "}, time.Minute}, // spaces around '=' are tolerated
		{[]string{"max-age=86400"}, 24 * time.Hour},
		{[]string{"max-age=86401"}, 24 * time.Hour},
		{[]string{"max-age=18446744073709551615"}, 24 * time.Hour},
		{[]string{"max-age=99999999999999999999999"}, time.Hour}, // unparseable: ignored
		{[]string{"max-age=-5"}, time.Hour},
		{[]string{"max-age=abc"}, time.Hour},
		{[]string{"no-store"}, 0},
		{[]string{"No-Cache"}, 0},
		{[]string{"max-age=60", "no-store"}, 0},
		{[]string{"s-maxage=60"}, time.Hour},
	}
	for _, c := range cases {
		if got := cimdExpiresAt(c.cc, now).Sub(now); got != c.want {
			t.Errorf("cimdExpiresAt(%q) = +%v, want +%v", c.cc, got, c.want)
		}
	}
}
