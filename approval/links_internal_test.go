package approval

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

func newService(t *testing.T, mailer Mailer) (*Service, store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	urls, err := tenant.NewURLs("https://gw.example.com", false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, URLs: urls, LinkKey: bytes.Repeat([]byte{9}, 32), Mailer: mailer})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// A link is valid for its host until it expires; any change of its token, another host, or
// another key refuses it.
func TestLinksAreSignedAndExpire(t *testing.T) {
	s, _ := newService(t, nil)
	now := time.Now()
	s.now = func() time.Time { return now }
	tok := s.linkToken(link{Host: "acme", Call: "hc_1", Action: "approve", Email: "ann@acme.test", Expires: now.Add(time.Minute).Unix()})
	l, err := s.readLink("acme", tok)
	if err != nil || l.Call != "hc_1" || l.Action != "approve" || l.Email != "ann@acme.test" {
		t.Fatalf("valid link: %+v %v", l, err)
	}
	payload, mac, _ := strings.Cut(tok, ".")
	forged := s.linkToken(link{Host: "acme", Call: "hc_1", Action: "deny", Email: "ann@acme.test", Expires: now.Add(time.Minute).Unix()})
	fp, _, _ := strings.Cut(forged, ".")
	for name, bad := range map[string]string{
		"action swapped under the old MAC": fp + "." + mac,
		"MAC cut":                          payload + "." + mac[:10],
		"no MAC":                           payload,
		"empty":                            "",
		"oversized":                        strings.Repeat("a", maxLinkToken+1),
	} {
		if _, err := s.readLink("acme", bad); !errors.Is(err, errBadLink) {
			t.Errorf("%s: %v, want a bad link", name, err)
		}
	}
	if _, err := s.readLink("beta", tok); !errors.Is(err, errBadLink) {
		t.Errorf("another host's link: %v", err)
	}
	other, _ := newService(t, nil)
	other.cfg.LinkKey = bytes.Repeat([]byte{8}, 32)
	if _, err := other.readLink("acme", tok); !errors.Is(err, errBadLink) {
		t.Errorf("a link checked under another key: %v", err)
	}
	s.now = func() time.Time { return now.Add(2 * time.Minute) }
	if _, err := s.readLink("acme", tok); !errors.Is(err, errExpiredLink) {
		t.Errorf("an expired link: %v", err)
	}
}

// Each approver gets an email with their own approve and deny links; the agent's human when
// the rule names nobody.
func TestNotifyEmailsEachApprover(t *testing.T) {
	srv := smtpserver.Start(t, smtpserver.Options{})
	m, err := mail.New(mail.Settings{URL: srv.URL(), From: "gw@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s, st := newService(t, m)
	ctx := context.Background()
	if _, err := st.CreateHost(ctx, store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: "ann@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := store.HeldCall{ID: "hc_1", Host: "acme", AgentID: "a1", AgentName: "Cursor", UserID: u.ID, Server: "github", Tool: "delete_repo",
		Arguments: `{"repo":"acme/site"}`, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	s.NotifyHeld(ctx, c)
	msg := srv.WaitFor(t, "ann@acme.test", 1)
	if !strings.Contains(msg.Header.Get("Subject"), "delete_repo") || !strings.Contains(msg.Body, `{"repo":"acme/site"}`) ||
		!strings.Contains(msg.Body, "Approve: https://gw.example.com/h/acme/approvals/") {
		t.Fatalf("email %q:\n%s", msg.Header.Get("Subject"), msg.Body)
	}
	c.ID, c.Approvers = "hc_2", []string{"sec@acme.test", "lead@acme.test"}
	s.NotifyHeld(ctx, c)
	for _, to := range c.Approvers {
		if msg := srv.WaitFor(t, to, 1); !strings.Contains(msg.Body, "Deny: ") {
			t.Fatalf("email to %s:\n%s", to, msg.Body)
		}
	}
}
