package samlsso

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	crewsp "github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
)

// The routes of a host's SAML sign-in, relative to its issuer (base URL).
const (
	// MetadataPath serves the SP metadata (XML); its URL is also the SP's entity ID.
	MetadataPath = "/auth/saml/metadata"
	// ACSPath is the assertion consumer service: the IdP's response is POSTed there, and the
	// sign-in finishes with a GET of it in the browser that started it.
	ACSPath = "/auth/saml/acs"
	// StartPath sends the browser to the IdP with an authentication request.
	StartPath = "/auth/saml/start"
)

// Endpoints are what an IdP administrator enters for the gateway: the SP's entity ID (the
// audience of its assertions), the ACS URL and the URL of the SP metadata.
type Endpoints struct {
	EntityID    string `json:"entity_id"`
	ACSURL      string `json:"acs_url"`
	MetadataURL string `json:"metadata_url"`
}

// EndpointsOf are the SP endpoints of the host whose issuer is issuer.
func EndpointsOf(issuer string) Endpoints {
	issuer = strings.TrimSuffix(issuer, "/")
	return Endpoints{EntityID: issuer + MetadataPath, ACSURL: issuer + ACSPath, MetadataURL: issuer + MetadataPath}
}

// Limits of a sign-in.
const (
	// RequestTTL is how long a started sign-in may take at the IdP.
	RequestTTL = 10 * time.Minute
	// resultTTL is how long the verified identity waits for the browser's GET of the ACS.
	resultTTL = 2 * time.Minute
	// MaxResponseBytes bounds the form the IdP's response is POSTed in.
	MaxResponseBytes = 512 << 10
	// MetadataTTL is how long a fetched IdP metadata document is used.
	MetadataTTL = time.Hour
	// maxMetadataBytes bounds a fetched IdP metadata document.
	maxMetadataBytes  = 1 << 20
	maxCachedMetadata = 1024
)

// Store is what the service keeps: the identifiers used once (assertions, requests).
type Store interface {
	UseOnce(ctx context.Context, host, kind, id string, expiresAt, now time.Time) error
}

// Kinds of the identifiers the service records with UseOnce.
const (
	KindAssertion = "saml-assertion"
	KindRequest   = "saml-request"
)

// Options configure New.
type Options struct {
	Store Store
	// Secret (at least 32 bytes, equal on every replica) derives each host's SP key pair and
	// the keys of the sign-in's cookie and of the verified result.
	Secret []byte
	// HTTPClient fetches IdP metadata URLs; nil is an SSRF-safe client (ssrf.NewClient) with
	// Policy.
	HTTPClient *http.Client
	Policy     ssrf.Policy
	// Secure marks the sign-in's cookie Secure (the public URL is https).
	Secure bool
	// Now is the service's clock; nil is time.Now. (The SP checks assertions' times
	// against the real clock.)
	Now func() time.Time
}

// Service is the SAML service provider of every host. It is safe for concurrent use.
type Service struct {
	store     Store
	secret    []byte
	cookieKey []byte
	aead      cipher.AEAD
	fetch     *http.Client
	secure    bool
	now       func() time.Time

	mu    sync.Mutex
	cache map[string]cachedMetadata // IdP metadata URL → document
}

type cachedMetadata struct {
	entity  *saml.EntityDescriptor
	expires time.Time
}

// New builds the service.
func New(o Options) (*Service, error) {
	if o.Store == nil || len(o.Secret) < 32 {
		return nil, errors.New("samlsso: a store and a secret of at least 32 bytes are required")
	}
	block, err := aes.NewCipher(derive(o.Secret, "trustgate/saml/result/v1"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Service{
		store: o.Store, secret: o.Secret, cookieKey: derive(o.Secret, "trustgate/saml/cookie/v1"),
		aead: aead, fetch: o.HTTPClient, secure: o.Secure, now: o.Now, cache: map[string]cachedMetadata{},
	}
	if s.fetch == nil {
		s.fetch = ssrf.NewClient(ssrf.Options{Policy: o.Policy, MaxBodyBytes: maxMetadataBytes})
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Errors of a sign-in. Every refusal matches ErrRefused; the others say more.
var (
	// ErrRefused: the IdP's response was not accepted.
	ErrRefused = errors.New("saml: response refused")
	// ErrUnsolicited: a response to no request (IdP-initiated sign-in), refused.
	ErrUnsolicited = fmt.Errorf("%w: unsolicited response (IdP-initiated sign-in is not accepted)", ErrRefused)
	// ErrReplayed: the assertion, or the request it answers, was already used.
	ErrReplayed = fmt.Errorf("%w: already used", ErrRefused)
	// ErrOtherBrowser: the sign-in was not started in this browser, or too long ago.
	ErrOtherBrowser = fmt.Errorf("%w: not started in this browser", ErrRefused)
	// ErrNoEmail: the assertion has no usable email attribute.
	ErrNoEmail = fmt.Errorf("%w: no email attribute", ErrRefused)
	// ErrIdPUnavailable: the IdP's metadata could not be read.
	ErrIdPUnavailable = errors.New("saml: the identity provider's metadata is unavailable")
)

// Identity is what a verified assertion says of the person.
type Identity struct {
	// Subject is the assertion's NameID, IdP its issuer's entity ID.
	Subject string `json:"sub"`
	IdP     string `json:"idp"`
	Email   string `json:"email"`
	// EmailVerified is Config.EmailVerified: whether the host trusts the IdP's emails.
	EmailVerified bool `json:"email_verified"`
}

// serviceProvider is the host's SP with the IdP of c (nil c: for the metadata only).
func (s *Service) serviceProvider(ctx context.Context, host, issuer string, c *Config) (*saml.ServiceProvider, error) {
	ep := EndpointsOf(issuer)
	acs, err := url.Parse(ep.ACSURL)
	if err != nil {
		return nil, err
	}
	meta, err := url.Parse(ep.MetadataURL)
	if err != nil {
		return nil, err
	}
	key, cert, err := spKey(s.secret, host, ep.EntityID)
	if err != nil {
		return nil, err
	}
	sp := &saml.ServiceProvider{
		EntityID:                         ep.EntityID,
		Key:                              key,
		Certificate:                      cert,
		MetadataURL:                      *meta,
		AcsURL:                           *acs,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		SignatureMethod:                  dsig.ECDSASHA256SignatureMethod, // requests are signed
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataOmitValidUntil:           true,
		AllowIDPInitiated:                false,
		RejectSHA1Signatures:             true,
		RejectUnknownConditions:          true,
		ReplayCache:                      replayCache{ctx: ctx, s: s, host: host},
	}
	if c != nil {
		sp.IDPMetadata, err = s.idpMetadata(ctx, *c)
		if err != nil {
			return nil, err
		}
	}
	return sp, nil
}

// Metadata is the host's SP metadata document (XML).
func (s *Service) Metadata(ctx context.Context, host, issuer string) ([]byte, error) {
	sp, err := s.serviceProvider(ctx, host, issuer, nil)
	if err != nil {
		return nil, err
	}
	out, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("saml: SP metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// Start begins a sign-in for the pending authorization request ref: it sets the cookie that
// binds the request to this browser and returns the IdP URL to send the browser to.
func (s *Service) Start(ctx context.Context, w http.ResponseWriter, host, issuer string, c Config, ref string) (string, error) {
	sp, err := s.serviceProvider(ctx, host, issuer, &c)
	if err != nil {
		return "", err
	}
	sso := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if sso == "" {
		return "", fmt.Errorf("%w: it has no single sign-on service with the HTTP-Redirect binding", ErrIdPUnavailable)
	}
	req, err := sp.MakeAuthenticationRequest(sso, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", fmt.Errorf("saml: authentication request: %w", err)
	}
	u, err := req.Redirect("", sp)
	if err != nil {
		return "", fmt.Errorf("saml: authentication request: %w", err)
	}
	exp := s.now().Add(RequestTTL)
	payload := strings.Join([]string{host, req.ID, ref, strconv.FormatInt(exp.Unix(), 10)}, "|")
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(host), Value: b64(payload) + "." + b64(string(s.mac(payload))),
		Path: s.cookiePath(issuer), MaxAge: int(RequestTTL / time.Second), Expires: exp,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return u.String(), nil
}

// Response checks the IdP's response POSTed to the ACS: a signed response or assertion from
// the configured IdP, for this SP's entity ID, within its validity window (with the library's
// clock skew), answering a request of this SP (InResponseTo), never seen before (the
// assertion ID is recorded until it expires), with an email attribute. It returns the URL of
// the ACS to send the browser to, carrying the identity sealed; Finish completes the sign-in
// there, in the browser that started it. The POST itself may come without the browser's
// cookies (a cross-site form post), which is why the check of the browser waits for the GET.
func (s *Service) Response(ctx context.Context, r *http.Request, host, issuer string, c Config) (string, error) {
	raw := r.PostFormValue("SAMLResponse")
	if raw == "" {
		return "", fmt.Errorf("%w: no SAMLResponse", ErrRefused)
	}
	doc, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(raw), ""))
	if err != nil {
		return "", fmt.Errorf("%w: SAMLResponse is not base64", ErrRefused)
	}
	requestID, err := inResponseTo(doc)
	if err != nil {
		return "", err
	}
	sp, err := s.serviceProvider(ctx, host, issuer, &c)
	if err != nil {
		return "", err
	}
	assertion, err := sp.ParseXMLResponse(doc, []string{requestID}, sp.AcsURL)
	if err != nil {
		var ire *saml.InvalidResponseError
		if errors.As(err, &ire) && ire.PrivateErr != nil {
			err = ire.PrivateErr
		}
		if errors.Is(err, saml.ErrAssertionReplayed) {
			return "", fmt.Errorf("%w: %w", ErrReplayed, err)
		}
		return "", fmt.Errorf("%w: %w", ErrRefused, err)
	}
	id := Identity{IdP: assertion.Issuer.Value, EmailVerified: c.EmailVerified}
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		id.Subject = strings.TrimSpace(assertion.Subject.NameID.Value)
	}
	if id.Subject == "" {
		return "", fmt.Errorf("%w: the assertion has no NameID", ErrRefused)
	}
	if id.Email, err = email(assertion, c.EmailAttribute); err != nil {
		return "", err
	}
	sealed, err := s.seal(host, result{RequestID: requestID, Identity: id, Expires: s.now().Add(resultTTL).Unix()})
	if err != nil {
		return "", err
	}
	return EndpointsOf(issuer).ACSURL + "?result=" + sealed, nil
}

// Finish completes the sign-in in the browser: the result Response sealed must answer the
// request this browser's cookie names, and that request is used once. It returns the identity
// and the pending authorization request the sign-in was started for.
func (s *Service) Finish(ctx context.Context, w http.ResponseWriter, r *http.Request, host, issuer string) (Identity, string, error) {
	res, err := s.open(host, r.URL.Query().Get("result"))
	if err != nil {
		return Identity{}, "", err
	}
	now := s.now()
	if !now.Before(time.Unix(res.Expires, 0)) {
		return Identity{}, "", fmt.Errorf("%w: the sign-in took too long", ErrOtherBrowser)
	}
	requestID, ref, exp, ok := s.tracked(r, host)
	if !ok || !hmac.Equal([]byte(requestID), []byte(res.RequestID)) {
		return Identity{}, "", ErrOtherBrowser
	}
	if !exp.After(now) {
		exp = now.Add(time.Minute)
	}
	if err := s.store.UseOnce(ctx, host, KindRequest, requestID, exp.Add(resultTTL), now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Identity{}, "", ErrReplayed
		}
		return Identity{}, "", fmt.Errorf("saml: record the request: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(host), Value: "", Path: s.cookiePath(issuer), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return res.Identity, ref, nil
}

func (s *Service) cookieName(host string) string { return "tg_saml_" + host }

func (s *Service) cookiePath(issuer string) string {
	u, err := url.Parse(strings.TrimSuffix(issuer, "/") + "/auth/saml/")
	if err != nil {
		return "/"
	}
	return u.Path
}

func (s *Service) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.cookieKey)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// tracked reads the browser's sign-in cookie of host: the request ID, the pending reference
// and the cookie's expiry.
func (s *Service) tracked(r *http.Request, host string) (requestID, ref string, exp time.Time, ok bool) {
	for _, c := range r.CookiesNamed(s.cookieName(host)) {
		p64, m64, found := strings.Cut(c.Value, ".")
		if !found {
			continue
		}
		payload, err1 := base64.RawURLEncoding.DecodeString(p64)
		mac, err2 := base64.RawURLEncoding.DecodeString(m64)
		if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(string(payload))) {
			continue
		}
		parts := strings.Split(string(payload), "|")
		if len(parts) != 4 || parts[0] != host || parts[1] == "" {
			continue
		}
		unix, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil || !s.now().Before(time.Unix(unix, 0)) {
			continue
		}
		return parts[1], parts[2], time.Unix(unix, 0), true
	}
	return "", "", time.Time{}, false
}

// result is what Response hands to Finish through the browser, sealed.
type result struct {
	RequestID string   `json:"rid"`
	Identity  Identity `json:"id"`
	Expires   int64    `json:"exp"`
}

func (s *Service) seal(host string, res result) (string, error) {
	plain, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(host))), nil
}

func (s *Service) open(host, sealed string) (result, error) {
	var res result
	if sealed == "" || len(sealed) > 8<<10 {
		return res, fmt.Errorf("%w: no result", ErrRefused)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return res, fmt.Errorf("%w: malformed result", ErrRefused)
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(host))
	if err != nil {
		return res, fmt.Errorf("%w: result not sealed by this gateway for this host", ErrRefused)
	}
	if err := json.Unmarshal(plain, &res); err != nil {
		return res, fmt.Errorf("%w: malformed result", ErrRefused)
	}
	return res, nil
}

// inResponseTo reads the InResponseTo of a Response without trusting it: the SP then requires
// the signed response and assertion to answer exactly that request, and Finish requires it to
// be the request of the browser's cookie. A response without one is unsolicited.
func inResponseTo(doc []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("%w: malformed response", ErrRefused)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != "urn:oasis:names:tc:SAML:2.0:protocol" || start.Name.Local != "Response" {
			return "", fmt.Errorf("%w: not a SAML Response", ErrRefused)
		}
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "InResponseTo" && a.Value != "" {
				if len(a.Value) > 256 {
					return "", fmt.Errorf("%w: InResponseTo too long", ErrRefused)
				}
				return a.Value, nil
			}
		}
		return "", ErrUnsolicited
	}
}

// email is the person's email from the assertion's attributes.
func email(a *saml.Assertion, attr string) (string, error) {
	names := DefaultEmailAttributes
	if attr != "" {
		names = []string{attr}
	}
	for _, name := range names {
		for _, st := range a.AttributeStatements {
			for _, at := range st.Attributes {
				if at.Name != name && at.FriendlyName != name {
					continue
				}
				for _, v := range at.Values {
					e := strings.TrimSpace(v.Value)
					if addr, err := mail.ParseAddress(e); err == nil && addr.Address == e && addr.Name == "" && len(e) <= 254 {
						return e, nil
					}
				}
			}
		}
	}
	return "", ErrNoEmail
}

// idpMetadata is the IdP's metadata as c gives it.
func (s *Service) idpMetadata(ctx context.Context, c Config) (*saml.EntityDescriptor, error) {
	switch {
	case c.IdPMetadataXML != "":
		return parseMetadata([]byte(c.IdPMetadataXML))
	case c.IdPMetadataURL != "":
		return s.fetchMetadata(ctx, c.IdPMetadataURL)
	case c.EntryPoint != "":
		cert, err := ParseCertificate(c.IdPCertificate)
		if err != nil {
			return nil, fmt.Errorf("saml: idp_certificate: %w", err)
		}
		return &saml.EntityDescriptor{
			EntityID: c.IdPEntityID,
			IDPSSODescriptors: []saml.IDPSSODescriptor{{
				SSODescriptor: saml.SSODescriptor{RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
					KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
						X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}},
					}}}},
				}},
				SingleSignOnServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: c.EntryPoint}},
			}},
		}, nil
	}
	return nil, errors.New("saml: no IdP configured")
}

func parseMetadata(data []byte) (*saml.EntityDescriptor, error) {
	e, err := crewsp.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("not IdP metadata: %w", err)
	}
	if len(e.IDPSSODescriptors) == 0 {
		return nil, errors.New("not IdP metadata: no IDPSSODescriptor")
	}
	return e, nil
}

func (s *Service) fetchMetadata(ctx context.Context, u string) (*saml.EntityDescriptor, error) {
	now := s.now()
	s.mu.Lock()
	if c, ok := s.cache[u]; ok && now.Before(c.expires) {
		s.mu.Unlock()
		return c.entity, nil
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	resp, err := s.fetch.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %d", ErrIdPUnavailable, req.URL.Redacted(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	if len(body) > maxMetadataBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrIdPUnavailable, maxMetadataBytes)
	}
	e, err := parseMetadata(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCachedMetadata {
		for k, c := range s.cache {
			if !now.Before(c.expires) || len(s.cache) >= maxCachedMetadata {
				delete(s.cache, k)
			}
		}
	}
	s.cache[u] = cachedMetadata{entity: e, expires: now.Add(MetadataTTL)}
	return e, nil
}

// replayCache records accepted assertion IDs in the store, for every replica.
type replayCache struct {
	ctx  context.Context
	s    *Service
	host string
}

func (c replayCache) Consume(id string, expiresAt time.Time) error {
	now := c.s.now()
	if !expiresAt.After(now) {
		expiresAt = now.Add(time.Minute)
	}
	err := c.s.store.UseOnce(c.ctx, c.host, KindAssertion, id, expiresAt, now)
	if errors.Is(err, store.ErrConflict) {
		return saml.ErrAssertionReplayed
	}
	return err
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
