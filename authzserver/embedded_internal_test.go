package authzserver

import "testing"

// TestWithStatementCache: the embedded SpiceDB's PostgreSQL datastore prepares its statements
// once per connection unless the operator chose an execution mode in the URI.
func TestWithStatementCache(t *testing.T) {
	cases := map[string]string{
		"postgres://u:p@db:5432/tg?sslmode=disable&search_path=spicedb": "postgres://u:p@db:5432/tg?default_query_exec_mode=cache_statement&search_path=spicedb&sslmode=disable",
		"postgres://db/tg": "postgres://db/tg?default_query_exec_mode=cache_statement",
		"postgres://db/tg?default_query_exec_mode=exec":             "postgres://db/tg?default_query_exec_mode=exec",
		"host=db dbname=tg":                                         "host=db dbname=tg default_query_exec_mode=cache_statement",
		"host=db dbname=tg default_query_exec_mode=simple_protocol": "host=db dbname=tg default_query_exec_mode=simple_protocol",
	}
	for in, want := range cases {
		if got := withStatementCache(in); got != want {
			t.Errorf("withStatementCache(%q) = %q, want %q", in, got, want)
		}
	}
}
