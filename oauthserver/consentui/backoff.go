package consentui

import (
	"sync"
	"time"
)

// Backoff slows down password guessing against one account without locking its owner out: the
// first Free failures cost nothing, then every further failure makes the next attempt wait
// twice as long as the one before (First, 2×First, 4×First, … up to Max). A correct password
// forgets the key; so do BackoffResetAfter of quiet.
//
// Allow counts the attempt as a failure before the password is checked (and Success forgets
// it after a correct one), so concurrent guesses cannot slip through together: of the attempts
// arriving while the account waits, none is allowed, and the one allowed when the wait ends
// starts the next, longer wait at once.
//
// Memory is bounded like Limiter's: at most maxKeys keys, least recently used forgotten first.
// A Backoff is safe for concurrent use.
type Backoff struct {
	free  int
	first time.Duration
	max   time.Duration

	mu   sync.Mutex
	keys keyTable[backoffEntry]
}

type backoffEntry struct {
	failures  int
	last      time.Time // the last attempt counted
	notBefore time.Time // no attempt is allowed before
}

// Defaults of the per-account Backoff of the sign-in page.
const (
	// BackoffFree failures in a row cost no delay (typos).
	BackoffFree = 5
	// BackoffFirst is the wait after the first failure beyond BackoffFree.
	BackoffFirst = time.Second
	// BackoffMax caps the wait: the owner of an account under attack waits at most this long.
	BackoffMax = 5 * time.Minute
	// BackoffResetAfter of no attempt forgets an account's failures.
	BackoffResetAfter = time.Hour
)

// NewBackoff returns a Backoff with free failures without delay, then waits from first,
// doubling, up to max, remembering at most maxKeys keys (DefaultMaxKeys when maxKeys <= 0). It
// panics when first <= 0 or max < first: those are programming errors.
func NewBackoff(free int, first, max time.Duration, maxKeys int) *Backoff {
	if first <= 0 || max < first || free < 0 {
		panic("consentui: NewBackoff needs free >= 0 and 0 < first <= max")
	}
	return &Backoff{free: free, first: first, max: max, keys: newKeyTable[backoffEntry](maxKeys)}
}

// delay is the wait after n failures in a row.
func (b *Backoff) delay(n int) time.Duration {
	if n <= b.free {
		return 0
	}
	d := b.first
	for i := b.free + 1; i < n; i++ {
		d *= 2
		if d >= b.max {
			return b.max
		}
	}
	return min(d, b.max)
}

// Allow reports whether an attempt for key may be made at now and, when it may, counts it as a
// failure until Success says otherwise. When it may not, retryAfter is how long to wait.
func (b *Backoff) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	key = limitKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.keys.get(key)
	if e != nil && b.quiet(e, now) {
		e.failures = 0
	}
	if e != nil && now.Before(e.notBefore) {
		return false, e.notBefore.Sub(now)
	}
	if e == nil {
		e = b.keys.add(key, backoffEntry{})
	}
	e.failures++
	e.last = now
	e.notBefore = now.Add(b.delay(e.failures))
	return true, 0
}

// Success forgets key: the attempt Allow counted was a correct password.
func (b *Backoff) Success(key string) {
	key = limitKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys.forget(key)
}

// Sweep forgets the keys quiet for BackoffResetAfter whose wait is over at now.
func (b *Backoff) Sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys.sweep(func(e *backoffEntry) bool { return b.quiet(e, now) })
}

// quiet reports whether e's failures are forgotten at now: no attempt for BackoffResetAfter and
// no wait left.
func (b *Backoff) quiet(e *backoffEntry, now time.Time) bool {
	return now.Sub(e.last) >= BackoffResetAfter && !now.Before(e.notBefore)
}

// Len returns the number of keys remembered.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys.len()
}
