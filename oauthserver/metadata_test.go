package oauthserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// roundTrip encodes m as a metadata document is served and decodes it back, so tests see
// exactly what clients see.
func roundTrip(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func strs(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestAuthorizationServerMetadata(t *testing.T) {
	for _, issuer := range []string{"https://gw.example.com", "https://gw.example.com/h/acme", "https://acme.gw.example.com"} {
		m := roundTrip(t, AuthorizationServerMetadata(issuer))
		wantStrings := map[string]string{
			"issuer":                 issuer,
			"authorization_endpoint": issuer + "/authorize",
			"token_endpoint":         issuer + "/token",
			"registration_endpoint":  issuer + "/register",
			"revocation_endpoint":    issuer + "/revoke",
			"introspection_endpoint": issuer + "/introspect",
			"jwks_uri":               issuer + "/.well-known/jwks.json",
		}
		for k, want := range wantStrings {
			if got := m[k]; got != want {
				t.Errorf("%s: %s = %v, want %q", issuer, k, got, want)
			}
		}
		wantLists := map[string][]string{
			"response_types_supported":                      {"code"},
			"grant_types_supported":                         {"authorization_code", "refresh_token"},
			"code_challenge_methods_supported":              {"S256"},
			"token_endpoint_auth_methods_supported":         {"none", "client_secret_basic", "client_secret_post"},
			"revocation_endpoint_auth_methods_supported":    {"none", "client_secret_basic", "client_secret_post"},
			"introspection_endpoint_auth_methods_supported": {"client_secret_basic"},
			"scopes_supported":                              {"mcp"},
		}
		for k, want := range wantLists {
			if got := strs(m[k]); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %v, want %v", issuer, k, got, want)
			}
		}
		for _, k := range []string{"client_id_metadata_document_supported", "authorization_response_iss_parameter_supported"} {
			if m[k] != true {
				t.Errorf("%s: %s = %v, want true", issuer, k, m[k])
			}
		}
		// OAuth 2.1: no implicit flow, no plain PKCE, no password grant anywhere.
		b, _ := json.Marshal(m)
		for _, bad := range []string{`"token"`, `"plain"`, `"password"`, `"implicit"`, `"id_token"`} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s: metadata advertises %s: %s", issuer, bad, b)
			}
		}
		if _, ok := m["subject_types_supported"]; ok {
			t.Errorf("RFC 8414 metadata must not claim OpenID fields")
		}
	}
}

func TestAuthorizationServerMetadataIsFreshEachCall(t *testing.T) {
	a := AuthorizationServerMetadata("https://gw.example.com")
	a["service_documentation"] = "https://docs.example.com"
	a["scopes_supported"].([]string)[0] = "mutated"
	b := AuthorizationServerMetadata("https://gw.example.com")
	if _, ok := b["service_documentation"]; ok {
		t.Fatal("a caller's addition leaked into the next document")
	}
	if b["scopes_supported"].([]string)[0] != MCPScope {
		t.Fatal("a caller's mutation leaked into the next document")
	}
}

func TestOpenIDConfiguration(t *testing.T) {
	issuer := "https://gw.example.com/h/acme"
	m := roundTrip(t, OpenIDConfiguration(issuer))
	as := roundTrip(t, AuthorizationServerMetadata(issuer))
	for k, v := range as {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %v, want %v (as in RFC 8414 metadata)", k, m[k], v)
		}
	}
	if got := strs(m["subject_types_supported"]); !reflect.DeepEqual(got, []string{"public"}) {
		t.Errorf("subject_types_supported = %v", got)
	}
	if got := strs(m["id_token_signing_alg_values_supported"]); !reflect.DeepEqual(got, []string{"ES256"}) {
		t.Errorf("id_token_signing_alg_values_supported = %v", got)
	}
	// Required by OpenID Connect Discovery 1.0 §3.
	for _, k := range []string{"issuer", "authorization_endpoint", "jwks_uri", "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	m := roundTrip(t, ProtectedResourceMetadata("https://gw.example.com/h/acme/mcp/linear", "https://gw.example.com/h/acme"))
	if m["resource"] != "https://gw.example.com/h/acme/mcp/linear" {
		t.Errorf("resource = %v", m["resource"])
	}
	if got := strs(m["authorization_servers"]); !reflect.DeepEqual(got, []string{"https://gw.example.com/h/acme"}) {
		t.Errorf("authorization_servers = %v", got)
	}
	if got := strs(m["bearer_methods_supported"]); !reflect.DeepEqual(got, []string{"header"}) {
		t.Errorf("bearer_methods_supported = %v", got)
	}
	if got := strs(m["scopes_supported"]); !reflect.DeepEqual(got, []string{"mcp"}) {
		t.Errorf("scopes_supported = %v", got)
	}
}

func TestWellKnownPaths(t *testing.T) {
	cases := []struct{ got, want string }{
		{AuthorizationServerMetadataPath(""), "/.well-known/oauth-authorization-server"},
		{AuthorizationServerMetadataPath("/h/acme"), "/.well-known/oauth-authorization-server/h/acme"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if got, want := OpenIDConfigurationPaths(""), []string{"/.well-known/openid-configuration"}; !reflect.DeepEqual(got, want) {
		t.Errorf("OpenIDConfigurationPaths(\"\") = %v, want %v", got, want)
	}
	if got, want := OpenIDConfigurationPaths("/h/acme"), []string{"/.well-known/openid-configuration/h/acme", "/h/acme/.well-known/openid-configuration"}; !reflect.DeepEqual(got, want) {
		t.Errorf("OpenIDConfigurationPaths(/h/acme) = %v, want %v", got, want)
	}
}

func TestMetadataHandlers(t *testing.T) {
	issuerFor := func(r *http.Request) (string, bool) {
		if r.Host == "unknown.example.com" {
			return "", false
		}
		return "https://" + r.Host, true
	}
	asHandler := AuthorizationServerMetadataHandler(issuerFor)
	oidcHandler := OpenIDConfigurationHandler(issuerFor)
	prmHandler := ProtectedResourceMetadataHandler(func(r *http.Request) (string, string, bool) {
		return "https://" + r.Host + "/mcp", "https://" + r.Host, r.Host != "unknown.example.com"
	})

	for name, h := range map[string]http.Handler{"as": asHandler, "oidc": oidcHandler, "prm": prmHandler} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "https://gw.example.com/.well-known/x", nil)
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=3600" {
				t.Errorf("Cache-Control %q", cc)
			}
			if o := rec.Header().Get("Access-Control-Allow-Origin"); o != "*" {
				t.Errorf("Access-Control-Allow-Origin %q", o)
			}
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
			}
			if name == "prm" {
				if doc["resource"] != "https://gw.example.com/mcp" {
					t.Errorf("resource %v", doc["resource"])
				}
			} else if doc["issuer"] != "https://gw.example.com" {
				t.Errorf("issuer %v", doc["issuer"])
			}
			if _, ok := doc["subject_types_supported"]; ok != (name == "oidc") {
				t.Errorf("subject_types_supported present = %v", ok)
			}

			// HEAD
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "https://gw.example.com/.well-known/x", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("HEAD status %d", rec.Code)
			}

			// unknown host
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://unknown.example.com/.well-known/x", nil))
			if rec.Code != http.StatusNotFound {
				t.Errorf("unknown host: status %d", rec.Code)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "" {
				t.Errorf("a 404 must not be cached publicly: Cache-Control %q", cc)
			}

			// wrong method
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "https://gw.example.com/.well-known/x", strings.NewReader("{}")))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
				t.Errorf("POST: status %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
			}

			// CORS preflight (MCP clients send MCP-Protocol-Version)
			rec = httptest.NewRecorder()
			req = httptest.NewRequest(http.MethodOptions, "https://gw.example.com/.well-known/x", nil)
			req.Header.Set("Origin", "https://inspector.example.com")
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "mcp-protocol-version")
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("OPTIONS: status %d, headers %v", rec.Code, rec.Header())
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusTeapot, map[string]string{"a": "<b>"})
	if rec.Code != http.StatusTeapot || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	var m map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["a"] != "<b>" {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	WriteJSON(rec, http.StatusOK, map[string]any{"bad": make(chan int)})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "server_error") {
		t.Fatalf("unencodable value: status %d body %s", rec.Code, rec.Body)
	}
}
