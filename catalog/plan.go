package catalog

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/store"
)

// ImportRequest is a server an admin imports by URL.
type ImportRequest struct {
	Host    string
	URL     string
	Network string // store.NetworkHost or store.NetworkAny: what discovery may reach
	// Key, Name and Description of the server; "" takes them from what the server says of
	// itself (the key is the slug of its name).
	Key, Name, Description string
	// Header is the static header credential, sent to discovery too (nil: none).
	Header http.Header
	// OAuthClient says the server gets an OAuth client for humans' own sign-ins: a server that
	// demands one then is planned without tools, discovered when the first human signed in.
	OAuthClient bool
	EnableTools bool
}

// ImportPlan is what an import would save: the server (without credentials or timeouts, which
// the caller adds) and its tools, classified and counted as approved.
type ImportPlan struct {
	Server store.Server
	Tools  []store.Tool
	// ClientDependentTools are the tools the server lists only to clients declaring the roots,
	// sampling or elicitation capability.
	ClientDependentTools []string
}

// ErrNoKey: no key was given and the server has no name to make one from.
var ErrNoKey = errors.New("the server has no name to make a key from; give a key")

// PlanImport discovers the server of req under its network's policy and plans its import;
// nothing is saved (Import saves a plan). Discovery errors match the sentinels of package
// discovery.
func (c *Catalog) PlanImport(ctx context.Context, req ImportRequest) (ImportPlan, error) {
	found, err := c.Discover(ctx, req.URL, req.Network, req.Header)
	if errors.Is(err, discovery.ErrUnauthorized) && req.OAuthClient {
		// The server wants each human's own sign-in, which the OAuth client is for: it is
		// imported without tools, discovered when the first human has signed in to it.
		found, err = &discovery.Result{}, nil
	}
	if err != nil {
		return ImportPlan{}, err
	}
	key := req.Key
	if key == "" {
		key = Slug(firstNonEmpty(req.Name, found.ServerName))
	}
	if key == "" {
		return ImportPlan{}, ErrNoKey
	}
	srv := store.Server{Host: req.Host, Key: key, Name: firstNonEmpty(req.Name, found.ServerName, key),
		Description: firstNonEmpty(req.Description, found.Instructions), URL: req.URL, Network: req.Network}
	return ImportPlan{
		Server:               srv,
		Tools:                StoredTools(req.Host, key, found.Tools, req.EnableTools),
		ClientDependentTools: found.ClientDependentTools,
	}, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
