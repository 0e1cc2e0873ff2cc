package tests

import (
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

// addInvited adds a human to host with `trustgate admin human add --invite` through the
// gateway p and returns the invitation link the command printed.
func addInvited(t *testing.T, p *process, token, host, email string) string {
	t.Helper()
	var h admin.Human
	cliJSON(t, p, token, &h, "human", "add", email, "--invite", "--host", host)
	if h.Invitation == nil || !strings.Contains(h.Invitation.URL, "/invite/") {
		t.Fatalf("human add --invite: no invitation link in %+v", h)
	}
	return h.Invitation.URL
}

// claimInvitation plays the invited human: opens the link and chooses password.
func claimInvitation(t *testing.T, link, password string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	b := webclient.New(t, u.Scheme+"://"+u.Host)
	page := b.Get(link)
	if page.Status != 200 || !strings.Contains(page.Body, `name="password_confirm"`) {
		t.Fatalf("invitation page: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"password": password, "password_confirm": password})
	if page.Status != 200 || !strings.Contains(page.Body, "Your password is set") {
		t.Fatalf("accept invitation: %d %s", page.Status, page.Body)
	}
}

// addClaimed adds a human who accepted their invitation with password.
func addClaimed(t *testing.T, p *process, token, host, email, password string) {
	t.Helper()
	claimInvitation(t, addInvited(t, p, token, host, email), password)
}
