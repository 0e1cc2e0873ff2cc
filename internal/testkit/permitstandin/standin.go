// Package permitstandin is a local stand-in for Permit.io's API and PDP, for tests: Permit's
// cloud cannot be reached from them. It speaks the wire format of exactly the endpoints
// trustgate's Permit backend uses (paths, JSON bodies as the permit-golang SDK's models encode
// them, status codes, page/per_page pagination, error bodies), refuses unknown JSON fields,
// records every request, and evaluates the ReBAC model it was given, so decisions are real.
//
// Covered, all under a bearer API key (401 without one, 403 outside its scope): an
// environment-level key (New), or project- and organization-level keys (AddKey).
//
//	GET    /v2/api-key/scope                                          organization, project, environment ids
//	GET    /v2/projects/{proj}/envs/{env}                             the environment (id, key, project_id)
//	POST   /v2/schema/{proj}/{env}/resources                          key, name, actions (409 when it exists)
//	POST   /v2/schema/{proj}/{env}/resources/{res}/relations          key, name, subject_resource (409)
//	POST   /v2/schema/{proj}/{env}/resources/{res}/roles              key, name, permissions (409)
//	GET    /v2/schema/{proj}/{env}/resources/{res}/roles/{role}       the role with granted_to
//	POST   /v2/schema/{proj}/{env}/resources/{res}/roles/{role}/implicit_grants   role, on_resource, linked_by_relation
//	POST   /v2/facts/{proj}/{env}/tenants                             key, name (409)
//	POST   /v2/facts/{proj}/{env}/users                               key (409)
//	GET    /v2/facts/{proj}/{env}/relationship_tuples                 tenant, subject, relation, object, page, per_page
//	POST   /v2/facts/{proj}/{env}/relationship_tuples/bulk            {"operations": [subject, relation, object, tenant]}
//	DELETE /v2/facts/{proj}/{env}/relationship_tuples/bulk            {"idents": [subject, relation, object]}
//	GET    /v2/facts/{proj}/{env}/role_assignments                    user, role, tenant, resource, resource_instance, page, per_page
//	POST   /v2/facts/{proj}/{env}/role_assignments/bulk               [role, tenant, resource_instance, user]
//	DELETE /v2/facts/{proj}/{env}/role_assignments/bulk               [role, tenant, resource_instance, user]
//	POST   /allowed                                                   user.key, action, resource.type/key/tenant → allow
//	POST   /user-permissions                                          user.key, tenants, resource_types → per instance permissions
//	GET    /healthy
//
// API serves the Permit API's endpoints (scope, schema, facts) and PDP the PDP's (checks,
// health, and the facts it proxies to the API, as the SDK sends them); each refuses the
// other's with 404, so a client sending a request to the wrong service fails. ServeHTTP
// answers both on one address. Environments (AddEnvironment) hold their models and facts
// apart; a PDP (PDPFor) answers for one environment and refuses the facts of any other.
//
// Derivation follows Permit's ReBAC: a user holds a role on an instance when assigned it there
// in the instance's tenant, or when a role's implicit grant (role on on_resource, linked by
// relation) is met through a relationship tuple of that tenant. Facts are applied before the
// answer, as a PDP asked to wait for them (X-Wait-Timeout) does.
package permitstandin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// OrganizationID, ProjectID and EnvironmentID are the ids the API key's scope answers.
	OrganizationID = "7c1cf4e1-4c2c-4b8a-9d0b-000000000001"
	ProjectID      = "7c1cf4e1-4c2c-4b8a-9d0b-000000000002"
	EnvironmentID  = "7c1cf4e1-4c2c-4b8a-9d0b-000000000003"
	maxPerPage     = 100
	maxBody        = 1 << 20
)

// Request is one request the stand-in received.
type Request struct {
	// Via is the service it reached: "api", "pdp", or "" through ServeHTTP.
	Via string
	// PDPEnv is the "project/environment" ids of the PDP it reached ("" for the API).
	PDPEnv       string
	Method, Path string
	Query        string
	Header       http.Header
	Body         []byte
}

// Tuple is one relationship tuple.
type Tuple struct{ Subject, Relation, Object, Tenant string }

// Assignment is one role assignment (ResourceInstance "type:key", empty for a tenant role).
type Assignment struct{ User, Role, Tenant, ResourceInstance string }

type derivation struct{ Role, OnResource, LinkedByRelation string }

type role struct {
	permissions []string
	grants      []derivation
}

type resource struct {
	actions   []string
	relations map[string]string // relation → subject resource
	roles     map[string]*role
}

// envData is what one environment holds.
type envData struct {
	project, env string
	resources    map[string]*resource
	tenants      map[string]bool
	users        map[string]bool
	tuples       map[Tuple]bool
	assignments  map[Assignment]bool
	created      time.Time
}

func newEnvData(project, env string, created time.Time) *envData {
	return &envData{
		project: project, env: env, resources: map[string]*resource{}, tenants: map[string]bool{}, users: map[string]bool{},
		tuples: map[Tuple]bool{}, assignments: map[Assignment]bool{}, created: created,
	}
}

// keyScope is what an API key may address: an environment (both set), a project (env empty)
// or the whole organization (both empty).
type keyScope struct{ project, env string }

func (k keyScope) covers(e *envData) bool {
	return (k.project == "" || k.project == e.project) && (k.env == "" || k.env == e.env)
}

// Server is the stand-in. Serve it with httptest or http.Server; it is safe for concurrent use.
// Its environments hold their facts and models apart.
type Server struct {
	mu       sync.Mutex
	keys     map[string]keyScope
	requests []Request
	envs     map[string]*envData // by "project/environment" ids
	created  time.Time
}

// New makes a stand-in with one environment (ProjectID/EnvironmentID) and an
// environment-level apiKey of it.
func New(apiKey string) *Server {
	s := &Server{keys: map[string]keyScope{apiKey: {ProjectID, EnvironmentID}}, envs: map[string]*envData{}, created: time.Now().UTC()}
	s.AddEnvironment(ProjectID, EnvironmentID)
	return s
}

// AddEnvironment adds an empty environment, named by the same strings as ids and keys.
func (s *Server) AddEnvironment(project, env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.envs[project+"/"+env] == nil {
		s.envs[project+"/"+env] = newEnvData(project, env, s.created)
	}
}

// AddKey accepts key as a project-level API key of project, or as an organization-level key
// when project is empty.
func (s *Server) AddKey(key, project string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = keyScope{project: project}
}

// Requests returns what the stand-in was sent, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Tuples returns the relationship tuples held in the first environment.
func (s *Server) Tuples() []Tuple { return s.TuplesIn(ProjectID, EnvironmentID) }

// TuplesIn returns the relationship tuples held in an environment.
func (s *Server) TuplesIn(project, env string) []Tuple {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Tuple
	if e := s.envs[project+"/"+env]; e != nil {
		for t := range e.tuples {
			out = append(out, t)
		}
	}
	return out
}

// Assignments returns the role assignments held in the first environment.
func (s *Server) Assignments() []Assignment { return s.AssignmentsIn(ProjectID, EnvironmentID) }

// AssignmentsIn returns the role assignments held in an environment.
func (s *Server) AssignmentsIn(project, env string) []Assignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Assignment
	if e := s.envs[project+"/"+env]; e != nil {
		for a := range e.assignments {
			out = append(out, a)
		}
	}
	return out
}

// Allowed evaluates a check in the first environment as /allowed does (for tests that compare).
func (s *Server) Allowed(user, action, resourceType, key, tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.envs[ProjectID+"/"+EnvironmentID].allowed(user, action, resourceType+":"+key, tenant)
}

type apiError struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnprocessableEntity {
		writeJSON(w, status, map[string]any{"detail": []map[string]any{{"loc": []string{"body"}, "msg": msg, "type": "value_error"}}})
		return
	}
	writeJSON(w, status, apiError{ID: strconv.FormatInt(time.Now().UnixNano(), 36), Title: http.StatusText(status), ErrorCode: code, Message: msg})
}

// decode reads a JSON body strictly: unknown fields are refused, as Permit's models do.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

const firstEnv = ProjectID + "/" + EnvironmentID

// ServeHTTP answers the API and PDP endpoints listed in the package doc on one address (the
// PDP's of the first environment).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "", firstEnv) }

// API is the Permit API alone.
func (s *Server) API() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "api", "") })
}

// PDP is the PDP of the first environment alone.
func (s *Server) PDP() http.Handler { return s.PDPFor(ProjectID, EnvironmentID) }

// PDPFor is the PDP of one environment: it answers checks from that environment's facts, and
// refuses facts of any other environment (404), as a PDP bound to one environment's key does.
func (s *Server) PDPFor(project, env string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "pdp", project+"/"+env) })
}

// servedBy says whether the service via answers path ("" answers everything).
func servedBy(via, path string) bool {
	pdpOnly := path == "/allowed" || path == "/user-permissions" || path == "/healthy"
	apiOnly := strings.HasPrefix(path, "/v2/schema/") || strings.HasPrefix(path, "/v2/api-key/") || strings.HasPrefix(path, "/v2/projects/")
	switch via {
	case "api":
		return !pdpOnly
	case "pdp":
		return !apiOnly
	}
	return true
}

// serve answers one request; bound is the environment whose PDP it reached ("" for the API).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, via, bound string) {
	var body []byte
	if r.Body != nil {
		b, err := readAll(r)
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "TOO_LARGE", err.Error())
			return
		}
		body = b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Via: via, PDPEnv: bound, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	if !servedBy(via, r.URL.Path) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "the "+via+" does not serve "+r.URL.Path)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/healthy" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	scope, found := s.keys[token]
	if !found {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid API key")
		return
	}
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && (r.URL.Path == "/allowed" || r.URL.Path == "/user-permissions"):
		e := s.envs[bound]
		if e == nil || !scope.covers(e) {
			writeError(w, http.StatusForbidden, "FORBIDDEN", "the API key does not cover this PDP's environment")
			return
		}
		if r.URL.Path == "/allowed" {
			e.handleAllowed(w, body)
		} else {
			e.handleUserPermissions(w, body)
		}
	case r.Method == http.MethodGet && r.URL.Path == "/v2/api-key/scope":
		out := map[string]string{"organization_id": OrganizationID}
		if scope.project != "" {
			out["project_id"] = scope.project
		}
		if scope.env != "" {
			out["environment_id"] = scope.env
		}
		writeJSON(w, http.StatusOK, out)
	case r.Method == http.MethodGet && len(p) == 5 && p[0] == "v2" && p[1] == "projects" && p[3] == "envs":
		e := s.envs[p[2]+"/"+p[4]]
		switch {
		case e == nil:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such project or environment")
		case !scope.covers(e):
			writeError(w, http.StatusForbidden, "FORBIDDEN", "the API key does not cover this environment")
		default:
			writeJSON(w, http.StatusOK, map[string]any{"key": e.env, "id": e.env, "organization_id": OrganizationID, "project_id": e.project,
				"created_at": s.created, "updated_at": s.created, "name": e.env})
		}
	case len(p) >= 5 && p[0] == "v2" && (p[1] == "schema" || p[1] == "facts"):
		e := s.envs[p[2]+"/"+p[3]]
		switch {
		case e == nil:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such project or environment")
			return
		case !scope.covers(e):
			writeError(w, http.StatusForbidden, "FORBIDDEN", "the API key does not cover this environment")
			return
		case via == "pdp" && bound != p[2]+"/"+p[3]:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "this PDP serves environment "+bound+" only")
			return
		}
		if p[1] == "schema" {
			e.handleSchema(w, r, p[4:], body)
		} else {
			e.handleFacts(w, r, p[4:], body)
		}
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no route "+r.Method+" "+r.URL.Path)
	}
}

func readAll(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, maxBody)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *envData) meta(id string) map[string]any {
	return map[string]any{
		"id": id, "organization_id": OrganizationID, "project_id": s.project, "environment_id": s.env,
		"created_at": s.created, "updated_at": s.created,
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func (s *envData) handleSchema(w http.ResponseWriter, r *http.Request, p []string, body []byte) {
	switch {
	case len(p) == 1 && p[0] == "resources" && r.Method == http.MethodPost:
		var in struct {
			Key         string                     `json:"key"`
			Name        string                     `json:"name"`
			Urn         *string                    `json:"urn,omitempty"`
			Description *string                    `json:"description,omitempty"`
			Actions     map[string]json.RawMessage `json:"actions"`
			Attributes  map[string]json.RawMessage `json:"attributes,omitempty"`
		}
		if err := decode(body, &in); err != nil || in.Key == "" || in.Actions == nil {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid resource: %v", err))
			return
		}
		if s.resources[in.Key] != nil {
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "resource "+in.Key+" exists")
			return
		}
		res := &resource{relations: map[string]string{}, roles: map[string]*role{}}
		actions := map[string]any{}
		for a := range in.Actions {
			res.actions = append(res.actions, a)
			actions[a] = map[string]any{"id": "act-" + a, "key": a, "name": a}
		}
		s.resources[in.Key] = res
		writeJSON(w, http.StatusOK, with(s.meta("res-"+in.Key), "key", in.Key, "name", in.Name, "actions", actions))
	case len(p) == 3 && p[0] == "resources" && p[2] == "relations" && r.Method == http.MethodPost:
		res := s.resources[p[1]]
		var in struct {
			Key             string  `json:"key"`
			Name            string  `json:"name"`
			Description     *string `json:"description,omitempty"`
			SubjectResource string  `json:"subject_resource"`
		}
		if err := decode(body, &in); err != nil || in.Key == "" {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid relation: %v", err))
			return
		}
		switch {
		case res == nil || s.resources[in.SubjectResource] == nil:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such resource")
		case res.relations[in.Key] != "":
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "relation exists")
		default:
			res.relations[in.Key] = in.SubjectResource
			writeJSON(w, http.StatusOK, with(s.meta("rel-"+in.Key), "key", in.Key, "name", in.Name,
				"subject_resource", in.SubjectResource, "subject_resource_id", "res-"+in.SubjectResource,
				"object_resource", p[1], "object_resource_id", "res-"+p[1]))
		}
	case len(p) == 3 && p[0] == "resources" && p[2] == "roles" && r.Method == http.MethodPost:
		res := s.resources[p[1]]
		var in struct {
			Key         string   `json:"key"`
			Name        string   `json:"name"`
			Description *string  `json:"description,omitempty"`
			Permissions []string `json:"permissions,omitempty"`
			Extends     []string `json:"extends,omitempty"`
		}
		if err := decode(body, &in); err != nil || in.Key == "" {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid role: %v", err))
			return
		}
		switch {
		case res == nil:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such resource")
		case res.roles[in.Key] != nil:
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "role exists")
		default:
			for _, perm := range in.Permissions {
				if !slices.Contains(res.actions, strings.TrimPrefix(perm, p[1]+":")) {
					writeError(w, http.StatusUnprocessableEntity, "", "unknown action "+perm)
					return
				}
			}
			res.roles[in.Key] = &role{permissions: in.Permissions}
			writeJSON(w, http.StatusOK, s.roleRead(p[1], in.Key))
		}
	case len(p) == 4 && p[0] == "resources" && p[2] == "roles" && r.Method == http.MethodGet:
		if res := s.resources[p[1]]; res == nil || res.roles[p[3]] == nil {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such role")
			return
		}
		writeJSON(w, http.StatusOK, s.roleRead(p[1], p[3]))
	case len(p) == 5 && p[0] == "resources" && p[2] == "roles" && p[4] == "implicit_grants" && r.Method == http.MethodPost:
		var in struct {
			Role             string          `json:"role"`
			OnResource       string          `json:"on_resource"`
			LinkedByRelation string          `json:"linked_by_relation"`
			When             json.RawMessage `json:"when,omitempty"`
		}
		if err := decode(body, &in); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid implicit grant: %v", err))
			return
		}
		res, on := s.resources[p[1]], s.resources[in.OnResource]
		if res == nil || res.roles[p[3]] == nil || on == nil || on.roles[in.Role] == nil || res.relations[in.LinkedByRelation] != in.OnResource {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such role, resource or relation")
			return
		}
		d := derivation{Role: in.Role, OnResource: in.OnResource, LinkedByRelation: in.LinkedByRelation}
		rl := res.roles[p[3]]
		if slices.Contains(rl.grants, d) {
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "implicit grant exists")
			return
		}
		rl.grants = append(rl.grants, d)
		writeJSON(w, http.StatusOK, map[string]any{"role_id": "role-" + in.Role, "resource_id": "res-" + in.OnResource,
			"relation_id": "rel-" + in.LinkedByRelation, "role": in.Role, "on_resource": in.OnResource, "linked_by_relation": in.LinkedByRelation})
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no route "+r.Method+" "+r.URL.Path)
	}
}

func (s *envData) roleRead(res, key string) map[string]any {
	rl := s.resources[res].roles[key]
	var grants []map[string]any
	for _, d := range rl.grants {
		grants = append(grants, map[string]any{"role_id": "role-" + d.Role, "resource_id": "res-" + d.OnResource, "relation_id": "rel-" + d.LinkedByRelation,
			"role": d.Role, "on_resource": d.OnResource, "linked_by_relation": d.LinkedByRelation})
	}
	return with(s.meta("role-"+key), "key", key, "name", key, "permissions", rl.permissions, "resource_id", "res-"+res,
		"granted_to", map[string]any{"id": "gt-" + key, "users_with_role": grants})
}

// page reads page and per_page (defaults 1 and 30, per_page at most 100, as the API).
func page(r *http.Request) (start, size int, err error) {
	pg, size := 1, 30
	if v := r.URL.Query().Get("page"); v != "" {
		if pg, err = strconv.Atoi(v); err != nil || pg < 1 {
			return 0, 0, fmt.Errorf("page must be a positive integer")
		}
	}
	if v := r.URL.Query().Get("per_page"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > maxPerPage {
			return 0, 0, fmt.Errorf("per_page must be between 1 and %d", maxPerPage)
		}
	}
	return (pg - 1) * size, size, nil
}

func pageOf[T any](all []T, start, size int) []T {
	if start >= len(all) {
		return []T{}
	}
	return all[start:min(start+size, len(all))]
}

type tupleIdent struct {
	Subject  string `json:"subject"`
	Relation string `json:"relation"`
	Object   string `json:"object"`
}

type tupleCreate struct {
	Subject  string  `json:"subject"`
	Relation string  `json:"relation"`
	Object   string  `json:"object"`
	Tenant   *string `json:"tenant,omitempty"`
}

type roleAssignmentBody struct {
	Role             string  `json:"role"`
	Tenant           string  `json:"tenant"`
	ResourceInstance *string `json:"resource_instance,omitempty"`
	User             string  `json:"user"`
}

func (s *envData) handleFacts(w http.ResponseWriter, r *http.Request, p []string, body []byte) {
	route := r.Method + " " + strings.Join(p, "/")
	switch route {
	case "POST tenants":
		var in struct {
			Key         string         `json:"key"`
			Name        string         `json:"name"`
			Description *string        `json:"description,omitempty"`
			Attributes  map[string]any `json:"attributes,omitempty"`
		}
		if err := decode(body, &in); err != nil || in.Key == "" {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid tenant: %v", err))
			return
		}
		if s.tenants[in.Key] {
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "tenant exists")
			return
		}
		s.tenants[in.Key] = true
		writeJSON(w, http.StatusOK, with(s.meta("tenant-"+in.Key), "key", in.Key, "name", in.Name, "last_action_at", s.created))
	case "POST users":
		var in struct {
			Key        string         `json:"key"`
			Email      *string        `json:"email,omitempty"`
			FirstName  *string        `json:"first_name,omitempty"`
			LastName   *string        `json:"last_name,omitempty"`
			Attributes map[string]any `json:"attributes,omitempty"`
		}
		if err := decode(body, &in); err != nil || in.Key == "" {
			writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid user: %v", err))
			return
		}
		if s.users[in.Key] {
			writeError(w, http.StatusConflict, "DUPLICATE_ENTITY", "user exists")
			return
		}
		s.users[in.Key] = true
		writeJSON(w, http.StatusOK, with(s.meta("user-"+in.Key), "key", in.Key, "roles", []any{}))
	case "GET relationship_tuples":
		start, size, err := page(r)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		q := r.URL.Query()
		var all []Tuple
		for t := range s.tuples {
			if (q.Get("tenant") == "" || q.Get("tenant") == t.Tenant) && (q.Get("subject") == "" || q.Get("subject") == t.Subject) &&
				(q.Get("relation") == "" || q.Get("relation") == t.Relation) && (q.Get("object") == "" || q.Get("object") == t.Object) {
				all = append(all, t)
			}
		}
		slices.SortFunc(all, func(a, b Tuple) int {
			return strings.Compare(a.Tenant+a.Object+a.Relation+a.Subject, b.Tenant+b.Object+b.Relation+b.Subject)
		})
		out := []map[string]any{}
		for _, t := range pageOf(all, start, size) {
			out = append(out, with(s.meta("tuple"), "subject", t.Subject, "relation", t.Relation, "object", t.Object, "tenant", t.Tenant,
				"subject_id", "i-"+t.Subject, "relation_id", "rel-"+t.Relation, "object_id", "i-"+t.Object, "tenant_id", "tenant-"+t.Tenant))
		}
		writeJSON(w, http.StatusOK, out)
	case "POST relationship_tuples/bulk":
		var in struct {
			Operations []tupleCreate `json:"operations"`
		}
		if err := decode(body, &in); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		var add []Tuple
		for _, op := range in.Operations {
			if op.Tenant == nil || !s.tenants[*op.Tenant] {
				writeError(w, http.StatusNotFound, "NOT_FOUND", "tenant of "+op.Object+" does not exist")
				return
			}
			st, _, _ := strings.Cut(op.Subject, ":")
			ot, _, _ := strings.Cut(op.Object, ":")
			if res := s.resources[ot]; res == nil || res.relations[op.Relation] != st {
				writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("%s has no relation %s to %s", ot, op.Relation, st))
				return
			}
			add = append(add, Tuple{Subject: op.Subject, Relation: op.Relation, Object: op.Object, Tenant: *op.Tenant})
		}
		for _, t := range add {
			s.tuples[t] = true
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	case "DELETE relationship_tuples/bulk":
		var in struct {
			Idents []tupleIdent `json:"idents"`
		}
		if err := decode(body, &in); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		for _, id := range in.Idents {
			for t := range s.tuples {
				if t.Subject == id.Subject && t.Relation == id.Relation && t.Object == id.Object {
					delete(s.tuples, t)
				}
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	case "GET role_assignments":
		start, size, err := page(r)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		q := r.URL.Query()
		var all []Assignment
		for a := range s.assignments {
			resType, _, _ := strings.Cut(a.ResourceInstance, ":")
			if (q.Get("user") == "" || q.Get("user") == a.User) && (q.Get("role") == "" || q.Get("role") == a.Role) &&
				(q.Get("tenant") == "" || q.Get("tenant") == a.Tenant) && (q.Get("resource") == "" || q.Get("resource") == resType) &&
				(q.Get("resource_instance") == "" || q.Get("resource_instance") == a.ResourceInstance) {
				all = append(all, a)
			}
		}
		slices.SortFunc(all, func(a, b Assignment) int {
			return strings.Compare(a.Tenant+a.ResourceInstance+a.User+a.Role, b.Tenant+b.ResourceInstance+b.User+b.Role)
		})
		out := []map[string]any{}
		for _, a := range pageOf(all, start, size) {
			m := with(s.meta("ra"), "user", a.User, "role", a.Role, "tenant", a.Tenant, "user_id", "user-"+a.User, "role_id", "role-"+a.Role, "tenant_id", "tenant-"+a.Tenant)
			if a.ResourceInstance != "" {
				m["resource_instance"] = a.ResourceInstance
				m["resource_instance_id"] = "i-" + a.ResourceInstance
			}
			delete(m, "updated_at") // RoleAssignmentRead has none (the SDK refuses unknown fields)
			out = append(out, m)
		}
		writeJSON(w, http.StatusOK, out)
	case "POST role_assignments/bulk", "DELETE role_assignments/bulk":
		var in []roleAssignmentBody
		if err := decode(body, &in); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		var batch []Assignment
		for _, ra := range in {
			a := Assignment{User: ra.User, Role: ra.Role, Tenant: ra.Tenant}
			if ra.ResourceInstance != nil {
				a.ResourceInstance = *ra.ResourceInstance
			}
			if r.Method == http.MethodPost {
				resType, _, _ := strings.Cut(a.ResourceInstance, ":")
				switch res := s.resources[resType]; {
				case !s.users[a.User]:
					writeError(w, http.StatusNotFound, "NOT_FOUND", "user "+a.User+" does not exist")
					return
				case !s.tenants[a.Tenant]:
					writeError(w, http.StatusNotFound, "NOT_FOUND", "tenant "+a.Tenant+" does not exist")
					return
				case res == nil || res.roles[a.Role] == nil:
					writeError(w, http.StatusNotFound, "NOT_FOUND", "role "+a.Role+" of "+resType+" does not exist")
					return
				}
			}
			batch = append(batch, a)
		}
		n := 0
		for _, a := range batch {
			if r.Method == http.MethodPost && !s.assignments[a] {
				s.assignments[a] = true
				n++
			}
			if r.Method == http.MethodDelete && s.assignments[a] {
				delete(s.assignments, a)
				n++
			}
		}
		if r.Method == http.MethodPost {
			writeJSON(w, http.StatusOK, map[string]any{"assignments_created": n})
		} else {
			writeJSON(w, http.StatusOK, map[string]any{"assignments_removed": n})
		}
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no route "+r.Method+" "+r.URL.Path)
	}
}

type checkUser struct {
	Key        string         `json:"key"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Email      string         `json:"email,omitempty"`
	Roles      []any          `json:"roles,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

func (s *envData) handleAllowed(w http.ResponseWriter, body []byte) {
	var in struct {
		User     checkUser `json:"user"`
		Action   string    `json:"action"`
		Resource struct {
			Type       string            `json:"type"`
			ID         string            `json:"id,omitempty"`
			Key        string            `json:"key,omitempty"`
			Tenant     string            `json:"tenant,omitempty"`
			Attributes map[string]any    `json:"attributes,omitempty"`
			Context    map[string]string `json:"context,omitempty"`
		} `json:"resource"`
		Context map[string]string `json:"context"`
	}
	if err := decode(body, &in); err != nil || in.User.Key == "" || in.Resource.Type == "" {
		writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid check: %v", err))
		return
	}
	tenant := in.Resource.Tenant
	if tenant == "" {
		tenant = "default"
	}
	allow := in.Resource.Key != "" && s.allowed(in.User.Key, in.Action, in.Resource.Type+":"+in.Resource.Key, tenant)
	writeJSON(w, http.StatusOK, map[string]any{"allow": allow, "result": allow, "query": map[string]any{}, "debug": map[string]any{}})
}

func (s *envData) handleUserPermissions(w http.ResponseWriter, body []byte) {
	var in struct {
		User          checkUser      `json:"user"`
		Tenants       []string       `json:"tenants,omitempty"`
		Resources     []string       `json:"resources,omitempty"`
		ResourceTypes []string       `json:"resource_types,omitempty"`
		Context       map[string]any `json:"context,omitempty"`
	}
	if err := decode(body, &in); err != nil || in.User.Key == "" {
		writeError(w, http.StatusUnprocessableEntity, "", fmt.Sprintf("invalid request: %v", err))
		return
	}
	// Every instance the facts name, in its tenant.
	instances := map[[2]string]bool{}
	for t := range s.tuples {
		instances[[2]string{t.Object, t.Tenant}] = true
		instances[[2]string{t.Subject, t.Tenant}] = true
	}
	for a := range s.assignments {
		if a.ResourceInstance != "" {
			instances[[2]string{a.ResourceInstance, a.Tenant}] = true
		}
	}
	out := map[string]any{}
	for it := range instances {
		inst, tenant := it[0], it[1]
		typ, key, _ := strings.Cut(inst, ":")
		if (len(in.Tenants) > 0 && !slices.Contains(in.Tenants, tenant)) || (len(in.ResourceTypes) > 0 && !slices.Contains(in.ResourceTypes, typ)) ||
			(len(in.Resources) > 0 && !slices.Contains(in.Resources, inst)) {
			continue
		}
		res := s.resources[typ]
		if res == nil {
			continue
		}
		var perms, roles []string
		for name, rl := range res.roles {
			if !s.hasRole(in.User.Key, name, inst, tenant, 0) {
				continue
			}
			roles = append(roles, name)
			for _, p := range rl.permissions {
				p = typ + ":" + strings.TrimPrefix(p, typ+":")
				if !slices.Contains(perms, p) {
					perms = append(perms, p)
				}
			}
		}
		if len(perms) == 0 && len(roles) == 0 {
			continue
		}
		slices.Sort(perms)
		slices.Sort(roles)
		out[inst] = map[string]any{
			"tenant":      map[string]any{"key": tenant, "attributes": map[string]any{}},
			"resource":    map[string]any{"type": typ, "key": key, "attributes": map[string]any{}},
			"permissions": perms, "roles": roles,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *envData) allowed(user, action, inst, tenant string) bool {
	typ, _, _ := strings.Cut(inst, ":")
	res := s.resources[typ]
	if res == nil {
		return false
	}
	for name, rl := range res.roles {
		if (slices.Contains(rl.permissions, action) || slices.Contains(rl.permissions, typ+":"+action)) && s.hasRole(user, name, inst, tenant, 0) {
			return true
		}
	}
	return false
}

// hasRole: assigned on the instance in the tenant, or derived through an implicit grant and a
// tuple of the tenant (bounded depth: the model has no cycles, a bad one does not hang).
func (s *envData) hasRole(user, roleKey, inst, tenant string, depth int) bool {
	if depth > 8 {
		return false
	}
	if s.assignments[Assignment{User: user, Role: roleKey, Tenant: tenant, ResourceInstance: inst}] {
		return true
	}
	typ, _, _ := strings.Cut(inst, ":")
	res := s.resources[typ]
	if res == nil || res.roles[roleKey] == nil {
		return false
	}
	for _, d := range res.roles[roleKey].grants {
		for t := range s.tuples {
			if t.Object != inst || t.Relation != d.LinkedByRelation || t.Tenant != tenant || !strings.HasPrefix(t.Subject, d.OnResource+":") {
				continue
			}
			if s.hasRole(user, d.Role, t.Subject, tenant, depth+1) {
				return true
			}
		}
	}
	return false
}
