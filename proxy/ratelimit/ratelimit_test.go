package ratelimit_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/proxy/ratelimit"
)

var ctx = context.Background()

// suite is what every Limiter does.
func suite(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Run("burst then refused with retry after", func(t *testing.T) {
		l := newLimiter(t)
		b := []ratelimit.Bucket{{Key: "{h}a", PerMinute: 60, Burst: 3}}
		for i := range 3 {
			if r, err := l.Take(ctx, b); err != nil || !r.Allowed {
				t.Fatalf("take %d: %+v %v", i, r, err)
			}
		}
		r, err := l.Take(ctx, b)
		if err != nil || r.Allowed || r.Empty != 0 {
			t.Fatalf("take over the burst: %+v %v", r, err)
		}
		if r.RetryAfter <= 0 || r.RetryAfter > time.Second+50*time.Millisecond {
			t.Fatalf("retry after %v, want about a second (60 a minute)", r.RetryAfter)
		}
	})
	t.Run("peek takes nothing", func(t *testing.T) {
		l := newLimiter(t)
		b := []ratelimit.Bucket{{Key: "{h}peek", PerMinute: 1, Burst: 2}}
		for i := range 5 {
			if r, err := l.Peek(ctx, b); err != nil || !r.Allowed {
				t.Fatalf("peek %d of a full bucket: %+v %v", i, r, err)
			}
		}
		for i := range 2 {
			if r, err := l.Take(ctx, b); err != nil || !r.Allowed {
				t.Fatalf("take %d after peeks: %+v %v (a peek took a token)", i, r, err)
			}
		}
		r, err := l.Peek(ctx, b)
		if err != nil || r.Allowed || r.RetryAfter < 50*time.Second {
			t.Fatalf("peek of an empty bucket: %+v %v, want refused with about a minute to wait", r, err)
		}
	})
	t.Run("all or none", func(t *testing.T) {
		l := newLimiter(t)
		roomy := ratelimit.Bucket{Key: "{h}roomy", PerMinute: 600, Burst: 10}
		tight := ratelimit.Bucket{Key: "{h}tight", PerMinute: 1, Burst: 1}
		if r, _ := l.Take(ctx, []ratelimit.Bucket{roomy, tight}); !r.Allowed {
			t.Fatal("first call refused")
		}
		for range 5 {
			r, err := l.Take(ctx, []ratelimit.Bucket{roomy, tight})
			if err != nil || r.Allowed || r.Empty != 1 {
				t.Fatalf("call over the tight bucket: %+v %v", r, err)
			}
			if r.RetryAfter < 50*time.Second {
				t.Fatalf("retry after %v, want about a minute", r.RetryAfter)
			}
		}
		// The refused calls took nothing from the roomy bucket: 9 tokens are left.
		for i := range 9 {
			if r, _ := l.Take(ctx, []ratelimit.Bucket{roomy}); !r.Allowed {
				t.Fatalf("roomy take %d refused: refused calls took its tokens", i)
			}
		}
		if r, _ := l.Take(ctx, []ratelimit.Bucket{roomy}); r.Allowed {
			t.Fatal("roomy bucket held more than its burst")
		}
	})
	t.Run("refills", func(t *testing.T) {
		l := newLimiter(t)
		b := []ratelimit.Bucket{{Key: "{h}fast", PerMinute: 6000, Burst: 1}} // one every 10 ms
		if r, _ := l.Take(ctx, b); !r.Allowed {
			t.Fatal("first refused")
		}
		time.Sleep(30 * time.Millisecond)
		if r, _ := l.Take(ctx, b); !r.Allowed {
			t.Fatal("not refilled after 30 ms at 100 a second")
		}
	})
	t.Run("concurrent takes never exceed the burst", func(t *testing.T) {
		l := newLimiter(t)
		b := []ratelimit.Bucket{{Key: "{h}shared", PerMinute: 1, Burst: 20}}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if r, err := l.Take(ctx, b); err == nil && r.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 20 {
			t.Fatalf("%d of 100 concurrent calls allowed, want the burst 20", n)
		}
	})
}

func TestMemory(t *testing.T) {
	suite(t, func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory(0) })
}

// A full Memory drops the buckets that refilled, and refuses new ones while every bucket is
// in use.
func TestMemoryBounded(t *testing.T) {
	m := ratelimit.NewMemory(2)
	slow := func(k string) []ratelimit.Bucket { return []ratelimit.Bucket{{Key: k, PerMinute: 1, Burst: 5}} }
	fast := func(k string) []ratelimit.Bucket { return []ratelimit.Bucket{{Key: k, PerMinute: 60000, Burst: 1}} }
	if r, _ := m.Take(ctx, slow("a")); !r.Allowed {
		t.Fatal("a refused")
	}
	if r, _ := m.Take(ctx, fast("b")); !r.Allowed {
		t.Fatal("b refused")
	}
	time.Sleep(5 * time.Millisecond) // b is full again
	if r, _ := m.Take(ctx, slow("c")); !r.Allowed {
		t.Fatal("c refused although b had refilled")
	}
	if r, _ := m.Take(ctx, slow("d")); r.Allowed {
		t.Fatal("d allowed beyond the bound while a and c are in use")
	}
}

func redisLimiter(t *testing.T, o ratelimit.RedisOptions) (ratelimit.Limiter, *redis.Client) {
	url, prefix := services.Redis(t)
	opts, err := ratelimit.ParseRedisURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() {
		keys, _ := client.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	})
	o.Prefix = prefix
	l, err := ratelimit.NewRedis(client, o)
	if err != nil {
		t.Fatal(err)
	}
	return l, client
}

func TestRedis(t *testing.T) {
	suite(t, func(t *testing.T) ratelimit.Limiter { l, _ := redisLimiter(t, ratelimit.RedisOptions{}); return l })
}

// Two limiters (two replicas) on one Redis share every bucket.
func TestRedisShared(t *testing.T) {
	a, client := redisLimiter(t, ratelimit.RedisOptions{})
	b := []ratelimit.Bucket{{Key: "{h}agent", PerMinute: 1, Burst: 4}}
	other, err := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: keyPrefixOf(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = other
		}
		if r, err := l.Take(ctx, b); err != nil {
			t.Fatal(err)
		} else if r.Allowed {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("%d of 10 calls over two limiters allowed, want the shared burst 4", allowed)
	}
}

// keyPrefixOf is the prefix a limiter was made with (the test's own).
func keyPrefixOf(t *testing.T, l ratelimit.Limiter) string {
	t.Helper()
	return l.(*ratelimit.Redis).Prefix()
}

// Redis down: refused (fail closed) by default; with DownLocal this process's own buckets
// decide.
func TestRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	b := []ratelimit.Bucket{{Key: "{h}a", PerMinute: 1, Burst: 2}}

	deny, err := ratelimit.NewRedis(client, ratelimit.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := deny.Take(ctx, b); err == nil || r.Allowed {
		t.Fatalf("Redis down, deny: %+v %v; want an error", r, err)
	}

	local, err := ratelimit.NewRedis(client, ratelimit.RedisOptions{Down: ratelimit.DownLocal})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if r, err := local.Take(ctx, b); err != nil || !r.Allowed {
			t.Fatalf("Redis down, local, take %d: %+v %v", i, r, err)
		}
	}
	if r, err := local.Take(ctx, b); err != nil || r.Allowed {
		t.Fatalf("Redis down, local, over the burst: %+v %v", r, err)
	}

	if _, err := ratelimit.NewRedis(client, ratelimit.RedisOptions{Down: "open"}); err == nil {
		t.Fatal("an unknown down mode was accepted")
	}
}
