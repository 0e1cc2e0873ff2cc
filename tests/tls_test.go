package tests

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/testca"
)

// TestServeHTTPSWithRotatedCertificate: with --tls-cert/--tls-key the gateway serves HTTPS
// that a client verifying against the test's CA accepts, with HSTS, an https public URL by
// default, and a renewed certificate written over the files served without a restart.
func TestServeHTTPSWithRotatedCertificate(t *testing.T) {
	ca := testca.New(t)
	certDir := t.TempDir()
	certPath, keyPath, first := ca.WriteFiles(t, certDir, "127.0.0.1", "localhost")
	addr := freeAddr(t)
	p := launchEnv(t, addr, nil, "serve", "--listen", addr, "--data-dir", t.TempDir(), "--metrics-listen", "",
		"--tls-cert", certPath, "--tls-key", keyPath)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		DisableKeepAlives: true, // every request is a new handshake
	}}
	base := "https://" + addr
	get := func(path string) (*http.Response, int64) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			return nil, 0
		}
		readAll(resp)
		return resp, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	deadline := time.Now().Add(60 * time.Second)
	var resp *http.Response
	var serial int64
	for {
		if resp, serial = get("/readyz"); resp != nil && resp.StatusCode == 200 {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("trustgate exited: %v\n%s", p.err, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS /readyz 200 within 60s:\n%s", p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if serial != first {
		t.Fatalf("served certificate serial %d, want %d", serial, first)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HTTPS answer without HSTS (%q)", got)
	}
	// The public URL defaults to https: the OAuth metadata names https URLs.
	resp, err := client.Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); !strings.Contains(body, `"issuer":"https://`+addr) {
		t.Errorf("metadata over HTTPS does not name the https issuer:\n%s", body)
	}
	// A client that does not trust the test CA is refused.
	if _, err := http.Get(base + "/readyz"); err == nil {
		t.Error("a client without the test CA accepted the certificate")
	}

	// Renewal: written over the files, served by the next handshake, no restart.
	_, _, second := ca.WriteFiles(t, certDir, "127.0.0.1", "localhost")
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, serial = get("/healthz"); serial == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate (serial %d) was not served within 10s (serving %d)", second, serial)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-p.exited:
		t.Fatal("trustgate exited during the renewal")
	default:
	}
	p.stopCleanly(t)
}

// TestTLSOptionsAreChecked: conflicting or incomplete TLS options stop start-up with a
// message naming them; --acme-domain refuses names it would not obtain a certificate for.
func TestTLSOptionsAreChecked(t *testing.T) {
	ca := testca.New(t)
	certPath, keyPath, _ := ca.WriteFiles(t, t.TempDir(), "localhost")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", certPath}, "go together"},
		{[]string{"--tls-cert", certPath, "--tls-key", certPath}, "--tls-cert/--tls-key"},
		{[]string{"--tls-cert", certPath, "--tls-key", keyPath, "--acme-domain", "gw.example.com"}, "drop --tls-cert"},
		{[]string{"--acme-domain", "*.example.com"}, "wildcard"},
		{[]string{"--tls-cert", certPath, "--tls-key", keyPath, "--public-url", "http://gw.example.com"}, "is http but the gateway serves HTTPS"},
		{[]string{"--acme-email", "ops@example.com"}, "apply to --acme-domain"},
	} {
		out, err := run(t, 30*time.Second, append([]string{"serve", "--listen", freeAddr(t), "--data-dir", t.TempDir(), "--metrics-listen", ""}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("serve %v: %v, want an error saying %q:\n%s", c.args, err, c.want, out)
		}
	}
}

// TestACMEServesOnlyItsDomains: with --acme-domain the gateway starts, answers the TLS
// handshake through the ACME manager, and refuses a name it was not given (no certificate is
// requested for it). Obtaining a real certificate needs a public ACME CA and is not run here.
func TestACMEServesOnlyItsDomains(t *testing.T) {
	addr := freeAddr(t)
	p := launchEnv(t, addr, nil, "serve", "--listen", addr, "--data-dir", t.TempDir(), "--metrics-listen", "",
		"--acme-domain", "gateway.example.test", "--acme-directory", "https://127.0.0.1:1/directory")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.output(), "trustgate is serving") {
		select {
		case <-p.exited:
			t.Fatalf("trustgate exited: %v\n%s", p.err, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving within 60s:\n%s", p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p.output(), "url=https://gateway.example.test") {
		t.Errorf("the public URL is not the ACME domain's https URL:\n%s", p.output())
	}
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "other.example.test", InsecureSkipVerify: true}) //nolint:gosec // the handshake must fail before any certificate
	if err == nil {
		t.Fatal("a handshake for a name not in --acme-domain succeeded")
	}
	p.stopCleanly(t)
}
