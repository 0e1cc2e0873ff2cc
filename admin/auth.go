package admin

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/httplimit"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// caller is the authenticated holder of an API token.
type caller struct {
	token store.APIToken
	// person names, in audit entries, the person the dashboard acts for ("" for a token).
	person string
	// change is what the handler of an audited route notes for its audit entry.
	change change
}

func (c *caller) global() bool { return c.token.Host == "" }

// authenticate finds the API token of the request. Tokens are looked up by their SHA-256, so
// the comparison that matters happens on 256-bit hashes of 256-bit random secrets.
func (a *API) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, problemf(http.StatusUnauthorized, "missing Authorization: Bearer <token>; create a token with `trustgate admin token create`")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > 256 {
		return nil, problemf(http.StatusUnauthorized, "the Authorization header must be `Bearer <token>`")
	}
	tok, err := a.cfg.Store.GetAPITokenByHash(r.Context(), HashToken(strings.TrimSpace(secret)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, problemf(http.StatusUnauthorized, "the API token is unknown or was revoked")
	}
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.TouchAPIToken(r.Context(), tok.ID, time.Now()); err != nil {
		a.log.Warn("record API token use", "token", tok.ID, "err", err)
	}
	httplimit.Trust(r.Context()) // an authenticated connection is the last to be shed
	return &caller{token: tok}, nil
}

// authorize checks the token's scope against the route: a token with scope "check" reaches the
// check routes only, global routes need a global token, and a host token reaches only its own
// host.
func (c *caller) authorize(r *http.Request, rt Route) error {
	if c.token.Scope == store.TokenScopeCheck && !checkRoutes[rt.ID] {
		return problemf(http.StatusForbidden, "the API token may only ask for decisions (scope %q: check and callable-tools); administering needs a token with scope %q", sdk.ScopeCheck, sdk.ScopeAdmin)
	}
	if c.global() {
		return nil
	}
	if rt.Global {
		return problemf(http.StatusForbidden, "this needs a global API token; the token used is scoped to host %q", c.token.Host)
	}
	if host := r.PathValue("host"); host != "" && host != c.token.Host {
		return problemf(http.StatusForbidden, "the API token is scoped to host %q and cannot act on host %q", c.token.Host, host)
	}
	return nil
}
