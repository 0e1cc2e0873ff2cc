package consentui

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoffGrowsAndNeverLocksOut(t *testing.T) {
	b := NewBackoff(5, time.Second, 5*time.Minute, 0)
	now := t0
	for i := range 5 {
		if ok, _ := b.Allow("account:a", now); !ok {
			t.Fatalf("free failure %d refused", i+1)
		}
	}
	// Beyond the free failures each wait doubles, up to the cap; after each wait the next
	// attempt is allowed: a slower account, never a locked one.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		ok, retry := b.Allow("account:a", now)
		if i == 0 {
			// The 6th attempt right after the 5th failure: the 5th failure cost nothing, so it
			// is allowed, and it is what starts the first wait.
			if !ok {
				t.Fatal("6th attempt refused")
			}
			ok, retry = b.Allow("account:a", now)
		}
		if ok || retry != w {
			t.Fatalf("wait %d: ok=%v retry=%v, want a wait of %v", i, ok, retry, w)
		}
		now = now.Add(retry)
		if ok, _ := b.Allow("account:a", now); !ok {
			t.Fatalf("attempt after waiting %v refused", w)
		}
	}
	// Other accounts are not affected.
	if ok, _ := b.Allow("account:b", now); !ok {
		t.Fatal("another account refused")
	}
	// A correct password forgets the failures.
	b.Success("account:a")
	for i := range 5 {
		if ok, _ := b.Allow("account:a", now); !ok {
			t.Fatalf("failure %d after a success refused", i+1)
		}
	}
}

func TestBackoffQuietResets(t *testing.T) {
	b := NewBackoff(2, time.Second, time.Minute, 0)
	now := t0
	for range 6 {
		_, retry := b.Allow("k", now)
		now = now.Add(retry)
		b.Allow("k", now)
	}
	now = now.Add(BackoffResetAfter)
	for i := range 2 {
		if ok, _ := b.Allow("k", now); !ok {
			t.Fatalf("free failure %d after an hour of quiet refused", i+1)
		}
	}
	b.Sweep(now.Add(BackoffResetAfter))
	if b.Len() != 0 {
		t.Errorf("%d keys after sweep", b.Len())
	}
}

func TestBackoffConcurrentGuesses(t *testing.T) {
	b := NewBackoff(5, time.Minute, time.Hour, 0)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if ok, _ := b.Allow("account:a", t0); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	// 5 free failures and the one that starts the first wait; no more at the same instant.
	if n := allowed.Load(); n != 6 {
		t.Fatalf("%d concurrent guesses allowed, want 6", n)
	}
}

func TestBackoffMemoryCap(t *testing.T) {
	b := NewBackoff(0, time.Second, time.Minute, 10)
	for i := range 1000 {
		b.Allow(string(rune('a'+i%26))+string(rune(i)), t0)
	}
	if b.Len() != 10 {
		t.Fatalf("%d keys, want 10", b.Len())
	}
}
