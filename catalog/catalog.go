// Package catalog is the host's catalog of upstream MCP servers and their tools: it classifies
// what discovery (package catalog/discovery) finds, imports a server with its tools, syncs them
// with what the upstream lists now, flags a tool whose definition changed since it was approved,
// and records an admin's approval. Each of these is one store transaction: a change is saved
// whole or not at all. The admin API, the consent flow's Dynamic MCPs and the proxy's check of
// tools/list answers all change the catalog through it.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/telemetry"
)

// Store is what the catalog needs of the store: transactions of server, tool and grant writes,
// and the reads that come before them.
type Store interface {
	store.Transactor
	ListServers(ctx context.Context, host string) ([]store.Server, error)
	GetGrant(ctx context.Context, host, server, userID string) (store.Grant, error)
	GetUser(ctx context.Context, host, id string) (store.User, error)
}

// Config is what a Catalog writes to, reports on, and how it reaches upstream servers.
type Config struct {
	Store   Store
	Audit   audit.Appender   // nil: no audit entries of flagged or new tools
	Metrics *telemetry.Tools // nil: no metric
	Log     *slog.Logger     // nil: discarded
	// Discovery options for import and sync (timeouts). Their HTTP client is replaced by one
	// that dials under the server's network policy.
	Discovery discovery.Options
	// HostNetworks is what servers on network "host" may reach: public addresses plus the
	// operator's prefixes (the zero value: public addresses only). Servers on "any" reach
	// every address.
	HostNetworks ssrf.Policy
	// Keys unseal a stored server's header credential for sync (required only for servers
	// that have one).
	Keys *secrets.Keyring
}

// Catalog changes the servers and tools of every host. It is safe for concurrent use.
type Catalog struct {
	store   Store
	audit   audit.Appender
	metrics *telemetry.Tools
	log     *slog.Logger
	reach   reach
	keys    *secrets.Keyring
}

// New returns the catalog over cfg.Store.
func New(cfg Config) *Catalog {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Catalog{store: cfg.Store, audit: cfg.Audit, metrics: cfg.Metrics, log: log,
		reach: newReach(cfg.Discovery, cfg.HostNetworks), keys: cfg.Keys}
}

var slugInvalid = regexp.MustCompile(`[^a-z0-9_-]+`)

// Slug makes a server key from a name: "Linear MCP" → "linear-mcp" ("" when nothing is left).
func Slug(name string) string {
	s := strings.Trim(slugInvalid.ReplaceAllString(strings.ToLower(name), "-"), "-_")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-_")
	}
	return s
}

// StoredTool is a discovered tool as the store keeps it; imported tools count as approved.
func StoredTool(host, server string, t discovery.Tool, enabled bool) store.Tool {
	annotations := ""
	if b, err := json.Marshal(t.Annotations); err == nil && string(b) != "{}" {
		annotations = string(b)
	}
	return store.Tool{
		Host: host, Server: server, Name: t.Name, Title: t.Title, Description: t.Description,
		InputSchema: string(t.InputSchema), OutputSchema: string(t.OutputSchema), Annotations: annotations, Level: t.Level, Enabled: enabled,
		DefinitionHash: t.Hash, ApprovedHash: t.Hash,
	}
}

// StoredTools converts every discovered tool of an import; a tool whose definition may carry
// hidden instructions (Screen) is flagged for review instead, disabled and not approved.
func StoredTools(host, server string, found []discovery.Tool, enabled bool) []store.Tool {
	out := make([]store.Tool, 0, len(found))
	for _, t := range found {
		out = append(out, screened(StoredTool(host, server, t, enabled)))
	}
	return out
}

// Import creates the server and its tools in one transaction: when a tool cannot be saved,
// nothing is (ErrConflict of the store when the key is taken passes through).
func (c *Catalog) Import(ctx context.Context, srv store.Server, tools []store.Tool) (store.Server, error) {
	var saved store.Server
	err := c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		var err error
		saved, err = createWithTools(ctx, tx, srv, tools)
		return err
	})
	if err != nil {
		return store.Server{}, err
	}
	return saved, nil
}

func createWithTools(ctx context.Context, tx store.Tx, srv store.Server, tools []store.Tool) (store.Server, error) {
	if _, err := tx.CreateServer(ctx, srv); err != nil {
		return store.Server{}, err
	}
	for _, t := range tools {
		if _, err := tx.PutTool(ctx, t); err != nil {
			return store.Server{}, fmt.Errorf("import tool %q: %w", t.Name, err)
		}
	}
	return tx.GetServer(ctx, srv.Host, srv.Key)
}

// Fill saves the tools of a server saved without any (connected by URL, or imported with an
// OAuth client, before a human signed in to it), in one transaction. filled is false when the
// server has tools already (another fill came first) or is gone.
func (c *Catalog) Fill(ctx context.Context, host, server string, found []discovery.Tool, enable bool) (filled bool, err error) {
	err = c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		filled = false
		existing, err := tx.ListTools(ctx, host, server)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || len(existing) > 0 {
			return err
		}
		for _, t := range StoredTools(host, server, found, enable) {
			if _, err := tx.PutTool(ctx, t); err != nil {
				return fmt.Errorf("save discovered tool %q: %w", t.Name, err)
			}
		}
		filled = true
		return nil
	})
	return filled, err
}
