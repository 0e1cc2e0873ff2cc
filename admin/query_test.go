package admin_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestEnumQueryValuesAreRefusedWhenUnknown: every enumerated query parameter of the admin API
// (as the OpenAPI document lists them) refuses an unknown value, a case variant, an empty value
// and a repeated parameter with 400 naming the allowed values, and accepts each allowed value.
// Before, order=sideways listed oldest first and format=xml answered a JSON page, silently.
func TestEnumQueryValuesAreRefusedWhenUnknown(t *testing.T) {
	e := newEnv(t)
	code, body := e.do("GET", "/api/v1/openapi.json", "", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name, In string
				Schema   struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if code != 200 || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("openapi.json = %d %s", code, body)
	}
	pathValues := strings.NewReplacer("{host}", "acme", "{server}", "tracker", "{tool}", "list_issues", "{human}", "alice@acme.test", "{agent}", "a_1", "{token}", "t_1")
	checked := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			if method != "get" {
				continue
			}
			for _, p := range op.Parameters {
				if p.In != "query" || len(p.Schema.Enum) == 0 {
					continue
				}
				checked++
				base := pathValues.Replace(path) + "?"
				first := p.Schema.Enum[0]
				for _, bad := range []string{
					p.Name + "=sideways",
					p.Name + "=" + url.QueryEscape(strings.ToUpper(first)),
					p.Name + "=",
					p.Name + "=" + first + "&" + p.Name + "=" + first,
				} {
					e.problem(400, "GET", base+bad, e.global, nil, append([]string{p.Name}, p.Schema.Enum...)...)
				}
				for _, good := range p.Schema.Enum {
					if code, body := e.do("GET", base+p.Name+"="+good, e.global, nil); code == 400 {
						t.Errorf("GET %s%s=%s = 400 %s: an allowed value is refused", base, p.Name, good, body)
					}
				}
			}
		}
	}
	if checked < 3 {
		t.Fatalf("only %d enumerated query parameters found in the OpenAPI document; want order, decision and format at least", checked)
	}
}
