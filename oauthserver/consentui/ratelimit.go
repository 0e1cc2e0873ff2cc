package consentui

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter limits login attempts per key (an account, a client address): at most limit attempts
// in a burst, refilled at limit per window. It is a token bucket kept as one timestamp per key
// (the generic cell rate algorithm): after limit attempts in quick succession the next one is
// allowed window/limit later, and after a full window of quiet the whole budget is back.
//
// Allow counts the attempt it allows, so concurrent requests cannot together exceed the budget;
// Success forgets a key. With one Limiter per kind of key, a login handler calls
// Allow(address) and then Allow(account) before checking the password, and Success(account)
// after a correct one. Calling Success for the address key too would let someone who owns one
// account reset their address's budget with their own logins; don't.
//
// Memory is bounded: at most maxKeys keys are remembered, the least recently used forgotten
// first; Sweep forgets the keys whose budget is full again. A Limiter is safe for concurrent
// use.
type Limiter struct {
	interval time.Duration // window / limit: the cost of one attempt
	burst    time.Duration // window - interval: how far ahead of now the schedule may run

	mu   sync.Mutex
	keys keyTable[limitEntry]
}

type limitEntry struct {
	// tat is the theoretical arrival time: the budget is full again at tat.
	tat time.Time
}

// NewLimiter returns a Limiter allowing limit attempts per window for each key, remembering at
// most maxKeys keys (DefaultMaxKeys when maxKeys <= 0). For example NewLimiter(5, 15*time.Minute,
// 0) per account and NewLimiter(20, 15*time.Minute, 0) per client address. It panics when limit
// < 1 or window < limit nanoseconds: those are programming errors.
func NewLimiter(limit int, window time.Duration, maxKeys int) *Limiter {
	if limit < 1 || window < time.Duration(limit) {
		panic("consentui: NewLimiter needs limit >= 1 and a positive window")
	}
	interval := window / time.Duration(limit)
	return &Limiter{interval: interval, burst: window - interval, keys: newKeyTable[limitEntry](maxKeys)}
}

// Allow reports whether one more attempt for key is allowed at now, and counts it when it is.
// When it is not, retryAfter is how long until the next attempt would be allowed (for a
// Retry-After header, or "try again in N minutes").
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	key = limitKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()

	e := l.keys.get(key)
	tat := now
	if e != nil && e.tat.After(now) {
		tat = e.tat
	}
	if ahead := tat.Sub(now); ahead > l.burst {
		return false, ahead - l.burst
	}
	next := tat.Add(l.interval)
	if e != nil {
		e.tat = next
		return true, 0
	}
	l.keys.add(key, limitEntry{tat: next})
	return true, 0
}

// Success forgets key: its whole budget is available again.
func (l *Limiter) Success(key string) {
	key = limitKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys.forget(key)
}

// Refund gives back one attempt Allow counted for key at or before now: a login handler that
// counts failures only calls Allow(address) before checking the password (so that concurrent
// attempts cannot together exceed the budget) and Refund(address) after a correct one. Unlike
// Success it returns a single attempt, so a correct password never buys more attempts than
// it used.
func (l *Limiter) Refund(key string, now time.Time) {
	key = limitKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys.get(key)
	if e == nil {
		return
	}
	e.tat = e.tat.Add(-l.interval)
	if !e.tat.After(now) {
		l.keys.forget(key)
	}
}

// Sweep forgets the keys whose budget is full again at now. Allow bounds memory by itself; a
// server may call Sweep periodically to give memory back sooner.
func (l *Limiter) Sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys.sweep(func(e *limitEntry) bool { return !e.tat.After(now) })
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.len()
}

// AddressKey turns a client address (from forwarded.Trust.ClientAddr) into a Limiter key. IPv6 addresses are
// folded into their /64, since one subscriber usually holds a whole /64 and could otherwise
// take a fresh budget with every address in it.
func AddressKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "addr:" + addr
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + a.String()
}
