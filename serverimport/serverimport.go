// Package serverimport saves a discovered MCP server and its tools in the store: the one import
// path the admin API and Dynamic MCPs (servers a human connects by URL at consent) share.
package serverimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/trustgate/trustgate/discovery"
	"github.com/trustgate/trustgate/store"
)

var slugInvalid = regexp.MustCompile(`[^a-z0-9_-]+`)

// Slug makes a server key from a name: "Linear MCP" → "linear-mcp" ("" when nothing is left).
func Slug(name string) string {
	s := strings.Trim(slugInvalid.ReplaceAllString(strings.ToLower(name), "-"), "-_")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-_")
	}
	return s
}

// Tool is a discovered tool as the store keeps it; imported tools count as approved.
func Tool(host, server string, t discovery.Tool, enabled bool) store.Tool {
	annotations := ""
	if b, err := json.Marshal(t.Annotations); err == nil && string(b) != "{}" {
		annotations = string(b)
	}
	return store.Tool{
		Host: host, Server: server, Name: t.Name, Title: t.Title, Description: t.Description,
		InputSchema: string(t.InputSchema), Annotations: annotations, Level: t.Level, Enabled: enabled,
		DefinitionHash: t.Hash, ApprovedHash: t.Hash,
	}
}

// Tools converts every discovered tool.
func Tools(host, server string, found []discovery.Tool, enabled bool) []store.Tool {
	out := make([]store.Tool, 0, len(found))
	for _, t := range found {
		out = append(out, Tool(host, server, t, enabled))
	}
	return out
}

// Save creates the server and its tools. Nothing is left half-written: when a tool cannot be
// saved the server is removed again (its ErrConflict when the key is taken passes through).
func Save(ctx context.Context, st store.Store, srv store.Server, tools []store.Tool) (store.Server, error) {
	if _, err := st.CreateServer(ctx, srv); err != nil {
		return store.Server{}, err
	}
	for _, t := range tools {
		if _, err := st.PutTool(ctx, t); err != nil {
			if delErr := st.DeleteServer(context.WithoutCancel(ctx), srv.Host, srv.Key); delErr != nil {
				err = errors.Join(err, fmt.Errorf("remove the half-imported server: %w", delErr))
			}
			return store.Server{}, fmt.Errorf("import tool %q: %w", t.Name, err)
		}
	}
	return st.GetServer(ctx, srv.Host, srv.Key)
}
