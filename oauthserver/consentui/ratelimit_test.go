package consentui

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestLimiterPerKey(t *testing.T) {
	l := NewLimiter(5, 15*time.Minute, 0)
	for i := range 5 {
		if ok, _ := l.Allow("alice@acme.com", t0); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, retry := l.Allow("alice@acme.com", t0)
	if ok {
		t.Fatal("sixth attempt in a row allowed")
	}
	if retry != 3*time.Minute {
		t.Errorf("retryAfter = %v, want 3m (window/limit)", retry)
	}
	// Other keys are not affected.
	if ok, _ := l.Allow("bob@acme.com", t0); !ok {
		t.Error("another key refused")
	}
	// A refused attempt is not counted: the wait does not grow.
	if _, retry2 := l.Allow("alice@acme.com", t0.Add(time.Minute)); retry2 != 2*time.Minute {
		t.Errorf("retryAfter a minute later = %v, want 2m", retry2)
	}
}

func TestLimiterWindow(t *testing.T) {
	l := NewLimiter(5, 15*time.Minute, 0)
	for range 5 {
		l.Allow("k", t0)
	}
	if ok, _ := l.Allow("k", t0.Add(3*time.Minute-time.Second)); ok {
		t.Fatal("allowed before one attempt's worth of the window passed")
	}
	if ok, _ := l.Allow("k", t0.Add(3*time.Minute)); !ok {
		t.Fatal("refused after window/limit")
	}
	if ok, _ := l.Allow("k", t0.Add(3*time.Minute)); ok {
		t.Fatal("two attempts allowed after window/limit")
	}
	// After a full window of quiet the whole budget is back.
	later := t0.Add(3*time.Minute + 15*time.Minute)
	for i := range 5 {
		if ok, _ := l.Allow("k", later); !ok {
			t.Fatalf("attempt %d after a quiet window refused", i+1)
		}
	}
	if ok, _ := l.Allow("k", later); ok {
		t.Fatal("budget larger than limit after a quiet window")
	}
	// Attempts spread out at the refill rate are never refused.
	l2 := NewLimiter(5, 15*time.Minute, 0)
	for i := range 50 {
		if ok, _ := l2.Allow("k", t0.Add(time.Duration(i)*3*time.Minute)); !ok {
			t.Fatalf("attempt %d at the refill rate refused", i)
		}
	}
}

func TestLimiterSuccessForgets(t *testing.T) {
	l := NewLimiter(3, time.Hour, 0)
	for range 3 {
		l.Allow("k", t0)
	}
	if ok, _ := l.Allow("k", t0); ok {
		t.Fatal("fourth attempt allowed")
	}
	l.Success("k")
	for i := range 3 {
		if ok, _ := l.Allow("k", t0); !ok {
			t.Fatalf("attempt %d after Success refused", i+1)
		}
	}
	l.Success("never seen") // no effect, no panic
}

func TestLimiterMemoryCap(t *testing.T) {
	l := NewLimiter(2, time.Hour, 1000)
	for i := range 5000 {
		l.Allow(fmt.Sprintf("user%d@example.com", i), t0)
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("Len = %d after 5000 keys, want the cap 1000", n)
	}
	// The most recent keys are remembered, the oldest forgotten.
	l.Allow("user4999@example.com", t0)
	if ok, _ := l.Allow("user4999@example.com", t0); ok {
		t.Error("a recent key lost its state")
	}
	if ok, _ := l.Allow("user0@example.com", t0); !ok {
		t.Error("an evicted key kept its state")
	}
	// Huge keys are stored hashed: memory per key is bounded.
	big := strings.Repeat("x", 1<<20)
	l.Allow(big, t0)
	l.Allow(big, t0)
	if ok, _ := l.Allow(big, t0); ok {
		t.Error("a long key is not limited")
	}
	for k := range l.keys.keys {
		if len(k) > maxKeyLen {
			t.Fatalf("stored a key of %d bytes", len(k))
		}
	}
	// Sweep forgets the keys whose budget is full again.
	l.Sweep(t0.Add(2 * time.Hour))
	if n := l.Len(); n != 0 {
		t.Errorf("Len after Sweep = %d, want 0", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	const limit = 20
	l := NewLimiter(limit, 15*time.Minute, 50)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if ok, _ := l.Allow("shared", t0); ok {
					allowed.Add(1)
				}
				l.Allow(fmt.Sprintf("g%d-%d", g, i), t0) // churn the LRU
				if i%50 == 0 {
					l.Success(fmt.Sprintf("g%d-%d", g, i))
					l.Sweep(t0)
					l.Len()
				}
			}
		}()
	}
	wg.Wait()
	// "shared" may have been evicted by the churn and started over, but every run of
	// allowed attempts is at most limit; without eviction it is exactly limit.
	if n := allowed.Load(); n < limit {
		t.Errorf("%d attempts allowed on the shared key, want at least %d", n, limit)
	}
	if n := l.Len(); n > 50 {
		t.Errorf("Len = %d, above the cap", n)
	}
	// Without churn, concurrent attempts never exceed the budget.
	l2 := NewLimiter(limit, 15*time.Minute, 0)
	allowed.Store(0)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, _ := l2.Allow("shared", t0); ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != limit {
		t.Errorf("%d concurrent attempts allowed, want exactly %d", n, limit)
	}
}

func TestNewLimiterPanics(t *testing.T) {
	for _, tc := range []struct {
		limit  int
		window time.Duration
	}{{0, time.Minute}, {5, 0}, {5, -time.Second}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLimiter(%d, %v) did not panic", tc.limit, tc.window)
				}
			}()
			NewLimiter(tc.limit, tc.window, 0)
		}()
	}
}

func TestLimiterRefund(t *testing.T) {
	l := NewLimiter(3, 3*time.Minute, 0)
	now := time.Unix(1_700_000_000, 0)
	// Counting failures only: every attempt is taken and a successful one given back, so
	// any number of successes leaves the budget whole.
	for i := range 100 {
		if ok, _ := l.Allow("addr:a", now); !ok {
			t.Fatalf("success %d refused", i)
		}
		l.Refund("addr:a", now)
	}
	if l.Len() != 0 {
		t.Errorf("%d keys after refunds", l.Len())
	}
	for range 3 {
		if ok, _ := l.Allow("addr:a", now); !ok {
			t.Fatal("failure within budget refused")
		}
	}
	if ok, _ := l.Allow("addr:a", now); ok {
		t.Fatal("4th failure allowed")
	}
	// A refund returns one attempt, never the whole budget.
	l.Refund("addr:a", now)
	if ok, _ := l.Allow("addr:a", now); !ok {
		t.Fatal("refunded attempt not available")
	}
	if ok, _ := l.Allow("addr:a", now); ok {
		t.Fatal("refund gave back more than one attempt")
	}
	l.Refund("addr:unknown", now) // no-op
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":            "addr:203.0.113.7",
		"2001:db8:1:2:3:4:5:6":   "addr:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":   "addr:2001:db8:1:2::/64",
		"pipe":                   "addr:pipe",
		"::ffff:203.0.113.7":     "addr:203.0.113.7",
		"2001:db8:1:3:3:4:5:6:7": "addr:2001:db8:1:3:3:4:5:6:7",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
