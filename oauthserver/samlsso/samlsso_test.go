package samlsso_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/trustgate/trustgate/internal/testkit/samlidp"
	"github.com/trustgate/trustgate/oauthserver/samlsso"
	"github.com/trustgate/trustgate/store"
)

// sp is one host's SAML routes, as the OAuth server mounts them, around a Service: the test's
// "gateway". The last refusal is kept for the test to read.
type sp struct {
	t       *testing.T
	svc     *samlsso.Service
	srv     *httptest.Server
	issuer  string
	cfg     samlsso.Config
	lastErr error
}

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateHost(context.Background(), store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	return st
}

var secret = []byte("0123456789abcdef0123456789abcdef")

func newSP(t *testing.T, st store.Store, cfg samlsso.Config) *sp {
	t.Helper()
	svc, err := samlsso.New(samlsso.Options{Store: st, Secret: secret, HTTPClient: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	s := &sp{t: t, svc: svc, cfg: cfg}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.issuer = s.srv.URL + "/h/acme"
	mux.HandleFunc("GET /h/acme"+samlsso.MetadataPath, func(w http.ResponseWriter, r *http.Request) {
		b, err := svc.Metadata(r.Context(), "acme", s.issuer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /h/acme"+samlsso.StartPath, func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.Start(r.Context(), w, "acme", s.issuer, s.cfg, r.URL.Query().Get("ref"))
		if err != nil {
			s.lastErr = err
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("POST /h/acme"+samlsso.ACSPath, func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.Response(r.Context(), r, "acme", s.issuer, s.cfg)
		if err != nil {
			s.lastErr = err
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /h/acme"+samlsso.ACSPath, func(w http.ResponseWriter, r *http.Request) {
		id, ref, err := svc.Finish(r.Context(), w, r, "acme", s.issuer)
		if err != nil {
			s.lastErr = err
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "ref": ref})
	})
	return s
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

// start opens the SP's start URL without following the redirect to the IdP: the IdP URL.
func (s *sp) start(b *http.Client, ref string) string {
	s.t.Helper()
	c := *b
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(s.issuer + samlsso.StartPath + "?ref=" + ref)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		s.t.Fatalf("start answered %d (%v)", resp.StatusCode, s.lastErr)
	}
	return resp.Header.Get("Location")
}

type outcome struct {
	status int
	id     samlsso.Identity
	ref    string
	err    error
}

// post posts the IdP's form to the ACS in browser b, following the redirect to the GET.
func (s *sp) post(b *http.Client, p samlidp.Posted) outcome {
	s.t.Helper()
	s.lastErr = nil
	resp, err := b.PostForm(p.Action, url.Values{"SAMLResponse": {p.SAMLResponse}, "RelayState": {p.RelayState}})
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	o := outcome{status: resp.StatusCode, err: s.lastErr}
	if resp.StatusCode == http.StatusOK {
		var v struct {
			ID  samlsso.Identity `json:"id"`
			Ref string           `json:"ref"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			s.t.Fatalf("finish: %v: %s", err, body)
		}
		o.id, o.ref = v.ID, v.Ref
	}
	return o
}

func setup(t *testing.T) (*samlidp.IdP, *sp) {
	idp := samlidp.Start(t)
	idp.AddUser("alice", "alice-pw", "alice@acme.example")
	idp.AddUser("mallory", "mallory-pw", "mallory@evil.example")
	s := newSP(t, newStore(t), samlsso.Config{IdPMetadataXML: idp.Metadata()})
	return idp, s
}

func wantRefused(t *testing.T, o outcome, target error) {
	t.Helper()
	if o.status == http.StatusOK {
		t.Fatalf("accepted as %+v, want refused", o.id)
	}
	t.Logf("refused: %v", o.err)
	if !errors.Is(o.err, target) {
		t.Fatalf("refused with %v, want %v", o.err, target)
	}
}

func TestSignedAssertionAccepted(t *testing.T) {
	for name, cfg := range map[string]func(*samlidp.IdP) samlsso.Config{
		"metadata XML": func(p *samlidp.IdP) samlsso.Config { return samlsso.Config{IdPMetadataXML: p.Metadata()} },
		"metadata URL": func(p *samlidp.IdP) samlsso.Config { return samlsso.Config{IdPMetadataURL: p.EntityID} },
		"entry point": func(p *samlidp.IdP) samlsso.Config {
			return samlsso.Config{EntryPoint: p.SSOURL, IdPEntityID: p.EntityID, IdPCertificate: p.CertificatePEM, EmailVerified: true}
		},
	} {
		t.Run(name, func(t *testing.T) {
			idp, s := setup(t)
			s.cfg = cfg(idp)
			b := newBrowser()
			o := s.post(b, idp.SignIn(t, b, s.start(b, "ref-1"), "alice", "alice-pw"))
			if o.status != http.StatusOK {
				t.Fatalf("refused: %d %v", o.status, o.err)
			}
			if o.id.Email != "alice@acme.example" || o.id.Subject != "alice" || o.id.IdP != idp.EntityID || o.ref != "ref-1" {
				t.Fatalf("identity %+v ref %q", o.id, o.ref)
			}
			if o.id.EmailVerified != s.cfg.EmailVerified {
				t.Fatalf("email_verified %v, want the setting's %v", o.id.EmailVerified, s.cfg.EmailVerified)
			}
		})
	}
}

// The IdP is told: the metadata lists the entity ID, the ACS (HTTP-POST) and a signing key.
func TestMetadata(t *testing.T) {
	_, s := setup(t)
	resp, err := http.Get(s.issuer + samlsso.MetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ep := samlsso.EndpointsOf(s.issuer)
	for _, want := range []string{`entityID="` + ep.EntityID + `"`, `Location="` + ep.ACSURL + `"`, saml.HTTPPostBinding, "X509Certificate"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metadata lacks %s:\n%s", want, body)
		}
	}
	// Derived, not stored: another replica (same secret) serves the same document.
	s2 := newSP(t, newStore(t), s.cfg)
	b2, err := s2.svc.Metadata(context.Background(), "acme", s.issuer)
	if err != nil || string(b2) != string(body) {
		t.Fatalf("another replica's metadata differs (%v)", err)
	}
	other, _ := s.svc.Metadata(context.Background(), "other", strings.Replace(s.issuer, "/acme", "/other", 1))
	if cert(t, other) == cert(t, body) {
		t.Fatal("two hosts share an SP key")
	}
}

func cert(t *testing.T, md []byte) string {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	return doc.FindElement("//X509Certificate").Text()
}

func TestUnsignedRefused(t *testing.T) {
	idp, s := setup(t)
	b := newBrowser()
	p := idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")
	p.SAMLResponse = edit(t, p.SAMLResponse, func(resp *etree.Element) {
		removeSignature(resp)
		removeSignature(resp.SelectElement("Assertion"))
	})
	wantRefused(t, s.post(b, p), samlsso.ErrRefused)
}

// Many IdPs sign only the assertion: accepted (so the wrapping tests below are not refused
// for the missing response signature alone).
func TestOnlyAssertionSignedAccepted(t *testing.T) {
	idp, s := setup(t)
	b := newBrowser()
	p := idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")
	p.SAMLResponse = edit(t, p.SAMLResponse, removeSignature)
	if o := s.post(b, p); o.status != http.StatusOK || o.id.Email != "alice@acme.example" {
		t.Fatalf("refused: %d %v", o.status, o.err)
	}
}

func TestExpiredRefused(t *testing.T) {
	idp, s := setup(t)
	idp.Tamper(func(a *saml.Assertion) {
		past := time.Now().Add(-10 * time.Minute)
		a.Conditions.NotBefore = past.Add(-5 * time.Minute)
		a.Conditions.NotOnOrAfter = past
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = past
	})
	b := newBrowser()
	wantRefused(t, s.post(b, idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")), samlsso.ErrRefused)
}

func TestNotYetValidRefused(t *testing.T) {
	idp, s := setup(t)
	idp.Tamper(func(a *saml.Assertion) {
		a.Conditions.NotBefore = time.Now().Add(30 * time.Minute)
		a.Conditions.NotOnOrAfter = time.Now().Add(40 * time.Minute)
	})
	b := newBrowser()
	wantRefused(t, s.post(b, idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")), samlsso.ErrRefused)
}

func TestWrongAudienceRefused(t *testing.T) {
	idp, s := setup(t)
	idp.Tamper(func(a *saml.Assertion) {
		a.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://other-sp.example/metadata"}}}
	})
	b := newBrowser()
	wantRefused(t, s.post(b, idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")), samlsso.ErrRefused)
}

// A response posted again is refused, here and at another replica sharing the store.
func TestReplayRefused(t *testing.T) {
	idp, s := setup(t)
	b := newBrowser()
	p := idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")
	if o := s.post(b, p); o.status != http.StatusOK {
		t.Fatalf("first use refused: %v", o.err)
	}
	wantRefused(t, s.post(b, p), samlsso.ErrReplayed)

	// Another replica: same store, same secret, its own process state.
	st := newStore(t)
	s1 := newSP(t, st, s.cfg)
	b = newBrowser()
	p = idp.SignIn(t, b, s1.start(b, "r"), "alice", "alice-pw")
	if o := s1.post(b, p); o.status != http.StatusOK {
		t.Fatalf("first use refused: %v", o.err)
	}
	s2 := newSP(t, st, s.cfg)
	p.Action = strings.Replace(p.Action, s1.srv.URL, s2.srv.URL, 1)
	s2.issuer = strings.Replace(s2.issuer, s2.srv.URL, s1.srv.URL, 1) // both serve one issuer
	wantRefused(t, postTo(t, s2, b, p), samlsso.ErrReplayed)
}

// postTo posts to s's server while s checks against its issuer.
func postTo(t *testing.T, s *sp, b *http.Client, p samlidp.Posted) outcome {
	t.Helper()
	s.lastErr = nil
	resp, err := b.PostForm(p.Action, url.Values{"SAMLResponse": {p.SAMLResponse}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return outcome{status: resp.StatusCode, err: s.lastErr}
}

// Signature wrapping: an unsigned assertion of mallory's next to alice's signed one, or in its
// place with the signed one moved elsewhere, never signs in as mallory (or anyone).
func TestSignatureWrappingRefused(t *testing.T) {
	for name, wrap := range map[string]func(resp *etree.Element){
		"second assertion before": func(resp *etree.Element) {
			signed := resp.SelectElement("Assertion")
			evil := forged(signed)
			resp.InsertChildAt(signed.Index(), evil)
		},
		"second assertion after": func(resp *etree.Element) {
			resp.AddChild(forged(resp.SelectElement("Assertion")))
		},
		"signed assertion moved into the forged one": func(resp *etree.Element) {
			signed := resp.SelectElement("Assertion")
			evil := forged(signed)
			evil.CreateAttr("ID", signed.SelectAttrValue("ID", ""))
			resp.InsertChildAt(signed.Index(), evil)
			resp.RemoveChild(signed)
			evil.SelectElement("Subject").AddChild(signed)
		},
		"signed assertion moved into Extensions": func(resp *etree.Element) {
			signed := resp.SelectElement("Assertion")
			evil := forged(signed)
			evil.CreateAttr("ID", signed.SelectAttrValue("ID", ""))
			resp.InsertChildAt(signed.Index(), evil)
			resp.RemoveChild(signed)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed)
			resp.InsertChildAt(resp.SelectElement("Issuer").Index()+1, ext)
		},
		"signature of alice's assertion on the forged one": func(resp *etree.Element) {
			signed := resp.SelectElement("Assertion")
			evil := forged(signed)
			evil.CreateAttr("ID", signed.SelectAttrValue("ID", ""))
			evil.InsertChildAt(1, signed.SelectElement("Signature").Copy())
			resp.InsertChildAt(signed.Index(), evil)
			resp.RemoveChild(signed)
		},
	} {
		t.Run(name, func(t *testing.T) {
			idp, s := setup(t)
			b := newBrowser()
			p := idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")
			p.SAMLResponse = edit(t, p.SAMLResponse, func(resp *etree.Element) {
				removeSignature(resp) // only the assertion stays signed
				wrap(resp)
			})
			o := s.post(b, p)
			wantRefused(t, o, samlsso.ErrRefused)
		})
	}
}

// forged is a copy of the signed assertion, unsigned, naming mallory, with a new ID.
func forged(signed *etree.Element) *etree.Element {
	evil := signed.Copy()
	removeSignature(evil)
	evil.CreateAttr("ID", "id-forged")
	evil.FindElement("./Subject/NameID").SetText("mallory")
	for _, v := range evil.FindElements(".//AttributeValue") {
		if strings.Contains(v.Text(), "@") {
			v.SetText("mallory@evil.example")
		}
	}
	return evil
}

// Login CSRF: mallory's valid response, posted by mallory's page into alice's browser, does
// not sign alice's browser in as mallory: the request was not started there.
func TestResponseOfAnotherBrowserRefused(t *testing.T) {
	idp, s := setup(t)
	mallory := newBrowser()
	p := idp.SignIn(t, mallory, s.start(mallory, "m"), "mallory", "mallory-pw")
	alice := newBrowser()
	_ = s.start(alice, "a") // alice has a sign-in of her own in progress
	wantRefused(t, s.post(alice, p), samlsso.ErrOtherBrowser)
}

func TestIdPInitiatedRefused(t *testing.T) {
	idp, s := setup(t)
	b := newBrowser()
	_ = s.post(b, idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")) // signed in at the IdP
	p := idp.SignIn(t, b, idp.InitiateURL(samlsso.EndpointsOf(s.issuer).EntityID), "alice", "alice-pw")
	wantRefused(t, s.post(b, p), samlsso.ErrUnsolicited)
}

func TestNoEmailRefused(t *testing.T) {
	idp, s := setup(t)
	idp.AddUser("bob", "bob-pw", "")
	b := newBrowser()
	wantRefused(t, s.post(b, idp.SignIn(t, b, s.start(b, "r"), "bob", "bob-pw")), samlsso.ErrNoEmail)
}

// A response signed by another IdP (with the configured IdP's entity ID) is refused.
func TestOtherIdPsSignatureRefused(t *testing.T) {
	idp, s := setup(t)
	other := samlidp.Start(t)
	s.cfg = samlsso.Config{EntryPoint: idp.SSOURL, IdPEntityID: idp.EntityID, IdPCertificate: other.CertificatePEM}
	b := newBrowser()
	wantRefused(t, s.post(b, idp.SignIn(t, b, s.start(b, "r"), "alice", "alice-pw")), samlsso.ErrRefused)
}

func TestConfig(t *testing.T) {
	idp := samlidp.Start(t)
	good := []string{
		`{"idp_metadata_url":"https://idp.example/metadata"}`,
		`{"idp_metadata_xml":` + quote(idp.Metadata()) + `,"email_verified":true}`,
		`{"entry_point":"https://idp.example/sso","idp_entity_id":"https://idp.example","idp_certificate":` + quote(idp.CertificatePEM) + `}`,
	}
	for _, c := range good {
		if _, err := samlsso.ParseConfig(json.RawMessage(c)); err != nil {
			t.Errorf("%s: %v", c[:40], err)
		}
	}
	bad := map[string]string{
		"nothing":          `{}`,
		"two sources":      `{"idp_metadata_url":"https://idp.example/m","idp_metadata_xml":` + quote(idp.Metadata()) + `}`,
		"http metadata":    `{"idp_metadata_url":"http://idp.example/metadata"}`,
		"partial":          `{"entry_point":"https://idp.example/sso"}`,
		"bad certificate":  `{"entry_point":"https://idp.example/sso","idp_entity_id":"x","idp_certificate":"bm90IGEgY2VydA=="}`,
		"not metadata":     `{"idp_metadata_xml":"<html/>"}`,
		"unknown key":      `{"idp_metadata_url":"https://idp.example/m","entrypoint":"x"}`,
		"case-folded key":  `{"IDP_METADATA_URL":"https://idp.example/m"}`,
		"duplicate key":    `{"idp_metadata_url":"https://a.example/m","idp_metadata_url":"https://b.example/m"}`,
		"user in URL":      `{"idp_metadata_url":"https://u:p@idp.example/m"}`,
		"metadata too big": `{"idp_metadata_xml":"` + strings.Repeat("a", 300<<10) + `"}`,
	}
	for name, c := range bad {
		if _, err := samlsso.ParseConfig(json.RawMessage(c)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// edit decodes a posted SAMLResponse, lets f change its Response element, and encodes it.
func edit(t *testing.T, b64 string, f func(resp *etree.Element)) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	f(doc.Root())
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func removeSignature(el *etree.Element) {
	if sig := el.SelectElement("Signature"); sig != nil {
		el.RemoveChild(sig)
	}
}
