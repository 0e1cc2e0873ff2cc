package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/webhook"
)

// loopback is the policy of a gateway whose operator allowed the loopback network
// (--upstream-allow-cidr 127.0.0.0/8): the test servers are reachable over plain http.
var loopback = ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"))

// fixedURL is a URLSource with one URL for every host.
type fixedURL string

func (u fixedURL) WebhookURL(context.Context, string) (string, bool, error) {
	return string(u), u != "", nil
}

// outcomes collects the sender's outcomes.
type outcomes chan string

func (o outcomes) observe(host, outcome string) { o <- host + ":" + outcome }

func (o outcomes) next(t *testing.T) string {
	t.Helper()
	select {
	case got := <-o:
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("no outcome")
		return ""
	}
}

func newSender(t *testing.T, opts webhook.Options) (*webhook.Sender, outcomes) {
	t.Helper()
	out := make(outcomes, 16)
	opts.Observe = out.observe
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	s := webhook.New(opts)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, out
}

func TestNotifyPostsSlackJSONWithoutBlockingTheCaller(t *testing.T) {
	release := make(chan struct{})
	type got struct {
		contentType string
		body        map[string]any
	}
	received := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the receiver is slow: the caller must not wait for it
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		received <- got{r.Header.Get("Content-Type"), body}
	}))
	defer srv.Close()
	defer close(release)
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL + "/services/T0/B0/secret"), Policy: loopback})

	queued := s.Notify("acme", webhook.Message{Text: "agent *a1* called `delete_repo`", Blocks: []any{webhook.Section("details")}})
	if !queued {
		t.Fatal("Notify did not queue the message")
	}
	release <- struct{}{} // Notify has returned while the receiver was still holding the request
	g := <-received
	if g.contentType != "application/json" {
		t.Errorf("Content-Type %q, want application/json", g.contentType)
	}
	if g.body["text"] != "agent *a1* called `delete_repo`" {
		t.Errorf("text %v", g.body["text"])
	}
	blocks, _ := g.body["blocks"].([]any)
	if len(blocks) != 1 || blocks[0].(map[string]any)["type"] != "section" {
		t.Errorf("blocks %v, want one section", g.body["blocks"])
	}
	if o := out.next(t); o != "acme:delivered" {
		t.Errorf("outcome %s", o)
	}
}

func TestRetriesServerErrorsAndRateLimitsThenDelivers(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL), Policy: loopback})
	s.Notify("acme", webhook.Message{Text: "hello"})
	if o := out.next(t); o != "acme:delivered" {
		t.Fatalf("outcome %s", o)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestGivesUpAfterTheAttemptsAndOnClientErrors(t *testing.T) {
	var calls atomic.Int32
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL), Policy: loopback, Attempts: 3})

	status.Store(http.StatusInternalServerError)
	s.Notify("acme", webhook.Message{Text: "a"})
	if o := out.next(t); o != "acme:failed" {
		t.Fatalf("outcome %s", o)
	}
	if n := calls.Swap(0); n != 3 {
		t.Errorf("%d attempts on 500, want 3", n)
	}

	status.Store(http.StatusNotFound) // a revoked Slack webhook: retrying does not help
	s.Notify("acme", webhook.Message{Text: "b"})
	if o := out.next(t); o != "acme:failed" {
		t.Fatalf("outcome %s", o)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d attempts on 404, want 1", n)
	}
}

func TestRefusesAddressesThePolicyForbids(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer tls.Close()

	// The default policy: public addresses only. The loopback servers are out of reach over
	// http and https alike, and nothing is retried.
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL), Policy: ssrf.Policy{}})
	s.Notify("acme", webhook.Message{Text: "x"})
	if o := out.next(t); o != "acme:failed" {
		t.Errorf("outcome %s", o)
	}
	err := webhook.Test(context.Background(), ssrf.Policy{}, tls.URL+"/hooks/secret-part", webhook.Message{Text: "x"})
	if !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Errorf("https to loopback: %v, want ErrForbiddenAddress", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret-part") {
		t.Errorf("the error shows the URL: %v", err)
	}
	// Cloud metadata stays out of reach whatever the operator allowed.
	err = webhook.Test(context.Background(), loopback, "http://169.254.169.254/latest", webhook.Message{Text: "x"})
	if err == nil {
		t.Error("the metadata address was reached")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the servers got %d requests", n)
	}
}

func TestPlainHTTPOnlyToTheOperatorsNetworks(t *testing.T) {
	// Every address allowed (a test policy): https to anything, but plain http still only to
	// non-public addresses; a public address is refused before any byte is sent.
	err := webhook.Test(context.Background(), ssrf.AllowAll(), "http://93.184.215.14/hook", webhook.Message{Text: "x"})
	if !errors.Is(err, ssrf.ErrSchemeNotAllowed) {
		t.Errorf("plain http to a public address: %v, want ErrSchemeNotAllowed", err)
	}
}

func TestNeverFollowsRedirects(t *testing.T) {
	var reached atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	if err := webhook.Test(context.Background(), loopback, srv.URL, webhook.Message{Text: "x"}); err == nil {
		t.Error("a redirect counted as delivered")
	}
	if reached.Load() {
		t.Error("the redirect was followed")
	}
}

func TestAFullQueueDropsInsteadOfWaiting(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL), Policy: loopback, QueueSize: 1, Workers: 1})
	s.Notify("acme", webhook.Message{Text: "1"}) // taken by the worker, which then waits on the server
	deadline := time.Now().Add(10 * time.Second)
	for !s.Notify("acme", webhook.Message{Text: "2"}) { // fills the queue once the worker holds 1
		if time.Now().After(deadline) {
			t.Fatal("the queue never took a message")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for s.Notify("acme", webhook.Message{Text: "3"}) {
		if time.Now().After(deadline) {
			t.Fatal("the queue never filled")
		}
	}
	if o := out.next(t); o != "acme:dropped" {
		t.Errorf("outcome %s, want dropped", o)
	}
}

func TestAHostWithoutWebhookSendsNothing(t *testing.T) {
	s, out := newSender(t, webhook.Options{URLs: fixedURL(""), Policy: loopback})
	s.Notify("acme", webhook.Message{Text: "x"})
	if o := out.next(t); o != "acme:no_webhook" {
		t.Errorf("outcome %s", o)
	}
}

func TestBodiesAreBounded(t *testing.T) {
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer srv.Close()
	s, out := newSender(t, webhook.Options{URLs: fixedURL(srv.URL), Policy: loopback})
	huge := strings.Repeat("é", 100_000)
	blocks := make([]any, 50)
	for i := range blocks {
		blocks[i] = webhook.Section(huge)
	}
	s.Notify("acme", webhook.Message{Text: huge, Blocks: blocks})
	b := <-bodies
	out.next(t)
	if len(b) > webhook.MaxBodyBytes {
		t.Errorf("body of %d bytes, want at most %d", len(b), webhook.MaxBodyBytes)
	}
	var m webhook.Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if !strings.HasSuffix(m.Text, "…") || len(m.Text) > webhook.MaxTextBytes {
		t.Errorf("text of %d bytes not cut to %d with an ellipsis", len(m.Text), webhook.MaxTextBytes)
	}
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	s := webhook.New(webhook.Options{URLs: fixedURL(srv.URL), Policy: loopback, Workers: 1})
	for range 5 {
		s.Notify("acme", webhook.Message{Text: "x"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.Close(ctx)
	if n := calls.Load(); n != 5 {
		t.Errorf("%d delivered before Close returned, want 5", n)
	}
	if s.Notify("acme", webhook.Message{Text: "late"}) {
		t.Error("a closed sender queued a message")
	}
}

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.slack.com/services/T0/B0/XXXX", true},
		{"http://relay.internal:8080/hook", true},
		{"", false},
		{"ftp://example.com/x", false},
		{"https:///nohost", false},
		{"https://user:pw@example.com/x", false},
		{"https://example.com/x#frag", false},
		{"https://example.com/a b", false},
		{"/relative", false},
		{"https://example.com/" + strings.Repeat("a", webhook.MaxURLBytes), false},
	} {
		err := webhook.ValidateURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateURL(%.40q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, webhook.ErrInvalidURL) {
			t.Errorf("ValidateURL(%.40q) = %v, not ErrInvalidURL", tc.url, err)
		}
	}
}

func TestSealedURLOpensOnlyForItsHost(t *testing.T) {
	key := make([]byte, secrets.KeySize)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := webhook.SealURL(keys, "acme", "https://hooks.example.com/secret")
	if strings.Contains(string(sealed), "secret") {
		t.Error("the sealed value shows the URL")
	}
	got, err := webhook.OpenURL(keys, "acme", sealed)
	if err != nil || got != "https://hooks.example.com/secret" {
		t.Errorf("OpenURL = %q, %v", got, err)
	}
	if _, err := webhook.OpenURL(keys, "other", sealed); err == nil {
		t.Error("another host opened the sealed URL")
	}
}
