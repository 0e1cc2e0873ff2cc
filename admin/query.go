package admin

import (
	"net/http"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/audit"
)

// queryParamValues is the kind of every query parameter a route may declare in Route.Query:
// the values an enumerated parameter accepts, or nil for free text (an id, an email, a time)
// that its handler parses itself. A route cannot declare a parameter missing here (a test
// holds every route to that), so a new enumerated parameter is checked like the others.
func queryParamValues(name string) (values []string, known bool) {
	switch name {
	case "order":
		return []string{"asc", "desc"}, true
	case "decision":
		return []string{string(audit.Allowed), string(audit.Denied), string(audit.Error), string(audit.Admin), string(audit.Result), string(audit.Identity), string(audit.Approval)}, true
	case "format":
		return []string{"json", "jsonl"}, true
	case "flag":
		flags := make([]string, len(anomaly.Flags))
		for i, f := range anomaly.Flags {
			flags[i] = string(f)
		}
		return flags, true
	case "human", "agent", "server", "tool", "since", "until", "limit", "cursor":
		return nil, true
	}
	return nil, false
}

// checkQuery refuses, with 400 naming the allowed values, a request whose enumerated query
// parameters (those of rt.Query with values) are given an unknown value, an empty one, or more
// than once: an unknown value is never silently read as the default.
func checkQuery(r *http.Request, rt Route) error {
	q := r.URL.Query()
	for _, name := range rt.Query {
		allowed, _ := queryParamValues(name)
		given, ok := q[name]
		if allowed == nil || !ok {
			continue
		}
		if len(given) > 1 {
			return problemf(http.StatusBadRequest, "query parameter %s is given %d times; give it once, one of: %s", name, len(given), strings.Join(allowed, ", "))
		}
		if !slices.Contains(allowed, given[0]) {
			return problemf(http.StatusBadRequest, "query parameter %s=%q is not allowed; want one of: %s", name, truncate(given[0], 64), strings.Join(allowed, ", "))
		}
	}
	return nil
}

// truncate bounds a caller's value echoed in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
