package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Dynamic MCPs are servers a human connects by URL at consent time: discovered and classified
// like an import (tools enabled only when the host auto-enables new tools), visible to
// administrators (the description names who added it), and granted to the human at
// DynamicCeiling.

// DynamicCeiling is the ceiling a human gets on a server they connected with Dynamic MCPs:
// low (read) until an administrator reviews the server and raises it.
const DynamicCeiling = schema.Low

// MaxDynamicServersPerHuman bounds the servers one human may connect by URL in a host.
const MaxDynamicServersPerHuman = 20

// dynamicNote starts the description of a server a human connected by URL, so administrators
// see where it came from.
const dynamicNote = "Connected with Dynamic MCPs by "

// maxKeyTries bounds the keys ConnectDynamic tries: base, base-2, …
const maxKeyTries = 20

// ErrNotGranted: the host has a server at that URL already, and the human has no grant on it.
var ErrNotGranted = errors.New("the server is known in the host, but the human has no grant on it")

// TooManyDynamicError: the human connected MaxDynamicServersPerHuman servers by URL already.
type TooManyDynamicError struct{ Count int }

func (e *TooManyDynamicError) Error() string {
	return fmt.Sprintf("%d servers connected by URL already, the most allowed", e.Count)
}

// PrepareDynamic decides, before anything is discovered, what connecting the server at rawURL
// for the human does: existing is the key of the host's server at that URL when the human has a
// grant on it (nothing to connect); ErrNotGranted when there is one and the human has no
// grant; *TooManyDynamicError when the human may connect no more servers.
func (c *Catalog) PrepareDynamic(ctx context.Context, host, userID, rawURL string) (existing string, err error) {
	servers, err := c.store.ListServers(ctx, host)
	if err != nil {
		return "", err
	}
	for _, sv := range servers {
		if sv.URL == rawURL {
			if _, gerr := c.store.GetGrant(ctx, host, sv.Key, userID); gerr == nil {
				return sv.Key, nil
			}
			return "", ErrNotGranted
		}
	}
	note, err := c.dynamicNote(ctx, host, userID)
	if err != nil {
		return "", err
	}
	return "", checkDynamicCount(servers, note)
}

func (c *Catalog) dynamicNote(ctx context.Context, host, userID string) (string, error) {
	user, err := c.store.GetUser(ctx, host, userID)
	if err != nil {
		return "", err
	}
	return dynamicNote + user.Email + ".", nil
}

// checkDynamicCount is a *TooManyDynamicError when MaxDynamicServersPerHuman of servers carry
// the human's note.
func checkDynamicCount(servers []store.Server, note string) error {
	added := 0
	for _, sv := range servers {
		if sv.Description == note {
			added++
		}
	}
	if added >= MaxDynamicServersPerHuman {
		return &TooManyDynamicError{Count: added}
	}
	return nil
}

// DynamicServer is a server a human connects by URL.
type DynamicServer struct {
	Host   string
	UserID string
	URL    string
	Name   string           // the server's own name, else the URL's host name
	Tools  []discovery.Tool // nil when the server wants the human's sign-in before listing them
	Enable bool             // the host auto-enables new tools
}

// ConnectDynamic saves d on network "host" with its tools and the human's grant at
// DynamicCeiling, in one transaction, under the first free key of the name's slug ("server"
// when it has none), slug-2, … slug-20. The human's count of servers is checked again in the
// transaction.
func (c *Catalog) ConnectDynamic(ctx context.Context, d DynamicServer) (store.Server, error) {
	note, err := c.dynamicNote(ctx, d.Host, d.UserID)
	if err != nil {
		return store.Server{}, err
	}
	base := Slug(d.Name)
	if base == "" {
		base = "server"
	}
	srv := store.Server{Host: d.Host, Name: truncate(d.Name, 200), URL: d.URL, Description: note, Network: store.NetworkHost}
	for i := 1; i <= maxKeyTries; i++ {
		srv.Key = base
		if i > 1 {
			srv.Key = fmt.Sprintf("%s-%d", base, i)
		}
		var saved store.Server
		err := c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
			servers, err := tx.ListServers(ctx, d.Host)
			if err != nil {
				return err
			}
			if err := checkDynamicCount(servers, note); err != nil {
				return err
			}
			if saved, err = createWithTools(ctx, tx, srv, StoredTools(srv.Host, srv.Key, d.Tools, d.Enable)); err != nil {
				return err
			}
			_, err = tx.SetGrant(ctx, store.Grant{Host: srv.Host, Server: srv.Key, UserID: d.UserID, Ceiling: DynamicCeiling})
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.Server{}, err
		}
		return saved, nil
	}
	return store.Server{}, errors.New("no free server key")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
