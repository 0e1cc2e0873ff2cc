package gateway

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/trustgate/trustgate/internal/certfile"
	"github.com/trustgate/trustgate/internal/forwarded"
)

// hstsValue asks browsers to reach the gateway over HTTPS only, for two years.
const hstsValue = "max-age=63072000"

// tlsConfig is the HTTPS configuration cfg asks for: certificate files reloaded when they
// change, or certificates from an ACME CA; nil serves plain HTTP.
func tlsConfig(cfg Config) (*tls.Config, error) {
	switch {
	case cfg.TLSCert != "":
		r, err := certfile.New(cfg.TLSCert, cfg.TLSKey, 0, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Logger.Info("serving HTTPS with certificate files, reloaded when they change", "cert", cfg.TLSCert)
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}, nil
	case len(cfg.ACMEDomains) > 0:
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Join(cfg.DataDir, "acme")),
			HostPolicy: autocert.HostWhitelist(cfg.ACMEDomains...),
			Email:      cfg.ACMEEmail,
		}
		if cfg.ACMEDirectoryURL != "" {
			m.Client = &acme.Client{DirectoryURL: cfg.ACMEDirectoryURL}
		}
		c := m.TLSConfig() // answers the TLS-ALPN-01 challenge too
		c.MinVersion = tls.VersionTLS12
		cfg.Logger.Info("serving HTTPS with certificates from the ACME CA", "domains", cfg.ACMEDomains, "cache", filepath.Join(cfg.DataDir, "acme"))
		return c, nil
	}
	return nil, nil
}

// hsts adds Strict-Transport-Security to every answer when always is on (the gateway
// terminates TLS, or its public URL is https behind a proxy that does), and otherwise to the
// answers of requests a trusted proxy says arrived over https.
func hsts(next http.Handler, trust forwarded.Trust, always bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if always || trust.Scheme(r) == "https" {
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		next.ServeHTTP(w, r)
	})
}
