package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// RedisEnv names the variable holding the test Redis server's URL, e.g.
// redis://127.0.0.1:6379/0. Without it the Redis tests skip, except under CI=true, where they
// fail: CI must run them.
const RedisEnv = "TRUSTGATE_TEST_REDIS"

// Redis returns the URL of the test Redis server and a key prefix of the test's own
// (tg_test_<random>:), so that tests sharing the server never share a key. It skips the test
// when TRUSTGATE_TEST_REDIS is unset, fails it when CI=true, and fails it when the server is
// set but does not answer.
func Redis(t testing.TB) (serverURL, keyPrefix string) {
	t.Helper()
	raw := os.Getenv(RedisEnv)
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TRUSTGATE_TEST_REDIS is not set but CI=true: Redis tests must run in CI")
		}
		t.Skip("Redis tests skipped: set TRUSTGATE_TEST_REDIS (e.g. redis://127.0.0.1:6379/0) to run them")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s does not parse as a redis:// URL", RedisEnv) // no echo: it may hold a password
	}
	// The server answers a PING (over TCP; the tests' own clients speak the protocol).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		t.Fatalf("connect to the test Redis server (%s): %v", u.Redacted(), err)
	}
	_ = conn.Close()
	var b [8]byte
	_, _ = rand.Read(b[:])
	return raw, "tg_test_" + hex.EncodeToString(b[:]) + ":"
}
