package samlsso

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"time"
)

// The SP's key pair of a host is derived from the gateway's secret (itself derived from the
// master key): ECDSA P-256 from HMAC-SHA256(secret, label || host || counter), with a
// self-signed certificate signed deterministically (RFC 6979), so that every replica serves the
// same metadata and nothing is stored. Rotating the master key's primary key changes it.

// certificate validity: fixed, so that the certificate is the same at every start.
var (
	certNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

func spKey(secret []byte, host, entityID string) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	var key *ecdsa.PrivateKey
	for i := uint32(0); key == nil; i++ {
		if i == 16 {
			return nil, nil, fmt.Errorf("saml: no usable SP key derived for %s", host)
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("trustgate/saml/sp-key/v1\x00" + host + "\x00"))
		_ = binary.Write(m, binary.BigEndian, i)
		// A derived value of zero or at least the group order is not a scalar: try the next.
		key, _ = ecdsa.ParseRawPrivateKey(elliptic.P256(), m.Sum(nil))
	}
	serial := new(big.Int).SetBytes(derive(secret, "trustgate/saml/sp-cert-serial/v1\x00"+host)[:16])
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: truncate(entityID, 64)},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	// A nil random source makes ECDSA signatures deterministic (RFC 6979).
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("saml: SP certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("saml: SP certificate: %w", err)
	}
	return key, cert, nil
}

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
