// Package webhook posts notifications to a host's Slack-compatible incoming webhook: a JSON body
// {"text": ..., "blocks": [...]} sent by POST to the URL the host's administrators set.
//
// Posting never blocks the caller: Notify puts the message on a bounded queue and returns at
// once; a few workers deliver it, retrying network errors, 429 and 5xx answers with backoff. A
// full queue drops the message (counted, logged) rather than wait. The URL is a secret (whoever
// holds a Slack webhook URL may post to the channel): it is sealed in the store with the master
// key (SealURL, OpenURL), never logged and never returned by the admin API.
//
// Every connection is made under the gateway's upstream address policy (package ssrf): public
// addresses plus the networks the operator allowed for hosts' upstreams. https is required,
// except towards those operator-allowed (non-public) networks, where plain http reaches an
// in-house relay.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
)

// Bounds and defaults.
const (
	// MaxURLBytes bounds a webhook URL.
	MaxURLBytes = 2048
	// MaxTextBytes bounds a message's text; longer text is cut (on a rune boundary) with "…".
	MaxTextBytes = 3000
	// MaxBodyBytes bounds the encoded JSON body; a message whose blocks make it longer is sent
	// with its text only.
	MaxBodyBytes = 16 << 10
	// maxResponseBytes is how much of an answer is read (and discarded) so the connection can
	// be reused.
	maxResponseBytes = 4 << 10

	DefaultTimeout   = 5 * time.Second
	DefaultAttempts  = 4
	DefaultBackoff   = time.Second
	DefaultQueueSize = 256
	DefaultWorkers   = 2
	// maxRetryAfter caps how long a Retry-After answer may make a worker wait.
	maxRetryAfter = 30 * time.Second
)

// Errors of ValidateURL and OpenURL.
var (
	ErrInvalidURL = errors.New("invalid webhook URL")
	ErrNoWebhook  = errors.New("no webhook set")
)

// Message is what is posted: Slack's incoming-webhook format, which Mattermost, Rocket.Chat,
// Discord (at /slack) and Microsoft Teams workflows accept too. Text is required (it is the
// notification's fallback); Blocks are optional Block Kit blocks.
type Message struct {
	Text   string `json:"text"`
	Blocks []any  `json:"blocks,omitempty"`
}

// Section is a Block Kit section block with Markdown text.
func Section(markdown string) map[string]any {
	return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate(markdown, MaxTextBytes)}}
}

// body encodes the message within MaxBodyBytes: text cut to MaxTextBytes, blocks dropped when
// they do not fit.
func (m Message) body() ([]byte, error) {
	m.Text = truncate(m.Text, MaxTextBytes)
	b, err := json.Marshal(m)
	if err == nil && len(b) <= MaxBodyBytes {
		return b, nil
	}
	return json.Marshal(Message{Text: m.Text})
}

func truncate(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ValidateURL checks a webhook URL before it is stored: an absolute http or https URL with a
// host, no user information and no fragment, at most MaxURLBytes. Whether http is acceptable
// depends on the address it reaches, which only the connection knows (see the package doc).
func ValidateURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	if len(raw) > MaxURLBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidURL, len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: does not parse", ErrInvalidURL)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%w: scheme %q, want https", ErrInvalidURL, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: no host", ErrInvalidURL)
	case u.User != nil:
		return fmt.Errorf("%w: user information is not allowed", ErrInvalidURL)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%w: a fragment is not allowed", ErrInvalidURL)
	case strings.ContainsAny(raw, " \t\r\n"):
		return fmt.Errorf("%w: whitespace", ErrInvalidURL)
	}
	return nil
}

// aad binds a sealed URL to its host: copied to another host, it does not open.
func aad(host string) string { return "host webhook url:" + host }

// SealURL seals a host's webhook URL with the master key.
func SealURL(keys *secrets.Keyring, host, rawURL string) []byte {
	return keys.Seal([]byte(rawURL), aad(host))
}

// OpenURL opens a URL sealed by SealURL for the same host.
func OpenURL(keys *secrets.Keyring, host string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", ErrNoWebhook
	}
	b, err := keys.Open(sealed, aad(host))
	if err != nil {
		return "", fmt.Errorf("open host %s's webhook URL: %w", host, err)
	}
	return string(b), nil
}

// URLSource gives a host's webhook URL; ok is false when the host has none.
type URLSource interface {
	WebhookURL(ctx context.Context, host string) (rawURL string, ok bool, err error)
}

// Outcomes of a delivery, as Options.Observe and the log name them.
const (
	OutcomeDelivered = "delivered" // the webhook answered 2xx
	OutcomeFailed    = "failed"    // every attempt failed, or the answer was a 4xx other than 429
	OutcomeDropped   = "dropped"   // the queue was full, or the sender closed
	OutcomeNoWebhook = "no_webhook"
)

// Options configure a Sender.
type Options struct {
	URLs URLSource
	// Policy says which addresses may be dialled (the gateway's upstream policy for hosts).
	Policy ssrf.Policy
	// Timeout bounds one attempt, connect to answer (default 5s).
	Timeout time.Duration
	// Attempts is how many times a message is tried (default 4); Backoff the wait before the
	// second, doubled before each further one (default 1s).
	Attempts int
	Backoff  time.Duration
	// QueueSize bounds the messages waiting (default 256); Workers deliver them (default 2).
	QueueSize int
	Workers   int
	// Observe, when set, is told each message's outcome (metrics, tests).
	Observe func(host, outcome string)
	Logger  *slog.Logger
}

type job struct {
	host string
	msg  Message
}

// Sender delivers messages to hosts' webhooks in the background.
type Sender struct {
	opts   Options
	client *http.Client
	queue  chan job
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.RWMutex // guards closed against Notify racing Close
	closed bool
}

// New starts a sender's workers; Close stops them.
func New(opts Options) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sender{opts: opts, client: newClient(opts.Policy, opts.Timeout), queue: make(chan job, opts.QueueSize), stop: make(chan struct{})}
	for range opts.Workers {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// Notify queues a message for the host's webhook and returns at once; it reports whether the
// message was queued (false: the queue is full or the sender closed, and the message is
// dropped). A host without a webhook drops it quietly when it comes to be sent.
func (s *Sender) Notify(host string, msg Message) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		select {
		case s.queue <- job{host: host, msg: msg}:
			return true
		default:
		}
	}
	s.observe(host, OutcomeDropped)
	s.opts.Logger.Warn("webhook message dropped: the queue is full", "host", host)
	return false
}

// Close stops taking messages, and waits until the queued ones are delivered or ctx ends
// (then in-flight attempts are abandoned and the rest dropped).
func (s *Sender) Close(ctx context.Context) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		close(s.stop)
		<-done
	}
	s.client.CloseIdleConnections()
}

func (s *Sender) work() {
	defer s.wg.Done()
	for j := range s.queue {
		select {
		case <-s.stop:
			s.observe(j.host, OutcomeDropped)
			continue
		default:
		}
		s.deliver(j)
	}
}

func (s *Sender) observe(host, outcome string) {
	if s.opts.Observe != nil {
		s.opts.Observe(host, outcome)
	}
}

// stopContext is a context cancelled when Close gives up waiting.
func (s *Sender) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (s *Sender) deliver(j job) {
	ctx, cancel := s.stopContext()
	defer cancel()
	log := s.opts.Logger.With("host", j.host)
	if s.opts.URLs == nil {
		s.observe(j.host, OutcomeNoWebhook)
		return
	}
	lookupCtx, lookupCancel := context.WithTimeout(ctx, s.opts.Timeout)
	rawURL, ok, err := s.opts.URLs.WebhookURL(lookupCtx, j.host)
	lookupCancel()
	if err != nil {
		log.Warn("webhook message not sent: the host's webhook cannot be read", "err", err)
		s.observe(j.host, OutcomeFailed)
		return
	}
	if !ok {
		s.observe(j.host, OutcomeNoWebhook)
		return
	}
	body, err := j.msg.body()
	if err != nil {
		log.Warn("webhook message not sent: it cannot be encoded", "err", err)
		s.observe(j.host, OutcomeFailed)
		return
	}
	wait := s.opts.Backoff
	for attempt := 1; ; attempt++ {
		retry, after, err := post(ctx, s.client, s.opts.Timeout, rawURL, body)
		if err == nil {
			s.observe(j.host, OutcomeDelivered)
			return
		}
		if !retry || attempt >= s.opts.Attempts {
			log.Warn("webhook message not delivered", "attempts", attempt, "err", err)
			s.observe(j.host, OutcomeFailed)
			return
		}
		if after > 0 {
			wait = min(after, maxRetryAfter)
		}
		log.Debug("webhook attempt failed; retrying", "attempt", attempt, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			s.observe(j.host, OutcomeDropped)
			return
		}
		wait *= 2
	}
}

// post makes one attempt. Errors never contain the URL (it is a secret): only its status or
// the kind of network failure.
func post(ctx context.Context, client *http.Client, timeout time.Duration, rawURL string, body []byte) (retry bool, retryAfter time.Duration, _ error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("the webhook URL does not make a request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "trustgate-webhook")
	resp, err := client.Do(req)
	if err != nil {
		return !permanent(err), 0, scrub(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, parseRetryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("webhook answered %d", resp.StatusCode)
	default:
		return false, 0, fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
}

// Test posts one message to rawURL now, once, under the policy, and reports the outcome: what
// an administrator's "send a test message" runs. Its error never contains the URL.
func Test(ctx context.Context, policy ssrf.Policy, rawURL string, msg Message) error {
	body, err := msg.body()
	if err != nil {
		return err
	}
	client := newClient(policy, DefaultTimeout)
	defer client.CloseIdleConnections()
	_, _, err = post(ctx, client, DefaultTimeout, rawURL, body)
	return err
}

func parseRetryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// permanent errors are not worth retrying: a refused address or scheme, a redirect.
func permanent(err error) bool {
	return errors.Is(err, ssrf.ErrForbiddenAddress) || errors.Is(err, ssrf.ErrSchemeNotAllowed) || errors.Is(err, ssrf.ErrRedirect)
}

// scrub reduces a client error to what may be logged: *url.Error carries the URL.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ssrf.ErrForbiddenAddress):
		return fmt.Errorf("the webhook's address is not allowed (public addresses and --upstream-allow-cidr only): %w", ssrf.ErrForbiddenAddress)
	case errors.Is(err, ssrf.ErrSchemeNotAllowed):
		return fmt.Errorf("plain http is allowed only to the networks of --upstream-allow-cidr; use https: %w", ssrf.ErrSchemeNotAllowed)
	case errors.Is(err, ssrf.ErrRedirect):
		return errors.New("the webhook answered with a redirect, which is not followed")
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("the webhook did not answer in time")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("the webhook did not answer in time")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("connection to the webhook failed: %s", oe.Op)
	}
	return errors.New("request to the webhook failed")
}

// newClient is the senders' HTTP client: https under the policy; http only to addresses the
// policy allows that are not public (the operator's own networks); no redirects, no proxy from
// the environment, bounded headers.
func newClient(policy ssrf.Policy, timeout time.Duration) *http.Client {
	https := transport(policy.Control, timeout)
	plain := transport(func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %q is not an IP address and port", ssrf.ErrForbiddenAddress, address)
		}
		if !ssrf.IsForbiddenAddr(ap.Addr()) {
			return fmt.Errorf("%w: plain http to a public address", ssrf.ErrSchemeNotAllowed)
		}
		return policy.Control(network, address, nil)
	}, timeout)
	return &http.Client{
		Transport: schemeTransport{https: https, http: plain},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return ssrf.ErrRedirect
		},
	}
}

func transport(control func(network, address string, c syscall.RawConn) error, timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: control}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 32 << 10,
		MaxIdleConns:           8,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
}

type schemeTransport struct{ https, http *http.Transport }

func (t schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "https":
		return t.https.RoundTrip(req)
	case "http":
		return t.http.RoundTrip(req)
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return nil, fmt.Errorf("%w: %q", ssrf.ErrSchemeNotAllowed, req.URL.Scheme)
}

func (t schemeTransport) CloseIdleConnections() {
	t.https.CloseIdleConnections()
	t.http.CloseIdleConnections()
}
