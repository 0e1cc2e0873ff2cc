package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Engine names, as Store.Engine and ParseURL report them.
const (
	EngineSQLite      = "sqlite"
	EnginePostgres    = "postgres"
	EngineCockroachDB = "cockroachdb"
)

// sqliteFileName is the database file of the default engine, inside Config.DataDir.
const sqliteFileName = "trustgate.db"

// defaultConnectTimeout bounds the first connection when Config.ConnectTimeout is zero.
const defaultConnectTimeout = 30 * time.Second

// supportedSchemes is shown in the error for an unknown URL scheme.
const supportedSchemes = "sqlite://, postgres://, postgresql://, cockroachdb:// (or an empty URL for SQLite in the data directory)"

// Config says which database to use.
type Config struct {
	// URL selects the engine: "" for SQLite in DataDir, sqlite:///path/to/file.db,
	// postgres:// or postgresql:// (CockroachDB is recognised by its version string), or
	// cockroachdb://.
	URL string
	// DataDir holds trustgate.db when URL is "". It is created (mode 0700) when missing.
	DataDir string
	// ConnectTimeout bounds the retries of the first connection to PostgreSQL or CockroachDB;
	// zero means 30s.
	ConnectTimeout time.Duration
	// Logger receives connection retries and applied migrations; nil discards them.
	Logger *slog.Logger
	// NoMigrate opens the database as it is: no migration is applied, and a database whose
	// schema is not at this binary's version is refused (a backup reads a live database
	// without changing it).
	NoMigrate bool
}

// Open connects to the database cfg names, applies pending migrations and returns the store.
// No error it returns contains the URL's password.
func Open(ctx context.Context, cfg Config) (Store, error) {
	s, err := open(ctx, cfg)
	if err != nil {
		return nil, newRedactor(cfg.URL).err(err)
	}
	return s, nil
}

func open(ctx context.Context, cfg Config) (Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b, err := openBackend(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.NoMigrate {
		if err := checkCurrent(ctx, b); err != nil {
			_ = b.close()
			return nil, fmt.Errorf("open store (%s): %w", b.engine(), err)
		}
		return newSQLStore(b), nil
	}
	if err := migrate(ctx, b, log); err != nil {
		_ = b.close()
		return nil, fmt.Errorf("open store (%s): %w", b.engine(), err)
	}
	return newSQLStore(b), nil
}

// sqlitePathOf is the SQLite file cfg names (conn is ParseURL's connURL).
func sqlitePathOf(cfg Config, conn string) (string, error) {
	if conn != "" {
		return conn, nil
	}
	if cfg.DataDir == "" {
		return "", fmt.Errorf("open store: no database URL and no data directory: %w", ErrInvalid)
	}
	return filepath.Join(cfg.DataDir, sqliteFileName), nil
}

// openBackend connects to the database cfg names, without migrating it.
func openBackend(ctx context.Context, cfg Config, log *slog.Logger) (backend, error) {
	engine, conn, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var b backend
	switch engine {
	case EngineSQLite:
		path, err := sqlitePathOf(cfg, conn)
		if err != nil {
			return nil, err
		}
		b, err = openSQLite(ctx, path, log)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	default:
		timeout := cfg.ConnectTimeout
		if timeout <= 0 {
			timeout = defaultConnectTimeout
		}
		b, err = openPostgres(ctx, engine, conn, timeout, log)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return b, nil
}

// ParseURL reads a database URL. engine is "sqlite", "postgres" or "cockroachdb"; connURL is
// the URL to hand pgx (a cockroachdb:// URL becomes postgresql://) or, for SQLite, the file path.
// The empty URL is SQLite with connURL "": the file trustgate.db in the data directory.
//
// A postgres:// URL may still turn out to be CockroachDB once connected (Open checks the
// server's version string); ParseURL cannot know that.
func ParseURL(raw string) (engine string, connURL string, err error) {
	if strings.TrimSpace(raw) == "" {
		return EngineSQLite, "", nil
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" {
		return "", "", fmt.Errorf("database URL has no scheme: supported are %s: %w", supportedSchemes, ErrInvalid)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		path, err := sqlitePath(rest)
		if err != nil {
			return "", "", err
		}
		return EngineSQLite, path, nil
	case "postgres", "postgresql":
		conn := strings.ToLower(scheme) + ":" + rest // pgx recognises the scheme in lower case only
		if err := checkNetURL(conn); err != nil {
			return "", "", err
		}
		return EnginePostgres, conn, nil
	case "cockroachdb":
		conn := "postgresql:" + rest
		if err := checkNetURL(conn); err != nil {
			return "", "", err
		}
		return EngineCockroachDB, conn, nil
	default:
		if !validScheme(scheme) {
			return "", "", fmt.Errorf("database URL has no valid scheme: supported are %s: %w", supportedSchemes, ErrInvalid)
		}
		return "", "", fmt.Errorf("unsupported database URL scheme %q: supported are %s: %w", scheme, supportedSchemes, ErrInvalid)
	}
}

// sqlitePath reads what follows "sqlite:" : //host/path, ///abs/path or a bare path.
func sqlitePath(rest string) (string, error) {
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	p := strings.TrimPrefix(rest, "//")
	if p == "" {
		return "", fmt.Errorf("sqlite URL has no file path (want sqlite:///abs/path.db or sqlite://relative.db): %w", ErrInvalid)
	}
	unescaped, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("sqlite URL path: %v: %w", err, ErrInvalid)
	}
	return filepath.Clean(unescaped), nil
}

// checkNetURL checks that a PostgreSQL URL parses, without ever echoing it (it may hold a
// password: net/url's errors quote the whole input).
func checkNetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		reason := "malformed"
		if errors.As(err, &ue) {
			reason = strings.TrimSpace(newRedactor(raw).text(ue.Err.Error()))
		}
		return fmt.Errorf("database URL does not parse (%s): %w", reason, ErrInvalid)
	}
	if u.Opaque != "" {
		return fmt.Errorf("database URL %s: want %s://host[:port]/database: %w", redactURL(raw), u.Scheme, ErrInvalid)
	}
	return nil
}

// validScheme reports whether s has the shape of a URL scheme (RFC 3986), so that an error
// quoting it never quotes, say, a whole connection string.
func validScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
