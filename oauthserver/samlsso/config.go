// Package samlsso is the SAML 2.0 service provider of each host (github.com/crewjam/saml): its
// settings, its key pair (derived from the master key), its metadata, the authentication
// request a sign-in starts with, and the checks of the IdP's response (signature, audience,
// validity window, InResponseTo of a request this browser started, replay, email attribute).
// It hands the identity to the OAuth server, which signs the person in; it writes no page.
package samlsso

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// Config is a host's SAML settings, the method's non-secret configuration (JSON). The IdP is
// given in one of three ways: IdPMetadataURL, IdPMetadataXML, or EntryPoint + IdPEntityID +
// IdPCertificate.
type Config struct {
	// IdPMetadataURL is an https URL of the IdP's metadata, fetched with the gateway's client
	// for URLs users supply (public addresses, or the operator's --upstream-allow-cidr
	// prefixes; no redirects; bounded) and kept for MetadataTTL.
	IdPMetadataURL string `json:"idp_metadata_url,omitempty"`
	// IdPMetadataXML is the IdP's metadata document itself.
	IdPMetadataXML string `json:"idp_metadata_xml,omitempty"`
	// EntryPoint is the IdP's single sign-on URL (HTTP-Redirect binding), IdPEntityID its
	// entity ID (the Issuer of its responses) and IdPCertificate its X.509 signing
	// certificate (PEM, or the base64 DER of a metadata document's X509Certificate).
	EntryPoint     string `json:"entry_point,omitempty"`
	IdPEntityID    string `json:"idp_entity_id,omitempty"`
	IdPCertificate string `json:"idp_certificate,omitempty"`
	// EmailAttribute names the assertion attribute holding the person's email (Name or
	// FriendlyName); empty tries the usual names (DefaultEmailAttributes).
	EmailAttribute string `json:"email_attribute,omitempty"`
	// EmailVerified says the IdP is authoritative for the emails it asserts (the company's
	// own directory): only then does the email count as verified, so that it may link to an
	// existing account. Off by default.
	EmailVerified bool `json:"email_verified,omitempty"`
}

// DefaultEmailAttributes are the attribute names tried for the email, in order, when
// Config.EmailAttribute is empty: the LDAP mail OID, the names Microsoft Entra ID / ADFS,
// Okta, Google and Keycloak use.
var DefaultEmailAttributes = []string{
	"urn:oid:0.9.2342.19200300.100.1.3",
	"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
	"mail",
	"email",
	"emailAddress",
	"Email",
}

// Limits of the settings.
const (
	maxMetadataXML = 192 << 10 // fits, JSON-escaped, in the store's bound of a method's settings
	maxConfigText  = 2048
	maxCertificate = 16 << 10
)

var configKeys = []string{"idp_metadata_url", "idp_metadata_xml", "entry_point", "idp_entity_id", "idp_certificate", "email_attribute", "email_verified"}

// ParseConfig reads and checks a host's SAML settings. Its errors say what to fix.
func ParseConfig(raw json.RawMessage) (Config, error) {
	if len(raw) == 0 {
		return Config{}, errors.New("saml: no settings: give idp_metadata_url, idp_metadata_xml, or entry_point + idp_entity_id + idp_certificate")
	}
	if _, err := strictjson.ParseObject(raw, configKeys...); err != nil {
		return Config{}, fmt.Errorf("saml settings: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("saml settings: %w", err)
	}
	return c, c.Validate()
}

// Validate checks the settings.
func (c Config) Validate() error {
	for name, v := range map[string]string{"idp_metadata_url": c.IdPMetadataURL, "entry_point": c.EntryPoint, "idp_entity_id": c.IdPEntityID, "email_attribute": c.EmailAttribute} {
		if len(v) > maxConfigText {
			return fmt.Errorf("saml: %s is longer than %d bytes", name, maxConfigText)
		}
	}
	if len(c.IdPMetadataXML) > maxMetadataXML {
		return fmt.Errorf("saml: idp_metadata_xml is longer than %d bytes", maxMetadataXML)
	}
	sources := 0
	if c.IdPMetadataURL != "" {
		sources++
		if err := checkURL("idp_metadata_url", c.IdPMetadataURL, false); err != nil {
			return err
		}
	}
	if c.IdPMetadataXML != "" {
		sources++
		if _, err := parseMetadata([]byte(c.IdPMetadataXML)); err != nil {
			return fmt.Errorf("saml: idp_metadata_xml: %w", err)
		}
	}
	if c.EntryPoint != "" || c.IdPEntityID != "" || c.IdPCertificate != "" {
		sources++
		if c.EntryPoint == "" || c.IdPEntityID == "" || c.IdPCertificate == "" {
			return errors.New("saml: entry_point, idp_entity_id and idp_certificate go together: give all three")
		}
		if err := checkURL("entry_point", c.EntryPoint, true); err != nil {
			return err
		}
		if _, err := ParseCertificate(c.IdPCertificate); err != nil {
			return fmt.Errorf("saml: idp_certificate: %w", err)
		}
	}
	switch sources {
	case 0:
		return errors.New("saml: give the IdP: idp_metadata_url, idp_metadata_xml, or entry_point + idp_entity_id + idp_certificate")
	case 1:
		return nil
	default:
		return errors.New("saml: give the IdP one way only: idp_metadata_url, idp_metadata_xml, or entry_point + idp_entity_id + idp_certificate")
	}
}

// checkURL: an absolute https URL (http too when allowHTTP: the browser, not the gateway,
// goes to an entry point) without user information or fragment.
func checkURL(name, raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("saml: %s must be an absolute URL without user information or fragment", name)
	}
	if u.Scheme != "https" && !(allowHTTP && u.Scheme == "http") {
		return fmt.Errorf("saml: %s must be an https URL", name)
	}
	return nil
}

// ParseCertificate reads an X.509 certificate given as PEM or as base64 DER.
func ParseCertificate(s string) (*x509.Certificate, error) {
	if len(s) > maxCertificate {
		return nil, fmt.Errorf("longer than %d bytes", maxCertificate)
	}
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		b, rest := pem.Decode([]byte(s))
		if b == nil || b.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("want one PEM CERTIFICATE block")
		}
		der = b.Bytes
	} else {
		var err error
		der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, errors.New("want a PEM certificate or base64 DER")
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("not an X.509 certificate: %w", err)
	}
	return cert, nil
}
