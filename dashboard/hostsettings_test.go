package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/tenant"
)

// TestHostSettingsForm: the host's settings form covers the API's settings (sign-in domains,
// argument validation, result filtering, rate limits…), shows what it saved, is refused whole
// when one value is wrong, and the emergency stop needs its confirmation.
func TestHostSettingsForm(t *testing.T) {
	e := newEnv(t)
	e.human("acme", "boss@acme.test", true)
	admin := e.signIn("boss@acme.test", "acme")
	const host = "/dashboard/hosts/acme"

	_, page, _ := admin.get(host)
	form := formValues(t, page, host+"/settings")
	if got := form["dlp_kind"]; len(got) < 10 {
		t.Fatalf("every built-in detector is on by default, the form shows %v", got)
	}
	form.Set("sign_in_domains", "acme.test, acme.example")
	form.Set("argument_validation", "off")
	form.Set("audit_arguments", "on")
	form.Set("dlp_mode", "redact")
	form["dlp_kind"] = []string{"email", "jwt"}
	form.Set("dlp_patterns", "ticket = TCK-[0-9]{6}\n")
	form.Set("rate-0-scope", "agent_tool")
	form.Set("rate-0-server", "tracker")
	form.Set("rate-0-per_minute", "30")
	form.Set("rate-0-burst", "5")
	form.Set("access_token_ttl_seconds", "600")
	if status, body, _ := admin.post(host+"/settings", form); status != http.StatusSeeOther {
		t.Fatalf("save settings = %d\n%s", status, body)
	}
	_, page, _ = admin.get(host + "?done=settings")
	saved := formValues(t, page, host+"/settings")
	for k, want := range map[string]string{"sign_in_domains": "acme.test, acme.example", "argument_validation": "off", "audit_arguments": "on",
		"dlp_mode": "redact", "dlp_patterns": "ticket = TCK-[0-9]{6}\n", "rate-0-scope": "agent_tool", "rate-0-server": "tracker", "rate-0-per_minute": "30",
		"rate-0-burst": "5", "rate-1-per_minute": "", "access_token_ttl_seconds": "600"} {
		if got := saved.Get(k); got != want {
			t.Errorf("after saving, %s = %q; want %q", k, got, want)
		}
	}
	if !strings.Contains(page, "ticket = TCK-[0-9]{6}") {
		t.Error("the custom pattern is not shown")
	}
	if got := strings.Join(saved["dlp_kind"], ","); got != "jwt,email" && got != "email,jwt" {
		t.Errorf("detectors after saving: %s", got)
	}
	// Saving the form as shown changes nothing.
	if status, body, _ := admin.post(host+"/settings", saved); status != http.StatusSeeOther {
		t.Fatalf("save again = %d\n%s", status, body)
	}
	_, page, _ = admin.get(host)
	again := formValues(t, page, host+"/settings")
	for k := range saved {
		if k != "csrf_token" && strings.Join(again[k], ",") != strings.Join(saved[k], ",") {
			t.Errorf("saving the form unchanged changed %s: %v → %v", k, saved[k], again[k])
		}
	}

	// Refused whole: a pattern line without "=", a bad regular expression, a rate without scope.
	for _, tc := range []struct {
		field, value, want string
	}{
		{"dlp_patterns", "TCK-[0-9]+", "name = regular expression"},
		{"dlp_patterns", "ticket = TCK-(", "ticket"},
		{"rate-0-per_minute", "many", "whole number"},
		{"rate-0-scope", "galaxy", "scope"},
	} {
		bad := formValues(t, page, host+"/settings")
		bad.Set("name", "Changed")
		bad.Set(tc.field, tc.value)
		status, body, _ := admin.post(host+"/settings", bad)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s = %q: %d; want 400 naming %q\n%s", tc.field, tc.value, status, tc.want, body)
		}
	}
	if _, page, _ = admin.get(host); formValues(t, page, host+"/settings").Get("name") == "Changed" {
		t.Fatal("a refused form changed the name")
	}

	// Rate limit removed by emptying its row.
	rm := formValues(t, page, host+"/settings")
	rm.Set("rate-0-per_minute", "")
	admin.post(host+"/settings", rm)
	if _, page, _ = admin.get(host); formValues(t, page, host+"/settings").Get("rate-0-per_minute") != "" {
		t.Fatal("the emptied rate limit is still there")
	}

	// Emergency stop: the confirmation is needed; the host page shows the stop; lift it.
	_, page, _ = admin.get(host + "/emergency-stop")
	stop := formValues(t, page, host+"/emergency-stop")
	stop.Set("reason", "leaked token")
	if status, _, _ := admin.post(host+"/emergency-stop", stop); status != http.StatusBadRequest {
		t.Fatalf("stop without confirmation = %d", status)
	}
	stop.Set("confirm", "yes")
	if status, body, _ := admin.post(host+"/emergency-stop", stop); status != http.StatusSeeOther {
		t.Fatalf("stop = %d\n%s", status, body)
	}
	_, page, _ = admin.get(host)
	if !strings.Contains(page, "Stopped since") || !strings.Contains(page, "leaked token") {
		t.Fatalf("the host page does not show the stop:\n%s", page)
	}
	if status, _, _ := admin.post(host+"/emergency-stop/lift", formValues(t, page, host+"/emergency-stop/lift")); status != http.StatusSeeOther {
		t.Fatalf("lift = %d", status)
	}
	if _, page, _ = admin.get(host); strings.Contains(page, "Stopped since") {
		t.Fatal("the stop is still shown after lifting it")
	}
}

// TestSignInMethodsPage: every method is listed; a method's domains, settings and write-only
// secret are saved (the secret never shown, kept when the field is left empty, removed on
// request); a method goes back to its default.
func TestSignInMethodsPage(t *testing.T) {
	e := newEnv(t)
	e.human(tenant.DefaultHost, "op@example.com", true)
	op := e.signIn("op@example.com", "")
	const auth = "/dashboard/hosts/acme/auth"

	status, page, _ := op.get(auth)
	if status != http.StatusOK {
		t.Fatalf("auth page = %d\n%s", status, page)
	}
	for _, m := range []string{"password", "oidc", "github", "saml"} {
		if !strings.Contains(page, `id="method-`+m+`"`) {
			t.Errorf("method %s not listed", m)
		}
	}
	pw := formValues(t, page, auth+"/password")
	if pw.Get("enabled") != "on" {
		t.Fatalf("password is on by default: %v", pw)
	}
	pw.Set("allowed_domains", "acme.test")
	if status, body, _ := op.post(auth+"/password", pw); status != http.StatusSeeOther {
		t.Fatalf("save password = %d\n%s", status, body)
	}
	gh := formValues(t, page, auth+"/github")
	gh.Set("enabled", "on")
	gh.Set("config", `{"client_id":"Iv1.abc"}`)
	gh.Set("secret", "github-client-secret-xyz")
	gh.Set("force_redirect_domains", "acme.test")
	if status, body, _ := op.post(auth+"/github", gh); status != http.StatusSeeOther {
		t.Fatalf("save github = %d\n%s", status, body)
	}
	_, page, _ = op.get(auth)
	if strings.Contains(page, "github-client-secret-xyz") {
		t.Fatal("the secret is shown")
	}
	gh = formValues(t, page, auth+"/github")
	if gh.Get("enabled") != "on" || gh.Get("force_redirect_domains") != "acme.test" || !strings.Contains(gh.Get("config"), "Iv1.abc") || !strings.Contains(page, "(set; empty keeps it)") {
		t.Fatalf("github after saving: %v", gh)
	}
	if formValues(t, page, auth+"/password").Get("allowed_domains") != "acme.test" {
		t.Fatal("password's domains not saved")
	}
	// Saved again with the secret field empty: kept.
	if status, body, _ := op.post(auth+"/github", gh); status != http.StatusSeeOther {
		t.Fatalf("save github again = %d\n%s", status, body)
	}
	if _, page, _ = op.get(auth); !strings.Contains(page, "(set; empty keeps it)") {
		t.Fatal("saving without a secret removed it")
	}
	// Removed on request.
	gh.Set("remove_secret", "on")
	if status, body, _ := op.post(auth+"/github", gh); status != http.StatusSeeOther {
		t.Fatalf("remove the secret = %d\n%s", status, body)
	}
	if _, page, _ = op.get(auth); strings.Contains(page, "(set; empty keeps it)") {
		t.Fatal("the secret was not removed")
	}
	// Back to the default.
	if status, body, _ := op.post(auth+"/github/reset", url.Values{"csrf_token": {op.csrf()}}); status != http.StatusSeeOther {
		t.Fatalf("reset = %d\n%s", status, body)
	}
	if _, page, _ = op.get(auth); formValues(t, page, auth+"/github").Get("enabled") == "on" || strings.Contains(page, "(set; empty keeps it)") {
		t.Fatal("github is not back to its default")
	}
}
