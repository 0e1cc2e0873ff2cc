package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
)

// TestWebhookIsWriteOnlyAndTestable: a host's webhook URL is set, shown only as set (in the
// host document and its own route, never the URL, not in the audit log either), kept by other
// PATCHes, tested with a real message to a receiver on loopback, and removed; a bad URL is
// refused with the reason; another host's token cannot touch it.
func TestWebhookIsWriteOnlyAndTestable(t *testing.T) {
	e := newEnv(t)
	texts := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		texts <- m.Text
	}))
	defer receiver.Close()
	hookURL := receiver.URL + "/services/T000/B000/topsecretpart"

	var st admin.WebhookStatus
	e.must(200, "GET", "/api/v1/hosts/acme/webhook", e.acme, nil, &st)
	if st.Set {
		t.Fatal("a new host has a webhook")
	}
	e.problem(409, "POST", "/api/v1/hosts/acme/webhook/test", e.acme, nil, "no webhook")
	e.problem(400, "PUT", "/api/v1/hosts/acme/webhook", e.acme, admin.WebhookSet{URL: "ftp://x/y"}, "scheme")
	e.problem(400, "PUT", "/api/v1/hosts/acme/webhook", e.acme, admin.WebhookSet{URL: "https://u:p@x/y"}, "user information")

	code, body := e.do("PUT", "/api/v1/hosts/acme/webhook", e.acme, admin.WebhookSet{URL: hookURL})
	if code != 200 || strings.Contains(string(body), "topsecretpart") {
		t.Fatalf("PUT webhook = %d %s", code, body)
	}
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{AuditArguments: ptr(true)}}, nil)
	code, body = e.do("GET", "/api/v1/hosts/acme", e.acme, nil)
	var h admin.Host
	_ = json.Unmarshal(body, &h)
	if code != 200 || !h.Settings.Webhook.Set || h.Settings.Webhook.UpdatedAt == nil || strings.Contains(string(body), "topsecretpart") || strings.Contains(string(body), "sealed") {
		t.Fatalf("host document = %d %s", code, body)
	}
	e.problem(403, "PUT", "/api/v1/hosts/acme/webhook", e.beta, admin.WebhookSet{URL: hookURL})

	var res admin.WebhookTestResult
	e.must(200, "POST", "/api/v1/hosts/acme/webhook/test", e.acme, nil, &res)
	if !res.Delivered || res.Error != "" {
		t.Fatalf("test result %+v", res)
	}
	if got := <-texts; !strings.Contains(got, "test message for host acme") {
		t.Errorf("test message text %q", got)
	}

	// A receiver that is gone: delivered false, the reason, not the URL.
	receiver.Close()
	e.must(200, "POST", "/api/v1/hosts/acme/webhook/test", e.acme, nil, &res)
	if res.Delivered || res.Error == "" || strings.Contains(res.Error, "topsecretpart") {
		t.Errorf("test result with the receiver gone %+v", res)
	}

	e.must(204, "DELETE", "/api/v1/hosts/acme/webhook", e.acme, nil, nil)
	e.must(200, "GET", "/api/v1/hosts/acme/webhook", e.acme, nil, &st)
	if st.Set {
		t.Error("the webhook is still set after DELETE")
	}

	entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme"}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		js, _ := json.Marshal(en)
		if strings.Contains(string(js), "topsecretpart") {
			t.Errorf("audit entry shows the URL: %s", js)
		}
		if strings.HasPrefix(en.Action, "webhook.") {
			actions = append(actions, en.Action+" "+en.OldValue+"→"+en.NewValue)
		}
	}
	if strings.Join(actions, "; ") != "webhook.set not set→set; webhook.delete set→not set" {
		t.Errorf("audited webhook changes %q", actions)
	}
}
