package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/trustgate/trustgate/store"
)

// newTransport is the one upstream transport: pooled connections, bounded connect and
// response-header waits, no overall timeout (SSE streams last as long as they need), and no
// transparent compression (it would delay SSE events and hide bodies from the filter).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// sealedCredentials mirrors the sealed form the admin API stores (admin.credentials).
type sealedCredentials struct {
	Header *struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"header,omitempty"`
}

// credentialAAD is the additional data the admin API seals server credentials with.
func credentialAAD(host, server string) string { return "server-credentials:" + host + "/" + server }

// credential unseals a server's static header credential in memory ("" when it has none).
func (p *Proxy) credential(s store.Server) (name, value string, err error) {
	switch s.CredentialKind {
	case "":
		return "", "", nil
	case "header":
	default:
		return "", "", fmt.Errorf("credential kind %q is not supported by the proxy yet", s.CredentialKind)
	}
	if p.cfg.Keys == nil {
		return "", "", errors.New("no keyring to unseal the credentials")
	}
	plain, err := p.cfg.Keys.Open(s.Credentials, credentialAAD(s.Host, s.Key))
	if err != nil {
		return "", "", fmt.Errorf("unseal: %w", err)
	}
	var c sealedCredentials
	if err := json.Unmarshal(plain, &c); err != nil || c.Header == nil || c.Header.Name == "" {
		return "", "", errors.New("stored credentials are malformed")
	}
	return http.CanonicalHeaderKey(c.Header.Name), c.Header.Value, nil
}
