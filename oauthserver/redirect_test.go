package oauthserver

import (
	"strings"
	"testing"
)

func TestValidateRedirectURI(t *testing.T) {
	valid := []string{
		"https://app.example.com/callback",
		"https://app.example.com/callback?tenant=a&x=1",
		"https://app.example.com:8443/cb",
		"https://app.example.com",
		"https://[2001:db8::1]/cb",
		"http://127.0.0.1/callback",
		"http://127.0.0.1:53123/callback",
		"http://127.1.2.3:8080/cb",
		"http://[::1]:6274/oauth/callback",
		"http://[::1]/cb",
		"http://localhost:33418/callback",
		"http://localhost/callback",
		"http://LOCALHOST:1/cb",
		"com.example.app:/oauth2redirect/example-provider",
		"com.example.app:callback",
		"cursor://anysphere.cursor-retrieval/oauth/user-linear/callback",
		"vscode://vscode.github-authentication/did-authenticate",
		"claude://callback",
		"myapp:/cb",
		"https://app.example.com/" + strings.Repeat("a", MaxRedirectURILen-len("https://app.example.com/")),
	}
	for _, raw := range valid {
		if err := ValidateRedirectURI(raw); err != nil {
			t.Errorf("ValidateRedirectURI(%q) = %v, want nil", raw, err)
		}
	}

	invalid := []struct {
		raw, want string // want: a fragment of the error message
	}{
		{"", "empty"},
		{"/callback", "absolute"},
		{"callback", "absolute"},
		{"//app.example.com/cb", "absolute"},
		{"https://app.example.com/cb#frag", "fragment"},
		{"https://app.example.com/cb#", "fragment"},
		{"http://127.0.0.1/cb#x", "fragment"},
		{"https://user:pass@app.example.com/cb", "userinfo"},
		{"https://user@app.example.com/cb", "userinfo"},
		{"http://user@127.0.0.1/cb", "userinfo"},
		{"myapp://user@cb/x", "userinfo"},
		{"https://app.example.com/" + strings.Repeat("a", MaxRedirectURILen), "longer than"},
		{"https://app.example.com/a b", "whitespace"},
		{" https://app.example.com/cb", "whitespace"},
		{"https://app.example.com/cb\n", "whitespace"},
		{"https://app.example.com/cb\r\nSet-Cookie: x", "whitespace"},
		{"https://app.example.com/\tcb", "whitespace"},
		{"https://app.example.com/\x00", "control"},
		{"https://app.example.com/\x7f", "control"},
		{"https://app.example.com/caf\u00e9", "non-ASCII"},
		{"https://app.example.com/\u2028", "non-ASCII"},
		{"https://*.example.com/cb", "wildcard"},
		{"https://app.example.com/*", "wildcard"},
		{"http://127.0.0.1:*/cb", "wildcard"},
		{"https:///cb", "host"},
		{"https:app.example.com/cb", "host"},
		{"https://app.example.com:/cb", "empty port"},
		{"https://app.example.com:99999999999/cb", "port"},
		{"https://app.example.com:65536/cb", "port"},
		{"http://127.0.0.1:0/cb", "port"},
		{"https://app.example.com:abc/cb", "valid URI"},
		{"https://app.example.com\\@evil.com/", "backslash"},
		{"http://app.example.com/callback", "loopback"},
		{"http://evil.com/cb", "loopback"},
		{"http://127.0.0.1.nip.io/cb", "loopback"},
		{"http://localhost.evil.com/cb", "loopback"},
		{"http://localhost./cb", "loopback"},
		{"http://10.0.0.1/cb", "loopback"},
		{"http://0.0.0.0:8080/cb", "loopback"},
		{"http://127.1/cb", "loopback"},
		{"http://2130706433/cb", "loopback"},
		{"http://[::ffff:127.0.0.1]/cb", "loopback"},
		{"http://[::2]/cb", "loopback"},
		{"http://[fe80::1%25lo]/cb", "loopback"},
		{"http:///cb", "host"},
		{"http:cb", "host"},
		{"javascript:alert(1)", "not allowed"},
		{"JavaScript:alert(1)", "not allowed"},
		{"javascript://app.example.com/%0aalert(1)", "not allowed"},
		{"vbscript:msgbox(1)", "not allowed"},
		{"data:text/html,<script>alert(1)</script>", "not allowed"},
		{"file:///etc/passwd", "not allowed"},
		{"about:blank", "not allowed"},
		{"blob:https://app.example.com/uuid", "not allowed"},
		{"ftp://app.example.com/cb", "not allowed"},
		{"view-source:https://app.example.com/", "not allowed"},
		{"myapp:", "nothing after the colon"},
		{"1app:/cb", "valid URI"}, // schemes start with a letter
	}
	for _, c := range invalid {
		err := ValidateRedirectURI(c.raw)
		if err == nil {
			t.Errorf("ValidateRedirectURI(%q) = nil, want error containing %q", c.raw, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateRedirectURI(%q) = %q, want it to contain %q", c.raw, err, c.want)
		}
		if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("ValidateRedirectURI(%q): error message contains CR/LF: %q", c.raw, err)
		}
	}
}

func TestMatchRedirectURI(t *testing.T) {
	registered := []string{
		"https://app.example.com/callback",
		"https://app.example.com/cb?x=1",
		"http://127.0.0.1/loop",
		"http://[::1]:8080/v6",
		"http://localhost:3000/local?a=b",
		"com.example.app:/oauth",
	}
	cases := []struct {
		presented string
		want      bool
	}{
		// exact
		{"https://app.example.com/callback", true},
		{"https://app.example.com/cb?x=1", true},
		{"com.example.app:/oauth", true},
		{"http://127.0.0.1/loop", true},
		// https: no normalization, no port relaxation, no prefix match
		{"https://app.example.com/callback/", false},
		{"https://app.example.com/callback/../callback", false},
		{"https://app.example.com/Callback", false},
		{"https://APP.example.com/callback", false},
		{"https://app.example.com:443/callback", false},
		{"https://app.example.com:8443/callback", false},
		{"https://app.example.com/callback?extra=1", false},
		{"https://app.example.com/callbackx", false},
		{"https://app.example.com/cb?x=2", false},
		{"https://app.example.com/cb", false},
		{"http://app.example.com/callback", false},
		{"https://app.example.com/callback#x", false},
		{"com.example.app:/oauth/x", false},
		{"", false},
		// loopback: any port, everything else exact
		{"http://127.0.0.1:51234/loop", true},
		{"http://127.0.0.1:1/loop", true},
		{"http://[::1]/v6", true},
		{"http://[::1]:61000/v6", true},
		{"http://localhost:49152/local?a=b", true},
		{"http://localhost/local?a=b", true},
		{"http://127.0.0.1:51234/loop2", false},
		{"http://127.0.0.1:51234/loop?x=1", false},
		{"http://127.0.0.1:51234/loop?", false},
		{"http://127.0.0.1:51234/Loop", false},
		{"http://127.0.0.2:51234/loop", false},  // host must match exactly
		{"http://localhost:51234/loop", false},  // localhost is not 127.0.0.1
		{"http://[::1]:51234/loop", false},      // nor is ::1
		{"http://127.0.0.1:51234/v6", false},    // nor the other way round
		{"http://localhost:49152/local", false}, // query must match
		{"http://localhost:49152/local?a=c", false},
		{"https://127.0.0.1:51234/loop", false}, // scheme must match
		{"http://127.0.0.1:51234/loop#f", false},
		{"http://user@127.0.0.1:51234/loop", false},
		{"http://127.0.0.1:51234/loop/../loop", false},
	}
	for _, c := range cases {
		if got := MatchRedirectURI(registered, c.presented); got != c.want {
			t.Errorf("MatchRedirectURI(%q) = %v, want %v", c.presented, got, c.want)
		}
	}
	if MatchRedirectURI(nil, "https://app.example.com/callback") {
		t.Error("nothing registered must match nothing")
	}
	// The port relaxation is for http loopback only: an https loopback URI matches exactly.
	if MatchRedirectURI([]string{"https://127.0.0.1/cb"}, "https://127.0.0.1:8443/cb") {
		t.Error("https loopback must match exactly")
	}
}
