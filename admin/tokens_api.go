package admin

import (
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/store"
)

func tokenDoc(t store.APIToken) Token {
	return Token{ID: t.ID, Name: t.Name, Host: t.Host, Prefix: t.Prefix, Scope: scopeName(t.Scope), CreatedAt: t.CreatedAt, LastUsedAt: timePtr(t.LastUsedAt)}
}

func (a *API) listTokens(r *http.Request, host string) (int, any, error) {
	toks, err := a.cfg.Store.ListAPITokens(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	docs := make([]Token, len(toks))
	for i, t := range toks {
		docs[i] = tokenDoc(t)
	}
	page, err := paginate(r, docs, func(t Token) string { return t.ID })
	return http.StatusOK, page, err
}

func (a *API) createToken(r *http.Request, host string) (int, any, error) {
	var req TokenCreate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return 0, nil, problemf(http.StatusBadRequest, "a token needs a name saying who or what uses it")
	}
	scope, err := tokenScope(req.Scope)
	if err != nil {
		return 0, nil, err
	}
	secret, hash, prefix := NewTokenSecret()
	t, err := a.cfg.Store.CreateAPIToken(r.Context(), store.APIToken{Host: host, Name: name, Hash: hash, Prefix: prefix, Scope: scope})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, TokenCreated{Token: tokenDoc(t), Secret: secret}, nil
}

// deleteToken revokes a token of the given scope; a token of another scope is not found.
func (a *API) deleteToken(r *http.Request, host string) (int, any, error) {
	id := r.PathValue("token")
	toks, err := a.cfg.Store.ListAPITokens(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	for _, t := range toks {
		if t.ID == id {
			if err := a.cfg.Store.DeleteAPIToken(r.Context(), id); err != nil {
				return 0, nil, err
			}
			return http.StatusNoContent, nil, nil
		}
	}
	return 0, nil, problemf(http.StatusNotFound, "API token not found: %s", id)
}

func (a *API) listHostTokens(r *http.Request, _ *caller) (int, any, error) {
	if _, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host")); err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	return a.listTokens(r, r.PathValue("host"))
}

func (a *API) createHostToken(r *http.Request, _ *caller) (int, any, error) {
	return a.createToken(r, r.PathValue("host"))
}

func (a *API) deleteHostToken(r *http.Request, _ *caller) (int, any, error) {
	return a.deleteToken(r, r.PathValue("host"))
}

func (a *API) listGlobalTokens(r *http.Request, _ *caller) (int, any, error) {
	return a.listTokens(r, "")
}

func (a *API) createGlobalToken(r *http.Request, _ *caller) (int, any, error) {
	return a.createToken(r, "")
}

func (a *API) deleteGlobalToken(r *http.Request, _ *caller) (int, any, error) {
	return a.deleteToken(r, "")
}
