package proxy

import (
	"net/url"
	"testing"
)

// TestLegacyEndpointStaysOnTheServersOrigin: the endpoint event may not send the gateway's
// upstream credential anywhere but the server's own origin.
func TestLegacyEndpointStaysOnTheServersOrigin(t *testing.T) {
	base, _ := url.Parse("https://mcp.example.com/sse")
	for ref, want := range map[string]string{
		"/messages?sessionid=1":                      "https://mcp.example.com/messages?sessionid=1",
		"messages?sessionid=2":                       "https://mcp.example.com/messages?sessionid=2",
		"https://mcp.example.com/m?sessionid=3":      "https://mcp.example.com/m?sessionid=3",
		"https://evil.example/m?sessionid=4":         "",
		"//evil.example/m":                           "",
		"http://mcp.example.com/m":                   "",
		"https://user:pw@mcp.example.com/m":          "",
		"https://mcp.example.com:8443/m?sessionid=5": "",
	} {
		u, err := legacyEndpoint(base, ref)
		switch {
		case want == "" && err == nil:
			t.Errorf("%q accepted as %s", ref, u)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("%q = %v, %v; want %s", ref, u, err, want)
		}
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"get_weather":                     "get_weather",
		"=?base64?SGVsbG8sIOS4lueVjA==?=": "Hello, 世界",
		"=?base64?notclosed":              "=?base64?notclosed",
	} {
		if got, err := decodeHeaderValue(in); err != nil || got != want {
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := decodeHeaderValue("=?base64?not*base64?="); err == nil {
		t.Error("invalid Base64 accepted")
	}
}
