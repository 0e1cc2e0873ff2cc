package oauthserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func registrationHTTPRequest(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://gw.example.com/register", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func parseRegistration(t *testing.T, body string) (*RegistrationRequest, *RegistrationError) {
	t.Helper()
	req, err := ParseRegistrationRequest(registrationHTTPRequest(body), RegistrationLimits{})
	if err == nil {
		return req, nil
	}
	var re *RegistrationError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RegistrationError", err)
	}
	return nil, re
}

func TestParseRegistrationRequestMCPClients(t *testing.T) {
	// Shapes real MCP clients send.
	cases := []struct {
		name, body string
		want       RegistrationRequest
	}{
		{
			name: "public native client on loopback",
			body: `{"client_name":"Claude Code","redirect_uris":["http://localhost:54321/callback"],
				"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
				"token_endpoint_auth_method":"none"}`,
			want: RegistrationRequest{
				RedirectURIs: []string{"http://localhost:54321/callback"}, ClientName: "Claude Code",
				TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"},
			},
		},
		{
			name: "custom scheme and https, scope, extension",
			body: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-retrieval/oauth/callback","https://cursor.com/cb"],
				"token_endpoint_auth_method":"none","scope":"mcp","agent_type":"chat",
				"client_uri":"https://cursor.com","logo_uri":"https://cursor.com/logo.png",
				"policy_uri":"https://cursor.com/privacy","tos_uri":"https://cursor.com/terms",
				"contacts":["security@cursor.com"],"software_id":"cursor","software_version":"1.2.3",
				"unknown_field":{"nested":[1,2,3]},"software_statement":"ignored.jwt.value"}`,
			want: RegistrationRequest{
				RedirectURIs:            []string{"cursor://anysphere.cursor-retrieval/oauth/callback", "https://cursor.com/cb"},
				ClientName:              "Cursor",
				TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
				Scope: "mcp", ClientURI: "https://cursor.com", LogoURI: "https://cursor.com/logo.png",
				PolicyURI: "https://cursor.com/privacy", TosURI: "https://cursor.com/terms",
				Contacts: []string{"security@cursor.com"}, SoftwareID: "cursor", SoftwareVersion: "1.2.3", AgentType: "chat",
			},
		},
		{
			name: "RFC 7591 defaults",
			body: `{"redirect_uris":["https://app.example.com/cb"]}`,
			want: RegistrationRequest{
				RedirectURIs: []string{"https://app.example.com/cb"}, TokenEndpointAuthMethod: "client_secret_basic",
				GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
			},
		},
		{
			name: "nulls are absent, duplicates dropped, scope normalized",
			body: `{"redirect_uris":["https://app.example.com/cb","https://app.example.com/cb"],"client_name":null,
				"grant_types":["refresh_token","authorization_code","refresh_token"],"response_types":null,
				"token_endpoint_auth_method":"client_secret_post","scope":"  mcp  read ","agent_type":null}`,
			want: RegistrationRequest{
				RedirectURIs: []string{"https://app.example.com/cb"}, TokenEndpointAuthMethod: "client_secret_post",
				GrantTypes: []string{"refresh_token", "authorization_code"}, ResponseTypes: []string{"code"}, Scope: "mcp read",
			},
		},
		{
			name: "empty arrays take the defaults",
			body: `{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":[],"response_types":[],"token_endpoint_auth_method":"none","client_name":"🤖 Agent 👩‍💻"}`,
			want: RegistrationRequest{
				RedirectURIs: []string{"http://127.0.0.1/cb"}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, ClientName: "🤖 Agent 👩‍💻",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, rerr := parseRegistration(t, c.body)
			if rerr != nil {
				t.Fatalf("error %v", rerr)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestParseRegistrationRequestErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	elevenURIs := make([]string, 11)
	for i := range elevenURIs {
		elevenURIs[i] = "https://app.example.com/cb" + string(rune('a'+i))
	}
	eleven, _ := json.Marshal(elevenURIs)

	const redirect = "invalid_redirect_uri"
	const metadata = "invalid_client_metadata"
	cases := []struct {
		name, body, code, desc string // desc: a fragment of the description
	}{
		{"no redirect_uris", `{"client_name":"x"}`, redirect, "redirect_uris is required"},
		{"empty redirect_uris", `{"redirect_uris":[]}`, redirect, "redirect_uris is required"},
		{"null redirect_uris", `{"redirect_uris":null}`, redirect, "redirect_uris is required"},
		{"redirect_uris not an array", `{"redirect_uris":"https://app.example.com/cb"}`, redirect, "array of strings"},
		{"redirect_uris of numbers", `{"redirect_uris":[1]}`, redirect, "array of strings"},
		{"too many redirect_uris", `{"redirect_uris":` + string(eleven) + `}`, redirect, "at most 10"},
		{"http non-loopback", `{"redirect_uris":["http://app.example.com/cb"]}`, redirect, "redirect_uris[0]"},
		{"fragment", `{"redirect_uris":["https://app.example.com/cb","https://app.example.com/cb#x"]}`, redirect, "redirect_uris[1]"},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, redirect, "not allowed"},
		{"wildcard", `{"redirect_uris":["https://*.example.com/cb"]}`, redirect, "wildcard"},
		{"relative", `{"redirect_uris":["/cb"]}`, redirect, "absolute"},

		{"implicit", `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, metadata, `"implicit" is not allowed`},
		{"password", `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","password"]}`, metadata, `"password" is not allowed`},
		{"client_credentials", `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, metadata, `"client_credentials" is not allowed`},
		{"device code", `{"redirect_uris":["https://a.example/cb"],"grant_types":["urn:ietf:params:oauth:grant-type:device_code"]}`, metadata, "not supported"},
		{"refresh only", `{"redirect_uris":["https://a.example/cb"],"grant_types":["refresh_token"]}`, metadata, "must include authorization_code"},
		{"grant_types not array", `{"redirect_uris":["https://a.example/cb"],"grant_types":"authorization_code"}`, metadata, "grant_types must be an array"},
		{"response type token", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, metadata, "only code"},
		{"response type code id_token", `{"redirect_uris":["https://a.example/cb"],"response_types":["code","code id_token"]}`, metadata, "only code"},

		{"private_key_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, metadata, "not supported"},
		{"client_secret_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_jwt"}`, metadata, "not supported"},
		{"auth method not string", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":1}`, metadata, "must be a string"},

		{"client_name too long", `{"redirect_uris":["https://a.example/cb"],"client_name":"` + long(201) + `"}`, metadata, "client_name is longer than 200"},
		{"client_name control", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0000b"}`, metadata, "control"},
		{"client_name newline", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\nb"}`, metadata, "control"},
		{"client_name bidi override", `{"redirect_uris":["https://a.example/cb"],"client_name":"evil\u202egnp.exe"}`, metadata, "control"},
		{"client_name not string", `{"redirect_uris":["https://a.example/cb"],"client_name":["x"]}`, metadata, "client_name must be a string"},

		{"client_uri http", `{"redirect_uris":["https://a.example/cb"],"client_uri":"http://a.example"}`, metadata, "client_uri must be an https URL"},
		{"logo_uri javascript", `{"redirect_uris":["https://a.example/cb"],"logo_uri":"javascript:alert(1)"}`, metadata, "logo_uri must be an https URL"},
		{"policy_uri relative", `{"redirect_uris":["https://a.example/cb"],"policy_uri":"/privacy"}`, metadata, "policy_uri must be an https URL"},
		{"tos_uri too long", `{"redirect_uris":["https://a.example/cb"],"tos_uri":"https://a.example/` + long(2048) + `"}`, metadata, "tos_uri is longer than 2048"},
		{"client_uri userinfo", `{"redirect_uris":["https://a.example/cb"],"client_uri":"https://u:p@a.example/"}`, metadata, "userinfo"},
		{"logo_uri space", `{"redirect_uris":["https://a.example/cb"],"logo_uri":"https://a.example/a b.png"}`, metadata, "whitespace"},

		{"contacts not array", `{"redirect_uris":["https://a.example/cb"],"contacts":"a@b.c"}`, metadata, "contacts must be an array"},
		{"contacts empty string", `{"redirect_uris":["https://a.example/cb"],"contacts":[""]}`, metadata, "contacts[0]"},
		{"scope with quote", `{"redirect_uris":["https://a.example/cb"],"scope":"mcp \"x"}`, metadata, "scope"},
		{"scope with tab", `{"redirect_uris":["https://a.example/cb"],"scope":"mcp\tx"}`, metadata, "scope"},
		{"scope too long", `{"redirect_uris":["https://a.example/cb"],"scope":"` + long(1001) + `"}`, metadata, "scope is longer"},
		{"software_id too long", `{"redirect_uris":["https://a.example/cb"],"software_id":"` + long(201) + `"}`, metadata, "software_id"},
		{"agent_type unknown", `{"redirect_uris":["https://a.example/cb"],"agent_type":"rogue"}`, metadata, "agent_type"},
		{"agent_type case", `{"redirect_uris":["https://a.example/cb"],"agent_type":"Chat"}`, metadata, "agent_type"},

		{"not JSON", `redirect_uris=https://a.example/cb`, metadata, "JSON object"},
		{"array", `[{"redirect_uris":["https://a.example/cb"]}]`, metadata, "JSON object"},
		{"null", `null`, metadata, "JSON object"},
		{"empty", ``, metadata, "empty"},
		{"truncated", `{"redirect_uris":["https://a.example/cb"]`, metadata, "not valid JSON"},
		{"trailing data", `{"redirect_uris":["https://a.example/cb"]} {}`, metadata, "not valid JSON"},
		{"invalid UTF-8", "{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":\"\xff\"}", metadata, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, rerr := parseRegistration(t, c.body)
			if rerr == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if rerr.Code != c.code {
				t.Errorf("code %q, want %q (%s)", rerr.Code, c.code, rerr.Description)
			}
			if !strings.Contains(rerr.Description, c.desc) {
				t.Errorf("description %q does not contain %q", rerr.Description, c.desc)
			}
		})
	}
}

func TestParseRegistrationRequestContentTypeAndSize(t *testing.T) {
	body := `{"redirect_uris":["https://a.example/cb"]}`
	for ct, ok := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON":                  true,
		"":                                  false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/jsonx":                 false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		_, err := ParseRegistrationRequest(r, RegistrationLimits{})
		if (err == nil) != ok {
			t.Errorf("Content-Type %q: err %v, want ok=%v", ct, err, ok)
		}
	}

	// Unknown fields are accepted, but the whole body is bounded (16 KiB by default).
	pad := strings.Repeat("x", DefaultRegistrationMaxBodyBytes)
	_, err := ParseRegistrationRequest(registrationHTTPRequest(`{"redirect_uris":["https://a.example/cb"],"junk":"`+pad+`"}`), RegistrationLimits{})
	var re *RegistrationError
	if !errors.As(err, &re) || re.Code != RegistrationErrorInvalidClientMetadata || !strings.Contains(re.Description, "larger than 16384 bytes") {
		t.Fatalf("oversize body: %v", err)
	}
	fits := `{"redirect_uris":["https://a.example/cb"],"junk":"` + strings.Repeat("x", 16000) + `"}`
	if _, err := ParseRegistrationRequest(registrationHTTPRequest(fits), RegistrationLimits{}); err != nil {
		t.Fatalf("a body under the limit with unknown fields: %v", err)
	}
	// Custom limits.
	if _, err := ParseRegistrationRequest(registrationHTTPRequest(fits), RegistrationLimits{MaxBodyBytes: 1024}); err == nil {
		t.Fatal("MaxBodyBytes 1024 was not enforced")
	}
	two := `{"redirect_uris":["https://a.example/1","https://a.example/2"]}`
	if _, err := ParseRegistrationRequest(registrationHTTPRequest(two), RegistrationLimits{MaxRedirectURIs: 1}); err == nil {
		t.Fatal("MaxRedirectURIs 1 was not enforced")
	}
}

func TestRegistrationResponse(t *testing.T) {
	issued := time.Unix(1_760_000_000, 0)

	confidential, rerr := parseRegistration(t, `{"redirect_uris":["https://a.example/cb"],"client_name":"App","scope":"mcp","agent_type":"proactive","contacts":["ops@a.example"]}`)
	if rerr != nil {
		t.Fatal(rerr)
	}
	m := roundTrip(t, confidential.Response("tgc_abc", "tgs_secret", issued))
	want := map[string]any{
		"client_id":                  "tgc_abc",
		"client_id_issued_at":        float64(1_760_000_000),
		"client_secret":              "tgs_secret",
		"client_secret_expires_at":   float64(0),
		"redirect_uris":              []any{"https://a.example/cb"},
		"token_endpoint_auth_method": "client_secret_basic",
		"grant_types":                []any{"authorization_code"},
		"response_types":             []any{"code"},
		"client_name":                "App",
		"scope":                      "mcp",
		"agent_type":                 "proactive",
		"contacts":                   []any{"ops@a.example"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("confidential response\n got %v\nwant %v", m, want)
	}

	public, rerr := parseRegistration(t, `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`)
	if rerr != nil {
		t.Fatal(rerr)
	}
	m = roundTrip(t, public.Response("tgc_pub", "must-not-appear", issued))
	for _, k := range []string{"client_secret", "client_secret_expires_at", "client_name", "scope", "agent_type", "contacts", "logo_uri"} {
		if _, ok := m[k]; ok {
			t.Errorf("public response has %s: %v", k, m)
		}
	}
	if m["client_id"] != "tgc_pub" || m["token_endpoint_auth_method"] != "none" {
		t.Errorf("public response %v", m)
	}
	if !public.Public() || confidential.Public() {
		t.Error("Public() wrong")
	}

	// The response must not alias the request's slices.
	resp := public.Response("x", "", issued)
	resp["redirect_uris"].([]string)[0] = "mutated"
	if public.RedirectURIs[0] != "http://127.0.0.1/cb" {
		t.Error("Response aliases RedirectURIs")
	}
}

func TestWriteRegistrationErrorAndResponse(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteRegistrationError(rec, &RegistrationError{Code: RegistrationErrorInvalidRedirectURI, Description: "bad \"uri\""})
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(body, map[string]string{"error": "invalid_redirect_uri", "error_description": `bad "uri"`}) {
		t.Fatalf("body %v", body)
	}

	rec = httptest.NewRecorder()
	WriteRegistrationError(rec, errors.New("database password is hunter2"))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "hunter2") {
		t.Fatalf("internal error: status %d body %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	WriteRegistrationResponse(rec, map[string]any{"client_id": "x"})
	if rec.Code != http.StatusCreated || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
}

func TestClientCredentials(t *testing.T) {
	idPattern := regexp.MustCompile(`^tgc_[a-z2-7]{26}$`)
	secretPattern := regexp.MustCompile(`^tgs_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 1000 {
		id, secret := NewClientID(), NewClientSecret()
		if !idPattern.MatchString(id) {
			t.Fatalf("client id %q", id)
		}
		if !secretPattern.MatchString(secret) {
			t.Fatalf("client secret %q", secret)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, "tgs_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret %q does not carry 256 bits", secret)
		}
		if seen[id] || seen[secret] {
			t.Fatal("duplicate credential")
		}
		seen[id], seen[secret] = true, true
		if IsClientIDMetadataURL(id) {
			t.Fatalf("client id %q looks like a metadata document URL", id)
		}
	}
}

func TestClientSecretHash(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 test vector.
	if got := HashClientSecret("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashClientSecret(abc) = %s", got)
	}
	secret := NewClientSecret()
	hash := HashClientSecret(secret)
	if strings.Contains(hash, secret) || len(hash) != 64 {
		t.Fatalf("hash %q", hash)
	}
	cases := []struct {
		hash, presented string
		want            bool
	}{
		{hash, secret, true},
		{strings.ToUpper(hash), secret, true},
		{hash, secret + "x", false},
		{hash, secret[:len(secret)-1], false},
		{hash, "", false},
		{"", "", false},
		{"", secret, false},
		{HashClientSecret(""), "", false}, // an empty secret never matches
		{hash, hash, false},               // the hash is not the secret
		{hash[:63], secret, false},
	}
	for _, c := range cases {
		if got := ClientSecretMatches(c.hash, c.presented); got != c.want {
			t.Errorf("ClientSecretMatches(%q, %q) = %v, want %v", c.hash, c.presented, got, c.want)
		}
	}
}
