package mail_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
)

func TestNewRefusesBadSettingsWithoutShowingThePassword(t *testing.T) {
	cases := []struct{ url, from, want string }{
		{"http://u:s3cret@mail.example.com", "gw@example.com", "scheme must be smtp"},
		{"smtp://u:s3cret@/", "gw@example.com", "no host"},
		{"smtp://u:s3cret@mail.example.com/inbox", "gw@example.com", "remove the path"},
		{"smtp://u:s3cret@mail.example.com?x=1", "gw@example.com", "remove the path"},
		{"smtp://u@mail.example.com", "gw@example.com", "both a user name and a password"},
		{"smtp://u:s3cret@mail.example.com", "", "needs --smtp-from"},
		{"smtp://u:s3cret@mail.example.com", "not an address", "--smtp-from"},
		{"smtp://u:s3cret@mail.example.com", "gw@example.com\r\nBcc: x@evil.example", "line break"},
		{"smtp://u:s3cret@mail.example.com:99999", "gw@example.com", "not a port"},
	}
	for _, c := range cases {
		_, err := mail.New(mail.Settings{URL: c.url, From: c.from})
		if err == nil {
			t.Errorf("New(%q, %q) accepted", c.url, c.from)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q) = %v, want it to say %q", c.url, c.from, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) error shows the password: %v", c.url, err)
		}
	}
	s, err := mail.New(mail.Settings{URL: "smtps://u:s3cret@mail.example.com", From: "trustgate <gw@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "s3cret") || !strings.Contains(s.String(), "mail.example.com") {
		t.Errorf("String() = %q, want the server without the password", s.String())
	}
}

func send(t *testing.T, srv *smtpserver.Server, settings mail.Settings, m mail.Message) error {
	t.Helper()
	if settings.URL == "" {
		settings.URL = srv.URL()
	}
	if settings.From == "" {
		settings.From = "trustgate <gateway@example.com>"
	}
	s, err := mail.New(settings)
	if err != nil {
		t.Fatal(err)
	}
	return s.Send(context.Background(), m)
}

func TestSendDeliversAPlainTextUTF8Message(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{Username: "gw", Password: "pw"})
	msg := mail.Message{To: "Alice <alice@example.com>", Subject: "Your code — trustgate", Body: "Code: 123456\nÉté.\n"}
	if err := send(t, srv, mail.Settings{}, msg); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, "alice@example.com", 1)
	if got.From != "gateway@example.com" || !got.Authenticated {
		t.Errorf("envelope from %q authenticated %v", got.From, got.Authenticated)
	}
	if got.Subject() != msg.Subject {
		t.Errorf("subject %q, want %q", got.Subject(), msg.Subject)
	}
	if got.Body != "Code: 123456\r\nÉté.\r\n" {
		t.Errorf("body %q", got.Body)
	}
	for _, h := range []string{"Date", "Message-Id", "From", "To"} {
		if got.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if _, err := got.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if ct := got.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || got.Header.Get("MIME-Version") != "1.0" {
		t.Errorf("Content-Type %q MIME-Version %q", ct, got.Header.Get("MIME-Version"))
	}
	if !strings.HasSuffix(got.Header.Get("Message-Id"), "@example.com>") {
		t.Errorf("Message-ID %q", got.Header.Get("Message-Id"))
	}
}

func TestSendUsesSTARTTLSWhenOffered(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{STARTTLS: true, Username: "gw", Password: "pw"})
	// The server refuses AUTH before STARTTLS, so delivery proves the upgrade happened.
	if err := send(t, srv, mail.Settings{RootCAs: srv.CertPool}, mail.Message{To: "bob@example.com", Subject: "s", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitFor(t, "bob@example.com", 1); !got.TLS || !got.Authenticated {
		t.Errorf("TLS %v authenticated %v, want both", got.TLS, got.Authenticated)
	}
	// A certificate the client does not trust fails; it never falls back to plaintext.
	err := send(t, srv, mail.Settings{}, mail.Message{To: "bob@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("untrusted certificate: err = %v, want a STARTTLS failure", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestSendOverImplicitTLS(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{ImplicitTLS: true, Username: "gw", Password: "pw"})
	if !strings.HasPrefix(srv.URL(), "smtps://") {
		t.Fatalf("URL %q", srv.URL())
	}
	if err := send(t, srv, mail.Settings{RootCAs: srv.CertPool}, mail.Message{To: "carol@example.com", Subject: "s", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitFor(t, "carol@example.com", 1); !got.TLS {
		t.Error("message arrived without TLS")
	}
}

func TestSendRefusesPlaintextCredentialsOffLoopback(t *testing.T) {
	// Credentials go in plaintext to localhost and 127.0.0.1; to the same server reached through
	// a relay on an address that is not loopback they are refused before AUTH.
	srv := smtpserver.Start(t, smtpserver.Options{Username: "gw", Password: "pw"})
	_, port, _ := net.SplitHostPort(srv.Addr)
	if err := send(t, srv, mail.Settings{URL: "smtp://gw:pw@localhost:" + port}, mail.Message{To: "d@example.com", Subject: "s", Body: "b"}); err != nil {
		t.Fatalf("localhost: %v", err)
	}
	fwd := forward(t, nonLoopbackAddress(t), srv.Addr)
	err := send(t, srv, mail.Settings{URL: "smtp://gw:pw@" + fwd}, mail.Message{To: "d@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "not sent in plaintext") {
		t.Errorf("plaintext off loopback: err = %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), "pw@") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestSendReportsARejectedMessage(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{RejectData: true})
	err := send(t, srv, mail.Settings{}, mail.Message{To: "e@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("err = %v, want the server's 554", err)
	}
}

func TestSendIsBoundedInTime(t *testing.T) {
	// A server that accepts the connection and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	s, err := mail.New(mail.Settings{URL: "smtp://" + l.Addr().String(), From: "gw@example.com", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "f@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "took longer than") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

func TestSendRefusesHeaderInjection(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{})
	for _, m := range []mail.Message{
		{To: "g@example.com\r\nBcc: h@example.com", Subject: "s", Body: "b"},
		{To: "g@example.com", Subject: "s\r\nBcc: h@example.com", Body: "b"},
	} {
		if err := send(t, srv, mail.Settings{}, m); err == nil {
			t.Errorf("sent %+v", m)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}

// nonLoopbackAddress is an address of this machine that is not loopback.
func nonLoopbackAddress(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

// forward listens on addr and relays every connection to target; it returns the listen address.
func forward(t *testing.T, addr, target string) string {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}
