package webhook

import (
	"context"
	"fmt"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// Hosts reads a host (the store, or its cache).
type Hosts interface {
	GetHost(ctx context.Context, key string) (store.Host, error)
}

// StoreURLs is the URLSource of the store: each host's sealed URL, opened with the master key.
type StoreURLs struct {
	Hosts Hosts
	Keys  *secrets.Keyring
}

// WebhookURL opens the host's webhook URL; ok is false when the host has none.
func (s StoreURLs) WebhookURL(ctx context.Context, host string) (string, bool, error) {
	h, err := s.Hosts.GetHost(ctx, host)
	if err != nil {
		return "", false, fmt.Errorf("read host %s: %w", host, err)
	}
	if h.Settings.Webhook == nil {
		return "", false, nil
	}
	u, err := OpenURL(s.Keys, host, h.Settings.Webhook.SealedURL)
	if err != nil {
		return "", false, err
	}
	return u, true, nil
}
