package forwarded_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/internal/netprefix"
)

func mustPrefixes(t *testing.T, entries ...string) []netip.Prefix {
	t.Helper()
	p, err := netprefix.Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientAddr(t *testing.T) {
	proxies := mustPrefixes(t, "10.0.0.0/8, 192.168.1.7", "2001:db8:ffff::/48")
	for _, tc := range []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"remote v4", "203.0.113.7:51234", nil, nil, "203.0.113.7"},
		{"remote v6", "[2001:db8::1]:443", nil, nil, "2001:db8::1"},
		{"remote v4-mapped", "[::ffff:203.0.113.7]:443", nil, nil, "203.0.113.7"},
		{"remote zone", "[fe80::1%eth0]:443", nil, nil, "fe80::1"},
		{"no trusted proxies: XFF ignored", "10.0.0.1:1", []string{"198.51.100.9"}, nil, "10.0.0.1"},
		{"XFF from an untrusted peer ignored", "203.0.113.7:1", []string{"198.51.100.9"}, proxies, "203.0.113.7"},
		{"trusted XFF", "10.0.0.1:1", []string{"198.51.100.9"}, proxies, "198.51.100.9"},
		{"trusted single address", "192.168.1.7:1", []string{"198.51.100.9"}, proxies, "198.51.100.9"},
		{"trusted v4-mapped peer", "[::ffff:10.1.2.3]:1", []string{"198.51.100.9"}, proxies, "198.51.100.9"},
		{"client-written entries ignored", "10.0.0.1:1", []string{"1.2.3.4, 5.6.7.8,198.51.100.9"}, proxies, "198.51.100.9"},
		{"several header lines", "10.0.0.1:1", []string{"1.2.3.4", "198.51.100.9"}, proxies, "198.51.100.9"},
		{"chain of trusted proxies: rightmost untrusted", "10.0.0.1:1", []string{"1.2.3.4, 198.51.100.9, 10.9.9.9, 192.168.1.7"}, proxies, "198.51.100.9"},
		{"forged trusted-looking entry left of the client", "10.0.0.1:1", []string{"10.5.5.5, 198.51.100.9"}, proxies, "198.51.100.9"},
		{"XFF with port", "10.0.0.1:1", []string{"198.51.100.9:4711"}, proxies, "198.51.100.9"},
		{"XFF v6", "10.0.0.1:1", []string{"2001:db8::2"}, proxies, "2001:db8::2"},
		{"v6 proxy", "[2001:db8:ffff::9]:1", []string{"2001:db8::2"}, proxies, "2001:db8::2"},
		{"garbage ends the walk at the last trusted hop", "10.0.0.1:1", []string{"1.2.3.4, unknown"}, proxies, "10.0.0.1"},
		{"garbage behind a trusted hop", "10.0.0.1:1", []string{"1.2.3.4, unknown, 10.2.2.2"}, proxies, "10.2.2.2"},
		{"empty XFF", "10.0.0.1:1", []string{""}, proxies, "10.0.0.1"},
		{"no XFF", "10.0.0.1:1", nil, proxies, "10.0.0.1"},
		{"no port", "10.0.0.1", nil, nil, "10.0.0.1"},
		{"not an address", "pipe", nil, proxies, "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/oauth/login", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := forwarded.New(tc.trusted).ClientAddr(r); got != tc.want {
				t.Errorf("ClientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSchemeAndHost: X-Forwarded-Proto and X-Forwarded-Host are believed from a trusted proxy
// only, and only when well formed; a spoofing client gets its own connection's answers.
func TestSchemeAndHost(t *testing.T) {
	proxies := mustPrefixes(t, "10.0.0.0/8")
	for _, tc := range []struct {
		name       string
		remote     string
		trusted    []netip.Prefix
		tls        bool
		proto      []string
		host       []string
		wantScheme string
		wantHost   string
	}{
		{"plain, nothing forwarded", "203.0.113.7:1", proxies, false, nil, nil, "http", "gw.internal:8080"},
		{"untrusted peer spoofs https and a host", "203.0.113.7:1", proxies, false, []string{"https"}, []string{"evil.example"}, "http", "gw.internal:8080"},
		{"no proxies trusted: headers ignored", "10.0.0.1:1", nil, false, []string{"https"}, []string{"gateway.example.com"}, "http", "gw.internal:8080"},
		{"trusted proxy", "10.0.0.1:1", proxies, false, []string{"https"}, []string{"gateway.example.com"}, "https", "gateway.example.com"},
		{"trusted proxy, case and port", "10.0.0.1:1", proxies, false, []string{"HTTPS"}, []string{"acme.gateway.example.com:8443"}, "https", "acme.gateway.example.com:8443"},
		{"last value wins (the nearest proxy's)", "10.0.0.1:1", proxies, false, []string{"https, http"}, []string{"evil.example, gateway.example.com"}, "http", "gateway.example.com"},
		{"several header lines", "10.0.0.1:1", proxies, false, []string{"http", "https"}, []string{"a.example", "b.example"}, "https", "b.example"},
		{"an IPv6 host", "10.0.0.1:1", proxies, false, nil, []string{"[2001:db8::1]:443"}, "http", "[2001:db8::1]:443"},
		{"a host with a path is not believed", "10.0.0.1:1", proxies, false, nil, []string{"gateway.example.com/evil"}, "http", "gw.internal:8080"},
		{"a host with user info is not believed", "10.0.0.1:1", proxies, false, nil, []string{"user@gateway.example.com"}, "http", "gw.internal:8080"},
		{"a bad port is not believed", "10.0.0.1:1", proxies, false, nil, []string{"gateway.example.com:http"}, "http", "gw.internal:8080"},
		{"an unknown scheme is http", "10.0.0.1:1", proxies, false, []string{"gopher"}, nil, "http", "gw.internal:8080"},
		{"TLS connection is https whatever the header", "203.0.113.7:1", proxies, true, []string{"http"}, nil, "https", "gw.internal:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://gw.internal:8080/mcp", nil)
			r.RemoteAddr = tc.remote
			if tc.tls {
				r = httptest.NewRequest("GET", "https://gw.internal:8080/mcp", nil)
				r.RemoteAddr = tc.remote
			}
			for _, v := range tc.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			for _, v := range tc.host {
				r.Header.Add("X-Forwarded-Host", v)
			}
			tr := forwarded.New(tc.trusted)
			if got := tr.Scheme(r); got != tc.wantScheme {
				t.Errorf("Scheme = %q, want %q", got, tc.wantScheme)
			}
			if got := tr.Host(r); got != tc.wantHost {
				t.Errorf("Host = %q, want %q", got, tc.wantHost)
			}
		})
	}
}

// TestMiddleware: what handlers behind the middleware see — the forwarded Host and the client
// address in the context from a trusted proxy, the connection's own from anyone else.
func TestMiddleware(t *testing.T) {
	var gotHost, gotAddr string
	h := forwarded.New(mustPrefixes(t, "127.0.0.1")).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotAddr = r.Host, forwarded.ClientAddrFrom(r.Context())
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	req.Header.Set("X-Forwarded-Host", "gateway.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotHost != "gateway.example.com" || gotAddr != "198.51.100.9" {
		t.Errorf("from the trusted proxy: host %q, client %q; want gateway.example.com, 198.51.100.9", gotHost, gotAddr)
	}

	untrusted := forwarded.New(mustPrefixes(t, "10.0.0.0/8")).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotAddr = r.Host, forwarded.ClientAddrFrom(r.Context())
	}))
	srv2 := httptest.NewServer(untrusted)
	defer srv2.Close()
	req, _ = http.NewRequest("GET", srv2.URL, nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	req.Header.Set("X-Forwarded-Host", "gateway.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotHost == "gateway.example.com" || gotAddr != "127.0.0.1" {
		t.Errorf("from an untrusted peer: host %q, client %q; want the connection's own (127.0.0.1)", gotHost, gotAddr)
	}
}
