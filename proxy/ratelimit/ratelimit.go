// Package ratelimit is the proxy's token buckets: a Limiter takes one token from each of a
// call's buckets, all or none, and says how long to wait when one is empty. Memory keeps the
// buckets of one process; Redis keeps them in a Redis server that every replica shares (one
// atomic Lua script per call, the Redis server's clock for every replica), and when Redis
// cannot be reached either fails closed (the call is refused) or falls back to this process's
// own buckets, as configured.
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// Bucket is one token bucket: PerMinute tokens a minute, at most Burst held (a new bucket is
// full). Key names it among every bucket of the limiter.
type Bucket struct {
	Key       string
	PerMinute int
	Burst     int
}

// Result is the answer to Take.
type Result struct {
	Allowed bool
	// Empty is the index of the bucket that had no token (the one to wait longest for), when
	// not Allowed.
	Empty int
	// RetryAfter is how long until that bucket has a token again.
	RetryAfter time.Duration
}

// Limiter takes one token from each bucket, atomically: from all of them, or (when one is
// empty) from none.
type Limiter interface {
	Take(ctx context.Context, buckets []Bucket) (Result, error)
	// Peek answers what Take would answer now and takes nothing (the admin API's check).
	Peek(ctx context.Context, buckets []Bucket) (Result, error)
}

// DefaultMaxBuckets bounds Memory when NewMemory is given 0.
const DefaultMaxBuckets = 1 << 20

// Memory is a Limiter of one process. It is safe for concurrent use.
type Memory struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*state
}

type state struct {
	tokens float64
	at     time.Time
	full   time.Time // when it holds its burst again
}

// NewMemory returns a Memory of at most maxBuckets buckets (0: DefaultMaxBuckets). Buckets that
// are full are the same as absent ones, and are dropped when the bound is reached; when every
// bucket is in use, a call that needs a new one is refused until some refill.
func NewMemory(maxBuckets int) *Memory {
	if maxBuckets <= 0 {
		maxBuckets = DefaultMaxBuckets
	}
	return &Memory{max: maxBuckets, now: time.Now, buckets: map[string]*state{}}
}

// perSecond is b's refill rate.
func (b Bucket) perSecond() float64 { return float64(b.PerMinute) / 60 }

// capacity is b's burst (at least one token).
func (b Bucket) capacity() float64 { return math.Max(1, float64(b.Burst)) }

// Take implements Limiter.
func (m *Memory) Take(_ context.Context, buckets []Bucket) (Result, error) {
	return m.take(buckets, true)
}

// Peek implements Limiter.
func (m *Memory) Peek(_ context.Context, buckets []Bucket) (Result, error) {
	return m.take(buckets, false)
}

// take answers whether every bucket has a token, and takes them when commit is set.
func (m *Memory) take(buckets []Bucket, commit bool) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	tokens := make([]float64, len(buckets))
	res := Result{Allowed: true}
	missing := 0
	for i, b := range buckets {
		s, ok := m.buckets[b.Key]
		if !ok {
			tokens[i] = b.capacity()
			missing++
			continue
		}
		tokens[i] = refill(s, b, now)
		if tokens[i] < 1 {
			wait := time.Duration((1 - tokens[i]) / b.perSecond() * float64(time.Second))
			if res.Allowed || wait > res.RetryAfter {
				res = Result{Empty: i, RetryAfter: wait}
			}
		}
	}
	if !res.Allowed || !commit {
		return res, nil
	}
	if len(m.buckets)+missing > m.max {
		m.sweep(now)
		if len(m.buckets)+missing > m.max {
			return Result{RetryAfter: time.Second}, nil
		}
	}
	for i, b := range buckets {
		left := tokens[i] - 1
		full := now.Add(time.Duration((b.capacity() - left) / b.perSecond() * float64(time.Second)))
		m.buckets[b.Key] = &state{tokens: left, at: now, full: full}
	}
	return res, nil
}

// refill is s's tokens at now.
func refill(s *state, b Bucket, now time.Time) float64 {
	t := s.tokens
	if d := now.Sub(s.at); d > 0 {
		t += d.Seconds() * b.perSecond()
	}
	return math.Min(t, b.capacity())
}

// sweep drops the buckets that have refilled completely.
func (m *Memory) sweep(now time.Time) {
	for k, s := range m.buckets {
		if !s.full.After(now) {
			delete(m.buckets, k)
		}
	}
}
