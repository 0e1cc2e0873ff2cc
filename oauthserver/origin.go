package oauthserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// The origin-level fallbacks. Under path routing a host's endpoints are under /h/<host>, and the
// bare public URL is the default host's. Some clients use <origin>/token, /revoke or /authorize
// whatever the metadata says: the Python SDK 1.x refreshes at <origin>/token when it starts
// with stored tokens, and clients of the 2025-03-26 revision fall back to the origin when they
// read no metadata. At the origin these three endpoints serve the host the request names:
//
//  1. the host that registered its client id (RFC 7591): registered ids are random, so one host
//     at most has one (a client id more than one host has names none of them here);
//  2. else (a Client ID Metadata Document URL, which clients of any number of hosts may share,
//     an unknown id, or none) the host whose MCP URL the resource parameter is;
//  3. else, at /token and /revoke, the host of the refresh token, code or access token presented
//     (its stored row names it);
//  4. else the default host, as before.
//
// The host's own handler then runs unchanged: its issuer, audiences, lifetimes and checks. A
// request naming two hosts (a client of A with a refresh token or a resource of B) is served by
// the first host found, which refuses what is not its own as it always does. /authorize
// redirects the browser to the host's own /authorize, whose cookies are scoped to the host's
// path. /register at the origin stays the default host's, and every other origin-level path
// too. With subdomain routing a client's origin is its host's own URL, so none of this applies.
//
// The lookups are one indexed read each (at most three); a stranger learns nothing that the
// host's own endpoints do not already tell: which host has a client id only by the answer of
// that host's endpoint, which is the same answer /h/<host>/token gives.

// maxTokenFormBytes bounds the body of token and revocation requests: a form with a client id
// (a CIMD URL of up to 2048 characters), a code or a token, and a few short parameters.
const maxTokenFormBytes = 64 << 10

// limitTokenForm bounds the request body of a token or revocation request.
func limitTokenForm(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenFormBytes)
		next(w, r)
	}
}

// originFinder is the host an origin-level request names ("" for none: the default host's).
type originFinder func(r *http.Request) (string, error)

// atOrigin runs next for the request, and for a request to the origin (tenant.AtOrigin) that
// names another host than the default one (find), serve for that host instead. A store that
// cannot be read is answered with unavailable: never the default host in its place.
func (s *Server) atOrigin(find originFinder, serve func(w http.ResponseWriter, r *http.Request, h store.Host),
	unavailable http.HandlerFunc, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !tenant.AtOrigin(r.Context()) {
			next(w, r)
			return
		}
		key, err := find(r)
		if err != nil {
			s.log.Error("oauthserver: find the host of an origin-level request", "path", r.URL.Path, "err", err)
			unavailable(w, r)
			return
		}
		if key == "" || key == tenant.DefaultHost {
			next(w, r)
			return
		}
		h, err := s.cfg.Store.GetHost(r.Context(), key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			next(w, r)
		case err != nil:
			s.log.Error("oauthserver: load the host of an origin-level request", "host", key, "err", err)
			unavailable(w, r)
		default:
			serve(w, r, h)
		}
	}
}

// serveAs runs next as a request to host h.
func serveAs(next http.HandlerFunc) func(w http.ResponseWriter, r *http.Request, h store.Host) {
	return func(w http.ResponseWriter, r *http.Request, h store.Host) {
		next(w, r.WithContext(tenant.WithStoredHost(r.Context(), h)))
	}
}

// redirectToHost sends the browser to host h's own authorization endpoint with the same query.
func (s *Server) redirectToHost(w http.ResponseWriter, r *http.Request, h store.Host) {
	target := s.issuer(h.Key) + AuthorizeEndpointPath
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// tokenUnavailable answers a token or revocation request whose host could not be looked up.
func (s *Server) tokenUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.provider.WriteAccessError(r.Context(), w, nil, fosite.ErrTemporarilyUnavailable)
}

// authorizeUnavailable answers an authorization request whose host could not be looked up.
func (s *Server) authorizeUnavailable(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.errorPage(w, http.StatusServiceUnavailable, consentui.ErrorPage{
		Title:    "Sign-in is unavailable",
		Message:  "trustgate could not read its configuration.",
		WhatToDo: "Try again from your app in a moment.",
	})
}

// tokenOriginHost finds the host of a token request at the origin: its client, its resource,
// else its refresh token or code.
func (s *Server) tokenOriginHost(r *http.Request) (string, error) {
	if r.ParseForm() != nil {
		return "", nil // the default host's endpoint answers the malformed request
	}
	f := r.PostForm
	return s.originHost(r.Context(), postedClientID(r), f.Get("resource"), func(ctx context.Context) (string, error) {
		if s.refreshSigs == nil {
			return "", nil
		}
		switch f.Get("grant_type") {
		case "refresh_token":
			return s.hostOfRow(ctx, store.OAuthRefresh, s.refreshSigs.RefreshTokenSignature(ctx, f.Get("refresh_token")))
		case "authorization_code":
			return s.hostOfRow(ctx, store.OAuthCode, s.refreshSigs.AuthorizeCodeSignature(ctx, f.Get("code")))
		}
		return "", nil
	})
}

// revokeOriginHost finds the host of a revocation request at the origin: its client, else the
// token it revokes (a refresh token, or an access token by its stored row).
func (s *Server) revokeOriginHost(r *http.Request) (string, error) {
	if r.ParseForm() != nil {
		return "", nil
	}
	token := r.PostForm.Get("token")
	return s.originHost(r.Context(), postedClientID(r), "", func(ctx context.Context) (string, error) {
		if s.refreshSigs == nil {
			return "", nil
		}
		host, err := s.hostOfRow(ctx, store.OAuthRefresh, s.refreshSigs.RefreshTokenSignature(ctx, token))
		if host != "" || err != nil {
			return host, err
		}
		return s.hostOfRow(ctx, store.OAuthAccess, (&jwtAccessTokens{s: s}).AccessTokenSignature(ctx, token))
	})
}

// authorizeOriginHost finds the host of an authorization request at the origin: its client,
// else its resource.
func (s *Server) authorizeOriginHost(r *http.Request) (string, error) {
	q := r.URL.Query()
	return s.originHost(r.Context(), q.Get("client_id"), q.Get("resource"), nil)
}

// originHost is the host a request to the origin names by its client id, else its resource,
// else by what credential finds (nil: nothing more); "" when it names none.
func (s *Server) originHost(ctx context.Context, clientID, resource string, credential func(ctx context.Context) (string, error)) (string, error) {
	if clientID != "" && !IsClientIDMetadataURL(clientID) {
		host, err := s.cfg.Store.RegisteredOAuthClientHost(ctx, clientID)
		switch {
		case err == nil:
			return host, nil
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
			// Nobody's, or more than one host's: never pick one. The request may still name
			// its host by its resource.
		default:
			return "", err
		}
	}
	if host, ok := s.cfg.URLs.HostOfMCP(resource); ok {
		return host, nil
	}
	if credential == nil {
		return "", nil
	}
	return credential(ctx)
}

// hostOfRow is the host of the stored code or token of kind with that signature ("" when
// there is none).
func (s *Server) hostOfRow(ctx context.Context, kind, signature string) (string, error) {
	if signature == "" || len(signature) > 512 {
		return "", nil
	}
	row, err := s.cfg.Store.GetOAuthRequest(ctx, kind, signature)
	switch {
	case err == nil:
		return row.Host, nil
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	default:
		return "", err
	}
}

// postedClientID is the client id of a token or revocation request as fosite reads it: the
// HTTP Basic user name (form-encoded, RFC 6749 section 2.3.1), else the client_id parameter.
func postedClientID(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		id, err := url.QueryUnescape(user)
		if err != nil {
			return ""
		}
		return id
	}
	return r.PostForm.Get("client_id")
}
