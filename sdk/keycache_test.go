package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A refresh of the keys (a token named a kid the cache does not hold) must not stall the
// verification of tokens signed by a key already known, and the requests that do need the new
// keys share the one fetch.
func TestKeyCacheRefreshBlocksNoOneWithAKnownKey(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int32
	release := make(chan struct{})
	c := &keyCache{maxAge: time.Hour, fetch: func(context.Context) (map[string]*ecdsa.PublicKey, error) {
		if fetches.Add(1) == 1 {
			return map[string]*ecdsa.PublicKey{"k1": &k1.PublicKey}, nil
		}
		<-release // the issuer is slow
		return map[string]*ecdsa.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey}, nil
	}}
	ctx := context.Background()
	if _, err := c.get(ctx, "k1"); err != nil {
		t.Fatal(err)
	}

	results := make(chan error, 2)
	for range 2 { // two tokens signed by the new key: one fetch, both wait for it
		go func() {
			key, err := c.get(ctx, "k2")
			if err == nil && !key.Equal(&k2.PublicKey) {
				err = errors.New("wrong key")
			}
			results <- err
		}()
	}
	for fetches.Load() < 2 {
		time.Sleep(time.Millisecond)
	}

	known := make(chan error, 1)
	go func() { _, err := c.get(ctx, "k1"); known <- err }()
	select {
	case err := <-known:
		if err != nil {
			t.Fatalf("a token of the known key while the refresh runs: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a token of the known key waited for the refresh of the keys")
	}

	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("a token of the new key: %v", err)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the first, and one refresh shared by both)", n)
	}
}
