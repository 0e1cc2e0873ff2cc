package accesstoken

import (
	"crypto/ecdsa"
	"sync"
	"time"
)

// DefaultVerifiedTokens is how many verified tokens a KeySet remembers by default.
const DefaultVerifiedTokens = 10000

// verifiedToken is a token whose signature verified: the key that verified it and its claims.
type verifiedToken struct {
	kid    string
	key    *ecdsa.PublicKey
	claims AccessClaims
}

// verifiedCache remembers verified tokens by the SHA-256 of the whole token. It is bounded:
// when full, expired entries are dropped, and if none is, an arbitrary one. A digest of the
// full token is not a secret comparison, so a map lookup is fine.
type verifiedCache struct {
	max int // <0: off
	mu  sync.RWMutex
	m   map[[32]byte]verifiedToken
}

func (c *verifiedCache) get(d [32]byte) (verifiedToken, bool) {
	if c.max < 0 {
		return verifiedToken{}, false
	}
	c.mu.RLock()
	v, ok := c.m[d]
	c.mu.RUnlock()
	return v, ok
}

func (c *verifiedCache) remove(d [32]byte) {
	c.mu.Lock()
	delete(c.m, d)
	c.mu.Unlock()
}

func (c *verifiedCache) put(d [32]byte, v verifiedToken, now time.Time) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[32]byte]verifiedToken)
	}
	if _, ok := c.m[d]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.claims.Expiry.Add(DefaultLeeway)) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[d] = v
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
