package ssrf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
)

func TestIsForbiddenAddr(t *testing.T) {
	cases := []struct {
		addr      string
		forbidden bool
	}{
		// loopback
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		// private
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"fc00::1", true},
		{"fd12:3456:789a::1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:192.168.0.1", true},
		// link-local and cloud metadata
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fd00:ec2::254", true}, // AWS IMDS over IPv6 (unique local)
		// CGNAT, this-network, unspecified, broadcast, multicast, reserved
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"255.255.255.255", true},
		{"240.0.0.1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff05::2", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:255.255.255.255", true},
		{"::ffff:100.64.0.1", true},
		{"192.0.0.192", true},
		{"198.18.0.1", true},
		// IPv6 forms embedding IPv4
		{"::127.0.0.1", true},         // IPv4-compatible (deprecated)
		{"64:ff9b::7f00:1", true},     // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true},  // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", true},        // local-use NAT64
		{"2002:7f00:1::1", true},      // 6to4
		{"2001:0:4136:e378::1", true}, // Teredo
		{"2001:db8::1", true},
		// public
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		{"100.63.255.255", false}, // just below CGNAT
		{"100.128.0.0", false},    // just above CGNAT
		{"172.15.255.255", false}, // just below 172.16/12
		{"172.32.0.0", false},     // just above
		{"169.253.255.255", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2606:4700:4700::1111", false},
		{"2a00:1450:4001:82a::200e", false},
	}
	for _, c := range cases {
		addr := netip.MustParseAddr(c.addr)
		if got := ssrf.IsForbiddenAddr(addr); got != c.forbidden {
			t.Errorf("IsForbiddenAddr(%s) = %v, want %v", c.addr, got, c.forbidden)
		}
	}
	if !ssrf.IsForbiddenAddr(netip.Addr{}) {
		t.Error("the zero Addr must be forbidden")
	}
}

// The dialer's Control hook runs before the connect system call, so refused addresses need no
// server: nothing is ever sent to them.
func TestClientRefusesForbiddenDestinations(t *testing.T) {
	client := ssrf.NewClient(ssrf.Options{Timeout: 3 * time.Second})
	for _, u := range []string{
		"https://127.0.0.1/",
		"https://127.0.0.1:8443/x",
		"https://[::1]/",
		"https://10.1.2.3/",
		"https://192.168.0.1/",
		"https://172.20.0.1/",
		"https://169.254.169.254/latest/meta-data/",
		"https://[::ffff:127.0.0.1]/",
		"https://[::ffff:169.254.169.254]/",
		"https://[fe80::1]/",
		"https://[fd00::1]/",
		"https://100.64.0.1/",
		"https://0.0.0.0/",
		"https://localhost/",    // a name resolving to loopback
		"https://localhost:1/x", // any port
	} {
		t.Run(u, func(t *testing.T) {
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded, want refusal", u)
			}
			if !errors.Is(err, ssrf.ErrForbiddenAddress) {
				t.Fatalf("GET %s: error %v, want ErrForbiddenAddress", u, err)
			}
		})
	}
}

func TestClientRefusesLoopbackTestServerWithoutAllowPrivate(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	client := ssrf.NewClient(ssrf.Options{TLSConfig: tlsTrusting(srv)})
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET of a loopback server succeeded without AllowPrivate")
	}
	if !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("error %v, want ErrForbiddenAddress", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("server saw %d requests, want 0", hits.Load())
	}
}

func TestClientReachesTestServerWithAllowPrivate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, TLSConfig: tlsTrusting(srv)})
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, err %v", body, err)
	}
}

func TestClientDoesNotTrustSystemRootsForTestCert(t *testing.T) {
	// Without the test server's pool the handshake fails: TLS verification stays on.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true})
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET with an untrusted certificate succeeded")
	}
}

func TestClientRefusesHTTPUnlessAllowed(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "plain")
	}))
	defer srv.Close()

	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true})
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("http:// succeeded without AllowHTTP")
	}
	if !errors.Is(err, ssrf.ErrSchemeNotAllowed) {
		t.Fatalf("error %v, want ErrSchemeNotAllowed", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("server saw %d requests, want 0", hits.Load())
	}

	client = ssrf.NewClient(ssrf.Options{AllowPrivate: true, AllowHTTP: true})
	resp, err = client.Get(srv.URL)
	if err != nil {
		t.Fatalf("http:// with AllowHTTP: %v", err)
	}
	resp.Body.Close()

	// AllowHTTP does not lift the address guard.
	client = ssrf.NewClient(ssrf.Options{AllowHTTP: true})
	resp, err = client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("http:// to loopback succeeded with AllowHTTP but without AllowPrivate")
	}
	if !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("error %v, want ErrForbiddenAddress", err)
	}
}

func TestClientRefusesOtherSchemes(t *testing.T) {
	client := ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: true})
	for _, u := range []string{"ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"} {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s succeeded", u)
		}
	}
}

func TestClientRefusesRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	pool.AddCert(target.Certificate())
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, TLSConfig: &tls.Config{RootCAs: pool}})
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("redirect was followed")
	}
	if !errors.Is(err, ssrf.ErrRedirect) {
		t.Fatalf("error %v, want ErrRedirect", err)
	}
	if targetHits.Load() != 0 {
		t.Fatalf("redirect target saw %d requests, want 0", targetHits.Load())
	}
}

func TestClientIgnoresEnvironmentProxy(t *testing.T) {
	// A proxy would dial the destination for us, out of the guard's sight. Loopback
	// destinations bypass environment proxies anyway, so ask for a name that does not resolve:
	// through a proxy the proxy would be hit; without one the lookup simply fails.
	var proxyHits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxyHits.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer proxy.Close()
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("https_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, Timeout: 2 * time.Second})
	resp, err := client.Get("https://trustgate-ssrf-test.invalid/")
	if err == nil {
		resp.Body.Close()
	}
	if proxyHits.Load() != 0 {
		t.Fatalf("proxy saw %d requests, want 0", proxyHits.Load())
	}
}

func TestClientBodyLimit(t *testing.T) {
	const limit = 1000
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := limit
		switch r.URL.Path {
		case "/over":
			n = limit + 1
		case "/chunked-over":
			// No Content-Length: flush in pieces so the limit is hit while streaming.
			for range 5 {
				_, _ = w.Write([]byte(strings.Repeat("x", 400)))
				w.(http.Flusher).Flush()
			}
			return
		case "/declared-over":
			w.Header().Set("Content-Length", "100000")
			_, _ = w.Write([]byte("short"))
			return
		}
		_, _ = w.Write([]byte(strings.Repeat("x", n)))
	}))
	defer srv.Close()
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, MaxBodyBytes: limit, TLSConfig: tlsTrusting(srv)})

	read := func(path string) ([]byte, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	body, err := read("/exact")
	if err != nil || len(body) != limit {
		t.Fatalf("exact limit: %d bytes, err %v", len(body), err)
	}
	for _, p := range []string{"/over", "/chunked-over", "/declared-over"} {
		body, err := read(p)
		if !errors.Is(err, ssrf.ErrBodyTooLarge) {
			t.Fatalf("%s: err %v, want ErrBodyTooLarge", p, err)
		}
		if len(body) > limit {
			t.Fatalf("%s: read %d bytes past the %d limit", p, len(body), limit)
		}
	}
}

func TestReadLimited(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("y", 100)))
	}))
	defer srv.Close()
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, TLSConfig: tlsTrusting(srv)})
	for _, c := range []struct {
		max  int64
		fail bool
	}{{100, false}, {1000, false}, {99, true}, {10, true}} {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := ssrf.ReadLimited(resp, c.max)
		resp.Body.Close()
		if c.fail {
			if !errors.Is(err, ssrf.ErrBodyTooLarge) {
				t.Errorf("max %d: err %v, want ErrBodyTooLarge", c.max, err)
			}
			continue
		}
		if err != nil || len(body) != 100 {
			t.Errorf("max %d: %d bytes, err %v", c.max, len(body), err)
		}
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	client := ssrf.NewClient(ssrf.Options{AllowPrivate: true, Timeout: 200 * time.Millisecond, TLSConfig: tlsTrusting(srv)})
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("slow server did not time out")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestCheckHost(t *testing.T) {
	ctx := context.Background()
	for _, h := range []string{"127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "localhost"} {
		if err := ssrf.CheckHost(ctx, h); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("CheckHost(%q) = %v, want ErrForbiddenAddress", h, err)
		}
	}
	for _, h := range []string{"8.8.8.8", "2606:4700:4700::1111"} {
		if err := ssrf.CheckHost(ctx, h); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", h, err)
		}
	}
}

func tlsTrusting(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}
