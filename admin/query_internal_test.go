package admin

import "testing"

// TestEveryQueryParameterHasAKind: a route may declare only query parameters whose kind
// (enumerated values or free text) is known, so checkQuery sees every enumerated one.
func TestEveryQueryParameterHasAKind(t *testing.T) {
	for _, rt := range (&API{}).routes() {
		for _, name := range rt.Query {
			if _, known := queryParamValues(name); !known {
				t.Errorf("%s %s declares query parameter %q, unknown to queryParamValues: add it there (its values, or nil for free text)", rt.Method, rt.Path, name)
			}
		}
	}
}
