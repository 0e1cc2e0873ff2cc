package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/authzserver/permitbackend"
)

func newTestGateway(t *testing.T) *Gateway {
	t.Helper()
	g, err := New(context.Background(), Config{
		Listen:  "127.0.0.1:0",
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	g := newTestGateway(t)
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", g.routes())
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	})
	g.server.Handler = mux

	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + g.Addr() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started
	cancel() // SIGTERM arrives while /slow is in flight

	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request during shutdown: body %q, err %v", r.body, r.err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := http.Get("http://" + g.Addr() + "/healthz"); err == nil {
		t.Fatal("the gateway still accepts connections after shutdown")
	}
}

func TestReadyzNamesTheFailingPart(t *testing.T) {
	for _, c := range []struct {
		part string
		stop func(*Gateway) error
		want []string
	}{
		{"store", func(g *Gateway) error { return g.store.Close() }, []string{`"store":"failing`, `"spicedb":"ok"`}},
		{"spicedb", func(g *Gateway) error { return g.backend.Close() }, []string{`"spicedb":"failing`}},
	} {
		t.Run(c.part, func(t *testing.T) {
			g := newTestGateway(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- g.Run(ctx) }()
			url := "http://" + g.Addr() + "/readyz"
			waitStatus(t, url, http.StatusOK)

			if err := c.stop(g); err != nil {
				t.Fatal(err)
			}
			code, body := get(t, url)
			if code != http.StatusServiceUnavailable {
				t.Fatalf("readyz with %s stopped = %d %s", c.part, code, body)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("readyz with %s stopped lacks %s: %s", c.part, w, body)
				}
			}
			cancel()
			<-runErr
		})
	}
}

func TestConfigRejectsBadPublicURL(t *testing.T) {
	for _, u := range []string{"gateway.example.com", "ftp://x", "http://"} {
		c := Config{PublicURL: u}
		if err := c.complete(); err == nil {
			t.Errorf("public URL %q accepted", u)
		}
	}
	c := Config{PublicURL: "https://gw.example.com/"}
	if err := c.complete(); err != nil || c.PublicURL != "https://gw.example.com" {
		t.Errorf("public URL normalised to %q, err %v", c.PublicURL, err)
	}
}

func TestConfigAuthzBackendFlags(t *testing.T) {
	permit := Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k", PermitPDPURL: "http://127.0.0.1:7766"}
	if err := permit.complete(); err != nil {
		t.Fatalf("a complete Permit configuration: %v", err)
	}
	// Every host in an environment whose PDP it names: no default PDP needed.
	mapped := Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k", PermitHostEnvironments: []permitbackend.HostEnvironment{
		{Host: "acme", Project: "p", Environment: "e", PDPURL: "http://pdp-a"}}}
	if err := mapped.complete(); err != nil {
		t.Fatalf("a Permit configuration whose mappings name their PDPs: %v", err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{AuthzBackend: "opa"}, "want spicedb or permit"},
		{Config{AuthzBackend: AuthzPermit, PermitPDPURL: "http://127.0.0.1:7766"}, "--permit-api-key"},
		{Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k"}, "--permit-pdp-url"},
		{Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k", PermitPDPURL: "http://p", SpiceDBEndpoint: "s:50051"}, "--spicedb-endpoint"},
		{Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k", PermitPDPURL: "http://p", SchemaFile: "x.zed"}, "--schema-file"},
		{Config{PermitAPIKey: "k"}, "apply to --authz-backend permit"},
		{Config{PermitHostEnvironments: []permitbackend.HostEnvironment{{Host: "acme", Project: "p", Environment: "e"}}}, "--permit-host-environment apply"},
		{Config{AuthzBackend: AuthzPermit, PermitAPIKey: "k", PermitHostEnvironments: []permitbackend.HostEnvironment{
			{Host: "acme", Project: "p", Environment: "e", PDPURL: "http://pdp-a"}, {Host: "beta", Project: "p", Environment: "f"}}}, "beta=p/f names no PDP"},
	} {
		if err := c.cfg.complete(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("complete(%+v) = %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get(t, url)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", url, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConfigSMTPFlags(t *testing.T) {
	off := Config{}
	if err := off.complete(); err != nil || off.mailer != nil {
		t.Fatalf("no --smtp-url: err %v, mailer %v; want email off", err, off.mailer)
	}
	on := Config{SMTPURL: "smtp://gw:s3cret@mail.example.com:587", SMTPFrom: "gw@example.com"}
	if err := on.complete(); err != nil || on.mailer == nil {
		t.Fatalf("a complete SMTP configuration: err %v", err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{SMTPFrom: "gw@example.com"}, "--smtp-from applies to"},
		{Config{SMTPURL: "smtp://gw:s3cret@mail.example.com"}, "needs --smtp-from"},
		{Config{SMTPURL: "imap://gw:s3cret@mail.example.com", SMTPFrom: "gw@example.com"}, "scheme must be smtp"},
	} {
		err := c.cfg.complete()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("complete(SMTPURL %q, SMTPFrom %q) = %v, want an error naming %q", c.cfg.SMTPURL, c.cfg.SMTPFrom, err, c.want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
