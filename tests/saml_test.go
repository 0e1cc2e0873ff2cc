package tests

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/samlidp"
)

// TestSAMLTypeScriptSDK is the SAML sign-in end to end through the real binary: host acme
// signs people in at a real SAML IdP on loopback (configured with the admin CLI, which shows
// the SP details; the IdP reads the gateway's SP metadata from its entity ID); a person signs
// in there, consents an agent, and the official TypeScript SDK client calls a tool with the
// token that came out. The sign-in is in the host's audit log.
func TestSAMLTypeScriptSDK(t *testing.T) {
	s := setupTracker(t)
	idp := samlidp.Start(t)
	idp.AddUser("alice", "idp password", s.email)

	cfg, _ := json.Marshal(map[string]any{"idp_metadata_xml": idp.Metadata(), "email_verified": true})
	file := filepath.Join(t.TempDir(), "saml.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, s.p, s.admin, "host", "auth", "set", "acme", "saml", "--enable", "--config", "@"+file)
	issuer := s.p.url + "/h/acme"
	for _, want := range []string{"entity ID (audience): " + issuer + "/auth/saml/metadata", "ACS URL (HTTP-POST):  " + issuer + "/auth/saml/acs"} {
		if !strings.Contains(out, want) {
			t.Errorf("auth set output lacks %q:\n%s", want, out)
		}
	}
	var settings struct {
		Methods []struct {
			Method          string `json:"method"`
			ServiceProvider *struct {
				EntityID    string `json:"entity_id"`
				ACSURL      string `json:"acs_url"`
				MetadataURL string `json:"metadata_url"`
			} `json:"service_provider"`
		} `json:"methods"`
	}
	cliJSON(t, s.p, s.admin, &settings, "host", "auth", "list", "acme")
	var metadataURL, entityID, acs string
	for _, m := range settings.Methods {
		if m.Method == "saml" && m.ServiceProvider != nil {
			metadataURL, entityID, acs = m.ServiceProvider.MetadataURL, m.ServiceProvider.EntityID, m.ServiceProvider.ACSURL
		}
	}
	// The metadata the API points at is the gateway's, with the entity ID and ACS it shows.
	resp, err := http.Get(metadataURL)
	if err != nil {
		t.Fatal(err)
	}
	md := readAll(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "samlmetadata+xml") ||
		!strings.Contains(md, `entityID="`+entityID+`"`) || !strings.Contains(md, `Location="`+acs+`"`) || !strings.Contains(md, "X509Certificate") {
		t.Fatalf("SP metadata at %q: %d %s\n%s", metadataURL, resp.StatusCode, resp.Header.Get("Content-Type"), md)
	}
	// Bad settings are refused with the reason.
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"idp_metadata_url":"http://idp.example/metadata"}`), 0o600)
	if out, err := run(t, 30*time.Second, "admin", "--url", s.p.url, "--token", s.admin, "host", "auth", "set", "acme", "saml", "--config", "@"+bad); err == nil || !strings.Contains(out, "https") {
		t.Errorf("http metadata URL accepted: %v\n%s", err, out)
	}

	stdout := runNode(t, "saml.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD=not used", "IDP_USER=alice", "IDP_PASSWORD=idp password")
	var res struct {
		OK            bool   `json:"ok"`
		SignedRequest bool   `json:"signed_request"`
		ACS           string `json:"acs"`
		SAMLSignedIn  bool   `json:"saml_signed_in"`
		Consented     bool   `json:"consented"`
		Allowed       string `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("saml.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK || !res.SignedRequest || res.ACS != acs || !res.SAMLSignedIn || !res.Consented || !strings.Contains(res.Allowed, "create_issue called: saml") {
		t.Fatalf("saml.mjs result: %+v", res)
	}

	// A response the gateway cannot verify is refused with a page, and audited.
	forged := "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" InResponseTo=\"id-x\"/>"
	resp, err = http.PostForm(acs, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(forged))}})
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "could not be verified") {
		t.Errorf("forged response: %d %s", resp.StatusCode, page)
	}

	var entries []struct {
		Action    string `json:"action"`
		Method    string `json:"method"`
		UserEmail string `json:"user_email"`
		Reason    string `json:"reason"`
	}
	cliJSON(t, s.p, s.admin, &entries, "audit", "list", "--host", "acme", "--all")
	found := false
	for _, e := range entries {
		if e.Action == "signin.success" && e.Method == "saml" && e.UserEmail == s.email {
			found = true
			if !strings.Contains(e.Reason, "alice") {
				t.Errorf("SAML sign-in entry without the IdP's subject: %+v", e)
			}
		}
	}
	if !found {
		t.Fatalf("no audit entry of alice's SAML sign-in: %+v", entries)
	}
	found = false
	for _, e := range entries {
		found = found || e.Action == "signin.failure" && e.Method == "saml" && strings.Contains(e.Reason, "refused")
	}
	if !found {
		t.Errorf("no audit entry of the refused response: %+v", entries)
	}
}
