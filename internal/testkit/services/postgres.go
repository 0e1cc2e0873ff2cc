// Package services gives tests the external services they need, or skips them.
//
// PostgreSQL: set TRUSTGATE_TEST_POSTGRES to the URL of a server the tests may create
// databases on, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Without it the
// PostgreSQL tests skip, except under CI=true, where they fail: CI must run them.
package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable holding the test server's URL.
const PostgresEnv = "TRUSTGATE_TEST_POSTGRES"

const pgTimeout = 10 * time.Second

// PostgresServerURL returns the URL of the test PostgreSQL server (its admin database). It skips
// the test when TRUSTGATE_TEST_POSTGRES is unset, and fails it when CI=true.
func PostgresServerURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(PostgresEnv)
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TRUSTGATE_TEST_POSTGRES is not set but CI=true: PostgreSQL tests must run in CI")
		}
		t.Skip("PostgreSQL tests skipped: set TRUSTGATE_TEST_POSTGRES (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to run them")
	}
	return raw
}

// Postgres creates a fresh database named tg_test_<random> on the test server, drops it when
// the test ends, and returns its URL. It skips or fails like PostgresServerURL, and fails when
// the server is set but cannot be reached.
func Postgres(t testing.TB) string {
	t.Helper()
	server := PostgresServerURL(t)
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s does not parse as a URL", PostgresEnv) // no echo: it may hold a password
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "tg_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL server (%s): %v", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: connect: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})

	dbURL := *u
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}
