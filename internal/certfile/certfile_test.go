package certfile

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/testca"
)

// serveTLS serves handshakes with r's certificate and returns the address.
func serveTLS(t *testing.T, r *Reloader) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// servedSerial connects, verifying against the CA, and returns the serial the server showed.
func servedSerial(t *testing.T, ca *testca.CA, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "gateway.test"})
	if err != nil {
		t.Fatalf("handshake verifying against the test CA: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestRotatedCertificateIsServedWithoutRestart(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certPath, keyPath, first := ca.WriteFiles(t, dir, "gateway.test")
	r, err := New(certPath, keyPath, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r)
	if got := servedSerial(t, ca, addr); got != first {
		t.Fatalf("served serial %d, want %d", got, first)
	}

	// Renewed: the next handshake after the check interval shows the new certificate.
	_, _, second := ca.WriteFiles(t, dir, "gateway.test")
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, ca, addr) != second {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate (serial %d) was not served within 5s", second)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A half-written renewal (a key that does not match) keeps the working pair in service.
	otherCert, _, _ := ca.Issue(t, "gateway.test")
	if err := os.WriteFile(certPath, otherCert, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	if got := servedSerial(t, ca, addr); got != second {
		t.Fatalf("after a mismatched renewal the server showed serial %d, want the working %d", got, second)
	}
	// Completed: picked up.
	_, _, third := ca.WriteFiles(t, dir, "gateway.test")
	deadline = time.Now().Add(5 * time.Second)
	for servedSerial(t, ca, addr) != third {
		if time.Now().After(deadline) {
			t.Fatalf("the completed renewal (serial %d) was not served within 5s", third)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRefusesAPairThatDoesNotLoad(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certPath, _, _ := ca.WriteFiles(t, dir, "gateway.test")
	if _, err := New(certPath, certPath, 0, nil); err == nil {
		t.Fatal("a certificate given as its own key was accepted")
	}
	if _, err := New(certPath, dir+"/missing.pem", 0, nil); err == nil {
		t.Fatal("a missing key file was accepted")
	}
	if _, err := New("", "", 0, nil); err == nil {
		t.Fatal("no files was accepted")
	}
}
