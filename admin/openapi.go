package admin

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI is the OpenAPI 3.1 document of the admin API, built from the same route table as the
// router, with JSON Schemas inferred from the Go types of the bodies.
func (a *API) OpenAPI() map[string]any {
	schemas := map[string]any{}
	ref := func(v any) map[string]any {
		if v == nil {
			return nil
		}
		t := reflect.TypeOf(v)
		name := schemaName(t)
		if _, ok := schemas[name]; !ok {
			s, err := jsonschema.ForType(t, &jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
				reflect.TypeFor[json.RawMessage](): {},
			}})
			if err != nil {
				schemas[name] = map[string]any{"description": "schema unavailable: " + err.Error()}
			} else {
				schemas[name] = s
			}
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	problem := map[string]any{"description": "Error (RFC 9457 problem details)", "content": map[string]any{
		"application/problem+json": map[string]any{"schema": ref(Problem{})},
	}}
	paths := map[string]any{}
	for _, rt := range a.routes() {
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if rt.Method == http.MethodGet && strings.HasPrefix(schemaName(reflect.TypeOf(rt.Response)), "Page") {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize}},
				map[string]any{"name": "cursor", "in": "query", "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			schema := map[string]any{"type": "string"}
			if values, _ := queryParamValues(q); values != nil {
				schema["enum"] = values
			}
			params = append(params, map[string]any{"name": q, "in": "query", "schema": schema})
		}
		op := map[string]any{
			"operationId": rt.ID,
			"summary":     rt.Summary,
			"security":    []any{map[string]any{"bearer": []string{}}},
			"responses":   map[string]any{"default": problem},
		}
		if rt.Global {
			op["description"] = "Needs a global API token."
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.Request)}}}
		}
		resp := map[string]any{"description": http.StatusText(rt.Status)}
		if rt.Response != nil {
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.Response)}}
		}
		op["responses"].(map[string]any)[itoa(rt.Status)] = resp
		item[strings.ToLower(rt.Method)] = op
	}
	paths[openAPIPath] = map[string]any{"get": map[string]any{
		"operationId": "openapi", "summary": "This document", "security": []any{},
		"responses": map[string]any{"200": map[string]any{"description": "OK"}},
	}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "trustgate admin API",
			"version":     "1",
			"description": "Hosts, MCP servers and tools, humans and their ceilings, agents, API tokens. Errors are RFC 9457 problem details.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

// schemaName names a Go type in components/schemas: Host, PageHost, ...
func schemaName(t reflect.Type) string {
	n := t.Name()
	if i := strings.IndexByte(n, '['); i >= 0 {
		inner := n[i+1 : len(n)-1]
		inner = inner[strings.LastIndexByte(inner, '.')+1:]
		n = n[:i] + inner
	}
	return n
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
