package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a Redis limiter does when Redis cannot be reached.
const (
	// DownDeny refuses the call (fail closed): Take returns the error.
	DownDeny = "deny"
	// DownLocal takes the tokens from this process's own buckets instead: each replica then
	// enforces every limit on its own until Redis is back.
	DownLocal = "local"
)

// DefaultTimeout bounds one Take against Redis.
const DefaultTimeout = 500 * time.Millisecond

// takeScript takes one token from each bucket in KEYS, all or none, on the Redis server's clock
// (shared by every replica). ARGV holds, per bucket, its rate in tokens per millisecond and its
// burst. A bucket is a hash {t: tokens, ts: milliseconds}; absent is full; it expires once it
// would be full again. The answer is {1, 0, 0}, or {0, i, wait_ms} for the (1-based) bucket i
// to wait longest for. With an extra last ARGV "peek", it answers the same and writes nothing.
var takeScript = redis.NewScript(`
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tokens = {}
local worst, worstWait = 0, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local t, ts = tonumber(v[1]), tonumber(v[2])
  if t == nil or ts == nil then
    t = burst
  elseif now > ts then
    t = math.min(burst, t + (now - ts) * rate)
  end
  tokens[i] = t
  if t < 1 then
    local wait = math.ceil((1 - t) / rate)
    if wait > worstWait then worst, worstWait = i, wait end
  end
end
if worst > 0 then return {0, worst, worstWait} end
if ARGV[2*#KEYS+1] == 'peek' then return {1, 0, 0} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local left = tokens[i] - 1
  redis.call('HSET', KEYS[i], 't', tostring(left), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - left) / rate) + 1000)
end
return {1, 0, 0}
`)

// Redis is a Limiter whose buckets live in a Redis server shared by every replica.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	down    string
	local   *Memory
	timeout time.Duration
	log     *slog.Logger
	// failing: the last Take could not reach Redis (logged once per outage).
	failing atomic.Bool
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Down is DownDeny (the default, "") or DownLocal.
	Down string
	// Timeout bounds one Take (default DefaultTimeout).
	Timeout time.Duration
	// Prefix begins every key (default "trustgate:rl:").
	Prefix string
	Logger *slog.Logger
}

// ParseRedisURL checks a redis:// or rediss:// URL (user, password, database number).
func ParseRedisURL(u string) (*redis.Options, error) {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return nil, errors.New("want redis://[user:password@]host:port[/db] or rediss://…")
	}
	return opts, nil
}

// NewRedis returns a Redis limiter over client.
func NewRedis(client redis.UniversalClient, o RedisOptions) (*Redis, error) {
	switch o.Down {
	case "":
		o.Down = DownDeny
	case DownDeny, DownLocal:
	default:
		return nil, fmt.Errorf("when Redis is down: %q: want %q or %q", o.Down, DownDeny, DownLocal)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Prefix == "" {
		o.Prefix = "trustgate:rl:"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Redis{client: client, prefix: o.Prefix, down: o.Down, timeout: o.Timeout, log: o.Logger}
	if o.Down == DownLocal {
		r.local = NewMemory(0)
	}
	return r, nil
}

// Prefix is what begins every key of r.
func (r *Redis) Prefix() string { return r.prefix }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.client.Ping(ctx).Err()
}

// Take implements Limiter.
func (r *Redis) Take(ctx context.Context, buckets []Bucket) (Result, error) {
	return r.takeOrPeek(ctx, buckets, true)
}

// Peek implements Limiter.
func (r *Redis) Peek(ctx context.Context, buckets []Bucket) (Result, error) {
	return r.takeOrPeek(ctx, buckets, false)
}

func (r *Redis) takeOrPeek(ctx context.Context, buckets []Bucket, commit bool) (Result, error) {
	if len(buckets) == 0 {
		return Result{Allowed: true}, nil
	}
	res, err := r.take(ctx, buckets, commit)
	if err == nil {
		if r.failing.Swap(false) {
			r.log.Info("rate limits: Redis answers again")
		}
		return res, nil
	}
	if ctx.Err() != nil {
		return Result{}, err
	}
	if !r.failing.Swap(true) {
		r.log.Error("rate limits: Redis cannot be reached", "when_down", r.down, "err", err)
	}
	if r.local != nil {
		return r.local.take(buckets, commit)
	}
	return Result{}, err
}

func (r *Redis) take(ctx context.Context, buckets []Bucket, commit bool) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	keys := make([]string, len(buckets))
	args := make([]any, 0, 2*len(buckets))
	for i, b := range buckets {
		keys[i] = r.prefix + b.Key
		args = append(args, strconv.FormatFloat(b.perSecond()/1000, 'g', -1, 64), strconv.FormatFloat(b.capacity(), 'g', -1, 64))
	}
	if !commit {
		args = append(args, "peek")
	}
	v, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limits in Redis: %w", err)
	}
	if len(v) != 3 {
		return Result{}, fmt.Errorf("rate limits in Redis: unexpected answer %v", v)
	}
	if v[0] == 1 {
		return Result{Allowed: true}, nil
	}
	i := int(v[1]) - 1
	if i < 0 || i >= len(buckets) {
		return Result{}, fmt.Errorf("rate limits in Redis: unexpected answer %v", v)
	}
	return Result{Empty: i, RetryAfter: time.Duration(v[2]) * time.Millisecond}, nil
}
