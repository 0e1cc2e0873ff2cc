package tests

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOAuthDiscoveryAndRegistrationThroughTheBinary checks what an MCP client finds at a host's
// URLs: the path-inserted metadata documents (RFC 8414, RFC 9728), the JWKS, dynamic client
// registration, and the sign-in page the authorization request leads to.
func TestOAuthDiscoveryAndRegistrationThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, token, "host", "create", "acme", "--exact")
	issuer := p.url + "/h/acme"

	var as map[string]any
	getDoc(t, p.url+"/.well-known/oauth-authorization-server/h/acme", &as)
	if as["issuer"] != issuer || as["authorization_endpoint"] != issuer+"/authorize" || as["registration_endpoint"] != issuer+"/register" {
		t.Fatalf("authorization server metadata = %v", as)
	}
	if methods, _ := json.Marshal(as["code_challenge_methods_supported"]); string(methods) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", methods)
	}
	if as["client_id_metadata_document_supported"] != true || as["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("metadata lacks CIMD / iss support: %v", as)
	}
	var prm map[string]any
	getDoc(t, p.url+"/.well-known/oauth-protected-resource/h/acme/mcp", &prm)
	if prm["resource"] != issuer+"/mcp" || !strings.Contains(string(mustJSON(prm["authorization_servers"])), issuer) {
		t.Fatalf("protected resource metadata = %v", prm)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	getDoc(t, issuer+"/.well-known/jwks.json", &jwks)
	if len(jwks.Keys) == 0 || jwks.Keys[0]["alg"] != "ES256" || jwks.Keys[0]["d"] != nil {
		t.Fatalf("JWKS = %v", jwks)
	}

	reg, _ := json.Marshal(map[string]any{
		"client_name": "e2e client", "redirect_uris": []string{"http://127.0.0.1:33418/callback"},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
	})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	var client map[string]any
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &client) != nil || client["client_id"] == "" {
		t.Fatalf("registration = %d %s", resp.StatusCode, body)
	}

	q := url.Values{
		"response_type": {"code"}, "client_id": {client["client_id"].(string)},
		"redirect_uri": {"http://127.0.0.1:33418/callback"}, "state": {"state-123456"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		"resource": {issuer + "/mcp"}, "scope": {"mcp"},
	}
	resp, err = http.Get(issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(resp)
	for _, field := range []string{`name="email"`, `name="password"`, `name="csrf_token"`} {
		if !strings.Contains(page, field) {
			t.Fatalf("authorize led to a page without %s (status %d):\n%s", field, resp.StatusCode, page)
		}
	}
	q.Set("code_challenge_method", "plain")
	resp, err = http.Get(issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); resp.StatusCode < 400 || !strings.Contains(page, "S256") {
		t.Errorf("a plain PKCE challenge was not refused: %d", resp.StatusCode)
	}
}

func getDoc(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
