// Package webclient plays the browser in tests of the sign-in and consent flow: it keeps
// cookies, follows redirects within the gateway only (a redirect elsewhere is where the flow
// hands back to the client), and submits the plain HTML forms with their hidden fields.
package webclient

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is a cookie-keeping HTTP client that stays on one origin.
type Browser struct {
	t      testing.TB
	client *http.Client
}

// New makes a browser that follows redirects only while they stay under origin.
func New(t testing.TB, origin string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), origin) {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

// Page is what the browser shows; Loc is set when it was sent to another site.
type Page struct {
	Status int
	Body   string
	Loc    *url.URL
}

// Do sends a request.
func (b *Browser) Do(req *http.Request) Page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := Page{Status: resp.StatusCode, Body: string(body)}
	if resp.StatusCode/100 == 3 {
		p.Loc, _ = url.Parse(resp.Header.Get("Location"))
	}
	return p
}

// Get opens a URL.
func (b *Browser) Get(u string) Page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.Do(req)
}

var (
	actionRE = regexp.MustCompile(`<form method="post"(?: action="([^"]*)")?>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// Submit posts p's form with its hidden fields and fields (an empty value removes a field).
func (b *Browser) Submit(p Page, fields map[string]string) Page {
	b.t.Helper()
	m := actionRE.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no form in page (%d): %s", p.Status, p.Body)
	}
	form := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, v := range fields {
		if v == "" {
			form.Del(k)
		} else {
			form.Set(k, v)
		}
	}
	req, _ := http.NewRequest("POST", html.UnescapeString(m[1]), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// CopyCookiesTo gives dst the cookies this browser would send to rawURL: a copied cookie
// jar, as someone who took the cookies would replay them.
func (b *Browser) CopyCookiesTo(dst *Browser, rawURL string) {
	b.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	dst.client.Jar.SetCookies(u, b.client.Jar.Cookies(u))
}
