// Package mail sends the gateway's email over SMTP: it reads --smtp-url and --smtp-from, and
// sends one plain-text message per call, bounded in time, with STARTTLS whenever the server
// offers it and never a password in plaintext except to a loopback address.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultTimeout bounds one Send: connecting, the SMTP dialogue and the message.
const DefaultTimeout = 20 * time.Second

// Limits of what a message may hold.
const (
	maxSubjectBytes = 200
	maxBodyBytes    = 64 << 10
)

// Settings configure a Sender.
type Settings struct {
	// URL is smtp://[user:pass@]host[:port] (STARTTLS when the server offers it; port 587 by
	// default) or smtps://[user:pass@]host[:port] (TLS from the first byte; port 465).
	URL string
	// From is the RFC 5322 address messages are sent from, e.g. "trustgate <gw@example.com>".
	From string
	// Timeout bounds one Send (default DefaultTimeout).
	Timeout time.Duration
	// RootCAs verify the server's certificate (default: the system's roots).
	RootCAs *x509.CertPool
}

// Sender sends messages through one SMTP server. It holds no connection between calls and is
// safe for concurrent use.
type Sender struct {
	addr        string // host:port
	host        string
	implicitTLS bool
	username    string
	password    string
	from        *mail.Address
	timeout     time.Duration
	rootCAs     *x509.CertPool
	redacted    string // the URL without its password, for errors and logs
}

// Message is one plain-text message to one recipient.
type Message struct {
	To      string
	Subject string
	Body    string
}

// New checks the settings and returns their Sender. Errors name the setting and never the
// password.
func New(s Settings) (*Sender, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, errors.New("--smtp-url is not a URL: want smtp://user:pass@host:port or smtps://user:pass@host:port")
	}
	redacted := u.Redacted()
	var defaultPort string
	switch u.Scheme {
	case "smtp":
		defaultPort = "587"
	case "smtps":
		defaultPort = "465"
	default:
		return nil, fmt.Errorf("--smtp-url %q: the scheme must be smtp (STARTTLS when offered) or smtps (TLS), not %q", redacted, u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("--smtp-url %q: no host; want %s://user:pass@host:port", redacted, u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--smtp-url %q: only scheme, credentials, host and port are read; remove the path, query or fragment", redacted)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	if n, err := netip.ParseAddrPort("0.0.0.0:" + port); err != nil || n.Port() == 0 {
		return nil, fmt.Errorf("--smtp-url %q: port %q is not a port number", redacted, port)
	}
	sender := &Sender{
		addr:        net.JoinHostPort(u.Hostname(), port),
		host:        u.Hostname(),
		implicitTLS: u.Scheme == "smtps",
		timeout:     s.Timeout,
		rootCAs:     s.RootCAs,
		redacted:    redacted,
	}
	if sender.timeout <= 0 {
		sender.timeout = DefaultTimeout
	}
	if u.User != nil {
		sender.username = u.User.Username()
		sender.password, _ = u.User.Password()
		if sender.username == "" || sender.password == "" {
			return nil, fmt.Errorf("--smtp-url %q: give both a user name and a password, or neither", redacted)
		}
	}
	if s.From == "" {
		return nil, errors.New("--smtp-url needs --smtp-from (or TRUSTGATE_SMTP_FROM): the address messages are sent from")
	}
	if sender.from, err = parseAddress(s.From); err != nil {
		return nil, fmt.Errorf("--smtp-from %q: %w", s.From, err)
	}
	return sender, nil
}

// String describes the server without its password, e.g. "smtp://gw@mail.example.com:587".
func (s *Sender) String() string { return s.redacted }

// parseAddress reads one RFC 5322 address (a name is allowed) with no line breaks.
func parseAddress(addr string) (*mail.Address, error) {
	if strings.ContainsAny(addr, "\r\n") {
		return nil, errors.New("an address may not contain a line break")
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("not an RFC 5322 address such as \"trustgate <gateway@example.com>\": %w", err)
	}
	if !strings.Contains(a.Address, "@") {
		return nil, errors.New("the address has no domain")
	}
	return a, nil
}

// isLoopback says whether host names this machine: localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Send delivers one message: connect, STARTTLS when offered (smtp://) or TLS from the start
// (smtps://), AUTH PLAIN when the URL has credentials, then the message. The whole exchange ends
// by the Sender's timeout or ctx, whichever comes first.
func (s *Sender) Send(ctx context.Context, m Message) error {
	to, err := parseAddress(m.To)
	if err != nil {
		return fmt.Errorf("mail: recipient: %w", err)
	}
	data, err := s.compose(to, m, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.deliver(ctx, to.Address, data); err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("mail: sending through %s took longer than %s: %w", s.redacted, s.timeout, err)
		}
		return fmt.Errorf("mail: sending through %s: %w", s.redacted, err)
	}
	return nil
}

func (s *Sender) deliver(ctx context.Context, to string, data []byte) error {
	tlsConfig := &tls.Config{ServerName: s.host, RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	var err error
	if s.implicitTLS {
		d := &tls.Dialer{Config: tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// A cancelled ctx ends a read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	secure := s.implicitTLS
	if !secure {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
			secure = true
		}
	}
	if s.username != "" {
		if !secure && !isLoopback(s.host) {
			return errors.New("the server does not offer STARTTLS; the password is not sent in plaintext except to a loopback address (use smtps:// or a server with STARTTLS)")
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the URL has credentials but the server does not offer AUTH")
		}
		if err := c.Auth(plainAuth{username: s.username, password: s.password}); err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// plainAuth is SASL PLAIN. Whether the connection may carry it was decided in deliver (TLS, or
// loopback), so unlike net/smtp's PlainAuth it does not check again by host name.
type plainAuth struct{ username, password string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.username + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

// compose writes the message: headers (From, To, Subject, Date, Message-ID, MIME) and the body
// as quoted-printable UTF-8 text with CRLF line ends.
func (s *Sender) compose(to *mail.Address, m Message, now time.Time) ([]byte, error) {
	if strings.ContainsAny(m.Subject, "\r\n") || len(m.Subject) > maxSubjectBytes {
		return nil, fmt.Errorf("mail: the subject must be one line of at most %d bytes", maxSubjectBytes)
	}
	if len(m.Body) > maxBodyBytes {
		return nil, fmt.Errorf("mail: the body is larger than %d bytes", maxBodyBytes)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("mail: message id: %w", err)
	}
	domain := s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
	var b strings.Builder
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, fmt.Errorf("mail: body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("mail: body: %w", err)
	}
	return []byte(b.String()), nil
}
