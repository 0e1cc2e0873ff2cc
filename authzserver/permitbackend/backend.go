// Package permitbackend is an authzserver.Backend on Permit.io (the permit-golang SDK): the
// relationships trustgate's store implies become Permit relationship tuples (one Permit tenant
// per host), each agent's effective level on each server becomes one role assignment, and
// checks are answered by a Permit PDP (/allowed; tools/list through /user-permissions).
//
// Every host's facts and checks go to one environment: its own when it is mapped to one
// (HostEnvironment, with that environment's PDP), else the API key's.
//
// Facts (tenants, users, tuples, role assignments) are written through the PDP, as the SDK
// does, asking it to wait until it holds them (X-Wait-Timeout, policy fail): a write returns
// only when the PDP that answers checks enforces it, so a revocation is visible to the next
// check without a revision token. The policy model (resources, roles, relations, derivations)
// is created through the Permit API at start-up.
package permitbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/permitio/permit-golang/pkg/api"
	permitconfig "github.com/permitio/permit-golang/pkg/config"
	"github.com/permitio/permit-golang/pkg/enforcement"
	permiterrors "github.com/permitio/permit-golang/pkg/errors"
	"github.com/permitio/permit-golang/pkg/models"
	"github.com/permitio/permit-golang/pkg/openapi"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// DefaultAPIURL is Permit's cloud API, as the SDK names it.
const DefaultAPIURL = permitconfig.DefaultApiUrl

const (
	// DefaultTimeout bounds every request to the API or the PDP.
	DefaultTimeout = 5 * time.Second
	// DefaultFactsSyncTimeout is how long the PDP may take to hold a written fact.
	DefaultFactsSyncTimeout = 10 * time.Second
	perPage                 = 100 // the API's largest page
	bulkLimit               = 100 // operations per bulk request
)

// Config says which Permit environments to use.
type Config struct {
	// APIKey is a Permit API key. An environment-level key selects the environment of every
	// host not in Environments; with Environments, the key must be able to address theirs (a
	// project- or organization-level key).
	APIKey string
	// APIURL is the Permit API (default DefaultAPIURL).
	APIURL string
	// PDPURL is the policy decision point the team runs; it answers checks and proxies facts
	// (of the key's environment, and of mapped environments that name no PDP of their own).
	PDPURL string
	// Environments puts hosts in environments of their own (--permit-host-environment).
	Environments []HostEnvironment
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// FactsSyncTimeout is how long a write waits for the PDP to hold it (default
	// DefaultFactsSyncTimeout; whole seconds).
	FactsSyncTimeout time.Duration
	Logger           *slog.Logger
}

// Backend is the Permit implementation of authzserver.Backend.
type Backend struct {
	cfg       Config
	schemaAPI *openapi.APIClient // the API: api-key scope, environments, policy model
	home      *environment       // the key's own environment; nil for a project or organization key
	byHost    map[string]*environment
	envs      []*environment // every environment used, the key's own first
	logger    *slog.Logger

	mu sync.Mutex // guards each environment's tenants
}

var _ authzserver.Backend = (*Backend)(nil)

// Open connects to Permit: it reads the API key's scope, resolves the environment of every
// mapped host and makes sure the policy model exists in each environment used. It fails with a
// message naming what is missing or wrong.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("the Permit backend needs --permit-api-key (an environment-level API key, or a project- or organization-level one with --permit-host-environment)")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	urls := map[string]string{"--permit-api-url": cfg.APIURL}
	if cfg.PDPURL != "" {
		urls["--permit-pdp-url"] = cfg.PDPURL
	}
	for name, u := range urls {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("%s %q must be an http(s) URL", name, u)
		}
	}
	cfg.APIURL = strings.TrimSuffix(cfg.APIURL, "/")
	cfg.PDPURL = strings.TrimSuffix(cfg.PDPURL, "/")
	if len(cfg.Environments) == 0 && cfg.PDPURL == "" {
		return nil, errors.New("the Permit backend needs --permit-pdp-url (the PDP that answers checks)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FactsSyncTimeout < time.Second {
		cfg.FactsSyncTimeout = DefaultFactsSyncTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pc := permitConfig(cfg, cfg.PDPURL, &http.Client{Timeout: cfg.Timeout})
	b := &Backend{
		cfg:       cfg,
		schemaAPI: openapi.NewAPIClient(api.NewClientConfig(&pc)),
		byHost:    map[string]*environment{},
		logger:    cfg.Logger,
	}
	scopeCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	scope, res, err := b.schemaAPI.APIKeysApi.GetApiKeyScope(scopeCtx).Execute()
	if err := permitError(err, res); err != nil {
		return nil, fmt.Errorf("read the Permit API key's scope at %s: %w", cfg.APIURL, err)
	}
	if scope.GetProjectId() != "" && scope.GetEnvironmentId() != "" {
		if cfg.PDPURL == "" {
			return nil, errors.New("the Permit backend needs --permit-pdp-url: the PDP of the API key's environment, which serves the hosts not given to --permit-host-environment")
		}
		b.home = newEnvironment(cfg, scope.GetProjectId(), scope.GetEnvironmentId(), cfg.PDPURL)
		b.envs = append(b.envs, b.home)
	} else if len(cfg.Environments) == 0 {
		return nil, errors.New("the Permit API key is not an environment-level key: create one in the environment trustgate should use, or put hosts in environments with --permit-host-environment")
	}
	if err := b.mapHosts(ctx, scope.GetProjectId(), scope.GetEnvironmentId()); err != nil {
		return nil, err
	}
	for _, e := range b.envs {
		if err := b.ensureModel(ctx, e); err != nil {
			return nil, fmt.Errorf("the Permit policy model in %s: %w", e, err)
		}
		cfg.Logger.Info("using Permit", "api", cfg.APIURL, "pdp", e.pdpURL, "project", e.project, "environment", e.env, "hosts", b.hostsIn(e))
	}
	return b, nil
}

// mapHosts resolves each mapped host's environment through the API (which also tells whether
// the key may address it) and makes one environment per environment used.
func (b *Backend) mapHosts(ctx context.Context, keyProject, keyEnv string) error {
	byID := map[string]*environment{}
	if b.home != nil {
		byID[b.home.String()] = b.home
	}
	for _, m := range b.cfg.Environments {
		if _, dup := b.byHost[m.Host]; dup {
			return fmt.Errorf("--permit-host-environment: host %s is given twice", m.Host)
		}
		pdpURL := m.PDPURL
		if pdpURL == "" {
			pdpURL = b.cfg.PDPURL
		}
		if pdpURL == "" {
			return fmt.Errorf("--permit-host-environment %s: no PDP for host %s: add @PDP_URL or give --permit-pdp-url", m, m.Host)
		}
		reqCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		got, res, err := b.schemaAPI.EnvironmentsApi.GetEnvironment(reqCtx, m.Project, m.Environment).Execute()
		err = permitError(err, res)
		cancel()
		cannot := fmt.Sprintf("--permit-host-environment %s: the Permit API key cannot address environment %s/%s of host %s: use a project- or organization-level key that covers it", m, m.Project, m.Environment, m.Host)
		switch {
		case isRefused(err):
			return fmt.Errorf("%s (%w)", cannot, err)
		case err != nil:
			return fmt.Errorf("--permit-host-environment %s: read environment %s/%s at %s: %w", m, m.Project, m.Environment, b.cfg.APIURL, err)
		case got.ProjectId == "" || got.Id == "":
			return fmt.Errorf("--permit-host-environment %s: Permit answered environment %s/%s without its ids", m, m.Project, m.Environment)
		case keyEnv != "" && (got.ProjectId != keyProject || got.Id != keyEnv), keyProject != "" && got.ProjectId != keyProject:
			return errors.New(cannot)
		}
		e := byID[got.ProjectId+"/"+got.Id]
		if e == nil {
			e = newEnvironment(b.cfg, got.ProjectId, got.Id, pdpURL)
			byID[e.String()] = e
			b.envs = append(b.envs, e)
		} else if e.pdpURL != pdpURL {
			return fmt.Errorf("--permit-host-environment %s: environment %s is served by the PDP %s already (a PDP serves one environment, an environment one PDP here)", m, e, e.pdpURL)
		}
		b.byHost[m.Host] = e
	}
	return nil
}

func (b *Backend) hostsIn(e *environment) []string {
	var hosts []string
	for h, he := range b.byHost {
		if he == e {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	if e == b.home {
		hosts = append(hosts, "(every other)")
	}
	return hosts
}

// envOf is the environment of a host's facts and checks.
func (b *Backend) envOf(host string) (*environment, error) {
	if e := b.byHost[host]; e != nil {
		return e, nil
	}
	if b.home != nil {
		return b.home, nil
	}
	return nil, fmt.Errorf("host %s has no Permit environment: give it one with --permit-host-environment (the API key is not an environment-level key)", host)
}

// permitError turns the SDK's (error, response) pair into one error, nil on success.
func permitError(err error, res *http.Response) error {
	if res != nil && res.Body != nil {
		defer res.Body.Close()
	}
	return permiterrors.HttpErrorHandle(err, res)
}

// isConflict reports a 409 (the object exists already).
func isConflict(err error) bool {
	var pe permiterrors.PermitError
	return errors.As(err, &pe) && pe.StatusCode == http.StatusConflict
}

// writeFailed is a failed write: refused for good when Permit answered 400 or 422 (the
// request itself is wrong: asking again will not help), else unavailable. A refusal names
// Permit's own reason, which operators read where the change is set aside.
func writeFailed(what string, err error) error {
	var pe permiterrors.PermitError
	if errors.As(err, &pe) && (pe.StatusCode == http.StatusBadRequest || pe.StatusCode == http.StatusUnprocessableEntity) {
		return fmt.Errorf("%w: Permit %s: HTTP %d: %s", authzserver.ErrRefused, what, pe.StatusCode, permitReason(pe))
	}
	return unavailable(what, err)
}

// maxPermitReason bounds the reason taken from a Permit error body.
const maxPermitReason = 512

// permitReason is the reason in a Permit error response's body: its message (with its error
// code) or, for a validation error (422), each field's location and message. The SDK's own
// error text formats the generated client's error and is the fallback only.
func permitReason(pe permiterrors.PermitError) string {
	var body struct {
		ErrorCode string          `json:"error_code"`
		Message   string          `json:"message"`
		Detail    json.RawMessage `json:"detail"`
	}
	reason := ""
	if json.Unmarshal([]byte(pe.ResponseBody), &body) == nil {
		var details []struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		}
		var detail string
		switch {
		case body.Message != "" && body.ErrorCode != "":
			reason = body.ErrorCode + ": " + body.Message
		case body.Message != "":
			reason = body.Message
		case json.Unmarshal(body.Detail, &details) == nil && len(details) > 0:
			parts := make([]string, 0, len(details))
			for _, d := range details {
				loc := make([]string, 0, len(d.Loc))
				for _, l := range d.Loc {
					loc = append(loc, fmt.Sprint(l))
				}
				parts = append(parts, strings.Join(loc, ".")+": "+d.Msg)
			}
			reason = strings.Join(parts, "; ")
		case json.Unmarshal(body.Detail, &detail) == nil && detail != "":
			reason = detail
		}
	}
	if reason == "" {
		reason = pe.Error()
	}
	if len(reason) > maxPermitReason {
		reason = strings.ToValidUTF8(reason[:maxPermitReason], "") + "…"
	}
	return reason
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: Permit %s: %v", authzserver.ErrUnavailable, what, err)
}

// ensureModel creates the resources, relations, roles and derivations of policyModel; those
// that exist already (409) are left as they are.
func (b *Backend) ensureModel(ctx context.Context, e *environment) error {
	ctx, cancel := context.WithTimeout(ctx, 4*b.cfg.Timeout)
	defer cancel()
	model := policyModel()
	for _, r := range model {
		actions := map[string]models.ActionBlockEditable{}
		for _, a := range r.actions {
			actions[a] = models.ActionBlockEditable{}
		}
		create := models.NewResourceCreate(r.key, r.key, actions)
		_, res, err := b.schemaAPI.ResourcesApi.CreateResource(ctx, e.project, e.env).ResourceCreate(*create).Execute()
		if err := permitError(err, res); err != nil && !isConflict(err) {
			return fmt.Errorf("create resource %s: %w", r.key, err)
		}
	}
	// Relations after every resource exists (a relation names its subject resource).
	for _, r := range model {
		for _, rel := range r.relations {
			create := models.NewRelationCreate(rel.key, rel.key, rel.subject)
			_, res, err := b.schemaAPI.ResourceRelations.CreateResourceRelation(ctx, e.project, e.env, r.key).RelationCreate(*create).Execute()
			if err := permitError(err, res); err != nil && !isConflict(err) {
				return fmt.Errorf("create relation %s#%s: %w", r.key, rel.key, err)
			}
		}
		for _, role := range r.roles {
			create := models.NewResourceRoleCreate(role.key, role.key)
			create.SetPermissions(role.permissions)
			_, res, err := b.schemaAPI.ResourceRoles.CreateResourceRole(ctx, e.project, e.env, r.key).ResourceRoleCreate(*create).Execute()
			if err := permitError(err, res); err != nil && !isConflict(err) {
				return fmt.Errorf("create role %s#%s: %w", r.key, role.key, err)
			}
		}
	}
	for _, r := range model {
		for _, role := range r.roles {
			for _, d := range role.derivations {
				rule := models.NewDerivedRoleRuleCreate(d.role, d.onResource, d.relation)
				_, res, err := b.schemaAPI.ImplicitGrantsApi.CreateImplicitGrant(ctx, e.project, e.env, r.key, role.key).DerivedRoleRuleCreate(*rule).Execute()
				if err := permitError(err, res); err != nil && !isConflict(err) {
					return fmt.Errorf("derive %s#%s from %s#%s by %s: %w", r.key, role.key, d.onResource, d.role, d.relation, err)
				}
			}
		}
	}
	// The roles must decide exactly what trustgate means: a role someone widened in Permit
	// would allow more than the store implies.
	for _, r := range model {
		for _, role := range r.roles {
			got, res, err := b.schemaAPI.ResourceRoles.GetResourceRole(ctx, e.project, e.env, r.key, role.key).Execute()
			if err := permitError(err, res); err != nil {
				return fmt.Errorf("read role %s#%s: %w", r.key, role.key, err)
			}
			if !sameSet(got.GetPermissions(), role.permissions) || len(got.GetExtends()) > 0 {
				return fmt.Errorf("role %s#%s in Permit grants %v (extending %v), trustgate expects %v: change it back or use another environment", r.key, role.key, got.GetPermissions(), got.GetExtends(), role.permissions)
			}
			var derived, want []string
			for _, d := range got.GetGrantedTo().UsersWithRole {
				derived = append(derived, d.OnResource+"#"+d.Role+" by "+d.LinkedByRelation)
			}
			for _, d := range role.derivations {
				want = append(want, d.onResource+"#"+d.role+" by "+d.relation)
			}
			if !sameSet(derived, want) {
				return fmt.Errorf("role %s#%s in Permit is derived from %v, trustgate expects %v: change it back or use another environment", r.key, role.key, derived, want)
			}
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// WriteRelationships writes the updates as Permit tuples in their hosts' environments, then
// re-derives the effective roles of every host they touch. Permit has no revisions: the returned
// revision is empty, and a check after a successful write sees it (the PDP acknowledged it).
// ErrConditionsUnsupported: a tool has argument conditions, which Permit cannot evaluate (they
// are SpiceDB caveats). Remove them (trustgate admin tool condition clear) or use SpiceDB.
var ErrConditionsUnsupported = errors.New("the Permit backend does not support argument conditions on tools; remove them with 'trustgate admin tool condition clear' or use SpiceDB")

func (b *Backend) WriteRelationships(ctx context.Context, updates []authzserver.Update) (authzserver.Revision, error) {
	type envWrites struct {
		creates []models.RelationshipTupleCreate
		deletes []models.RelationshipTupleDelete
		hosts   map[string]bool
	}
	writes := map[*environment]*envWrites{}
	for _, u := range updates {
		if u.Relationship.Caveat != "" && u.Op == authzserver.OpTouch {
			// Permit has no caveats: writing the tuple without its conditions would allow
			// every call of the tool. Fail instead, naming what to remove.
			return "", fmt.Errorf("relationship %s: %w (%w)", u.Relationship.Key(), ErrConditionsUnsupported, authzserver.ErrRefused)
		}
		t, err := toTuple(u.Relationship)
		if err != nil {
			return "", fmt.Errorf("%w: %w", authzserver.ErrRefused, err)
		}
		e, err := b.envOf(t.Tenant)
		if err != nil {
			return "", fmt.Errorf("relationship %s: %w", u.Relationship, err)
		}
		w := writes[e]
		if w == nil {
			w = &envWrites{hosts: map[string]bool{}}
			writes[e] = w
		}
		w.hosts[t.Tenant] = true
		switch u.Op {
		case authzserver.OpTouch:
			c := models.NewRelationshipTupleCreate(t.Subject, t.Relation, t.Object)
			c.SetTenant(t.Tenant)
			w.creates = append(w.creates, *c)
		case authzserver.OpDelete:
			w.deletes = append(w.deletes, *models.NewRelationshipTupleDelete(t.Subject, t.Relation, t.Object))
		default:
			return "", fmt.Errorf("relationship %s: unknown operation %v", u.Relationship, u.Op)
		}
	}
	for _, e := range b.envs {
		w := writes[e]
		if w == nil {
			continue
		}
		if err := b.write(ctx, e, w.creates, w.deletes, sortedKeys(w.hosts)); err != nil {
			return "", err
		}
	}
	return "", nil
}

// write applies one environment's share of a write.
func (b *Backend) write(ctx context.Context, e *environment, creates []models.RelationshipTupleCreate, deletes []models.RelationshipTupleDelete, hosts []string) error {
	for _, h := range hosts {
		if err := b.ensureTenant(ctx, e, h); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(deletes, bulkLimit) {
		op := models.NewRelationshipTupleDeleteBulkOperation(chunk)
		_, res, err := e.facts.RelationshipTuplesApi.BulkDeleteRelationshipTuples(ctx, e.project, e.env).RelationshipTupleDeleteBulkOperation(*op).Execute()
		if err := permitError(err, res); err != nil {
			return writeFailed("delete relationship tuples", err)
		}
	}
	for chunk := range slices.Chunk(creates, bulkLimit) {
		op := models.NewRelationshipTupleCreateBulkOperation(chunk)
		_, res, err := e.facts.RelationshipTuplesApi.BulkCreateRelationshipTuples(ctx, e.project, e.env).RelationshipTupleCreateBulkOperation(*op).Execute()
		if err := permitError(err, res); err != nil {
			return writeFailed("create relationship tuples", err)
		}
	}
	for _, h := range hosts {
		if err := b.syncRoles(ctx, e, h); err != nil {
			return err
		}
	}
	return nil
}

// DeleteRelationships removes the relationships (those absent are ignored).
func (b *Backend) DeleteRelationships(ctx context.Context, rels []schema.Relationship) (authzserver.Revision, error) {
	updates := make([]authzserver.Update, len(rels))
	for i, r := range rels {
		updates[i] = authzserver.Update{Op: authzserver.OpDelete, Relationship: r}
	}
	return b.WriteRelationships(ctx, updates)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (b *Backend) ensureTenant(ctx context.Context, e *environment, host string) error {
	b.mu.Lock()
	known := e.tenants[host]
	b.mu.Unlock()
	if known {
		return nil
	}
	create := models.NewTenantCreate(host, host)
	_, res, err := e.facts.TenantsApi.CreateTenant(ctx, e.project, e.env).TenantCreate(*create).Execute()
	if err := permitError(err, res); err != nil && !isConflict(err) {
		return unavailable("create tenant "+host, err)
	}
	b.mu.Lock()
	e.tenants[host] = true
	b.mu.Unlock()
	return nil
}

// listTuples reads every relationship tuple of an environment (of one tenant when tenant is
// set), page by page.
func (b *Backend) listTuples(ctx context.Context, e *environment, tenant string, fn func(tuple) error) error {
	for page := int32(1); ; page++ {
		req := e.facts.RelationshipTuplesApi.ListRelationshipTuples(ctx, e.project, e.env).Page(page).PerPage(perPage)
		if tenant != "" {
			req = req.Tenant(tenant)
		}
		got, res, err := req.Execute()
		if err := permitError(err, res); err != nil {
			return unavailable("list relationship tuples", err)
		}
		for _, t := range got {
			if err := fn(tuple{Subject: t.Subject, Relation: t.Relation, Object: t.Object, Tenant: t.Tenant}); err != nil {
				return err
			}
		}
		if len(got) < perPage {
			return nil
		}
	}
}

// syncRoles makes the level role assignments on the host's servers equal to what the host's
// tuples imply (effectiveRoles).
func (b *Backend) syncRoles(ctx context.Context, e *environment, host string) error {
	var rels []schema.Relationship
	if err := b.listTuples(ctx, e, host, func(t tuple) error {
		if r, ok := fromTuple(t); ok {
			rels = append(rels, r)
		}
		return nil
	}); err != nil {
		return err
	}
	want := effectiveRoles(rels)
	levelRoles := map[string]bool{}
	for _, l := range schema.Levels {
		levelRoles[l.String()] = true
	}
	var remove []models.RoleAssignmentRemove
	for page := int32(1); ; page++ {
		got, res, err := e.facts.RoleAssignmentsApi.ListRoleAssignments(ctx, e.project, e.env).
			Tenant(host).Resource(permitServer).Page(page).PerPage(perPage).Execute()
		if err := permitError(err, res); err != nil {
			return unavailable("list role assignments", err)
		}
		var list []models.RoleAssignmentRead
		if got != nil && got.RoleAssignmentRead != nil {
			list = *got.RoleAssignmentRead
		}
		for _, ra := range list {
			if ra.ResourceInstance == nil || !levelRoles[ra.Role] || !strings.HasPrefix(*ra.ResourceInstance, permitServer+":") {
				continue
			}
			a := assignment{User: ra.User, Role: ra.Role, Instance: *ra.ResourceInstance, Tenant: host}
			if want[a] {
				delete(want, a) // held and wanted
				continue
			}
			rm := models.NewRoleAssignmentRemove(ra.Role, host, ra.User)
			rm.SetResourceInstance(*ra.ResourceInstance)
			remove = append(remove, *rm)
		}
		if len(list) < perPage {
			break
		}
	}
	// Revocations first: an agent moving from high to low never holds both.
	for chunk := range slices.Chunk(remove, bulkLimit) {
		_, res, err := e.facts.RoleAssignmentsApi.BulkUnassignRole(ctx, e.project, e.env).RoleAssignmentRemove(chunk).Execute()
		if err := permitError(err, res); err != nil {
			return unavailable("unassign roles", err)
		}
	}
	if len(want) == 0 {
		return nil
	}
	var add []models.RoleAssignmentCreate
	users := map[string]bool{}
	for a := range want {
		users[a.User] = true
		c := models.NewRoleAssignmentCreate(a.Role, a.Tenant, a.User)
		c.SetResourceInstance(a.Instance)
		add = append(add, *c)
	}
	for _, u := range sortedKeys(users) {
		_, res, err := e.facts.UsersApi.CreateUser(ctx, e.project, e.env).UserCreate(*models.NewUserCreate(u)).Execute()
		if err := permitError(err, res); err != nil && !isConflict(err) {
			return unavailable("create user "+u, err)
		}
	}
	for chunk := range slices.Chunk(add, bulkLimit) {
		_, res, err := e.facts.RoleAssignmentsApi.BulkAssignRole(ctx, e.project, e.env).RoleAssignmentCreate(chunk).Execute()
		if err := permitError(err, res); err != nil {
			return unavailable("assign roles", err)
		}
	}
	return nil
}

// ReadRelationships calls fn for every relationship in Permit whose resource is of
// resourceType, reading every environment used. Tuples of resource types trustgate does not
// own are skipped, and so are those of a host in an environment that is not the host's (left
// from before a host was moved: reconciliation writes the host's facts where they belong).
func (b *Backend) ReadRelationships(ctx context.Context, resourceType string, fn func(schema.Relationship) error) error {
	for _, e := range b.envs {
		if err := b.listTuples(ctx, e, "", func(t tuple) error {
			r, ok := fromTuple(t)
			if !ok || r.Resource.Type != resourceType {
				return nil
			}
			if home, err := b.envOf(t.Tenant); err != nil || home != e {
				return nil
			}
			return fn(r)
		}); err != nil {
			return err
		}
	}
	return nil
}

// Check asks the PDP's /allowed: tool#call and mcp_server#use_<level> for an agent.
func (b *Backend) Check(ctx context.Context, req authzserver.CheckRequest) (bool, error) {
	if req.Subject.Object.Type != schema.TypeAgent || req.Subject.Relation != "" {
		return false, fmt.Errorf("the Permit backend checks agents, not %s", req.Subject)
	}
	switch {
	case req.Resource.Type == schema.TypeTool && req.Permission == actionCall:
	case req.Resource.Type == schema.TypeServer && slices.Contains([]string{useAction(schema.Low), useAction(schema.Medium), useAction(schema.High)}, req.Permission):
	default:
		return false, fmt.Errorf("the Permit backend has no check for %s#%s", req.Resource.Type, req.Permission)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	e, err := b.envOf(hostOf(req.Resource))
	if err != nil {
		return false, err
	}
	user := enforcement.UserBuilder(userKey(req.Subject.Object)).Build()
	resource := enforcement.ResourceBuilder(schemaToPermitType[req.Resource.Type]).
		WithKey(permitKey(req.Resource.ID)).WithTenant(hostOf(req.Resource)).Build()
	allowed, err := e.pdp.Check(user, enforcement.Action(req.Permission), resource)
	if err != nil {
		return false, unavailable("PDP check", err)
	}
	return allowed, nil
}

// CallableTools asks the PDP's /user-permissions once for the agent's tool permissions in the
// host and keeps the server's tools it may call.
func (b *Backend) CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := b.envOf(hostKey)
	if err != nil {
		return nil, err
	}
	user := enforcement.UserBuilder(userKey(schema.Agent(hostKey, agentID))).Build()
	perms, err := e.pdp.GetUserPermissionsWithOptions(user,
		enforcement.WithTenants([]string{hostKey}), enforcement.WithResourceTypes([]string{permitTool}))
	if err != nil {
		return nil, unavailable("PDP user permissions", err)
	}
	prefix := permitKey(schema.Server(hostKey, serverKey).ID) + "~"
	var names []string
	for _, p := range perms {
		if p.Resource == nil || p.Resource.Type != permitTool || p.Tenant.Key != hostKey || !strings.HasPrefix(p.Resource.Key, prefix) {
			continue
		}
		if !slices.Contains(p.Permissions, permitTool+":"+actionCall) && !slices.Contains(p.Permissions, actionCall) {
			continue
		}
		encoded := strings.TrimPrefix(p.Resource.Key, prefix)
		if strings.Contains(encoded, "~") {
			continue
		}
		name, err := schema.DecodeID(encoded)
		if err != nil {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Ready reports whether the PDP of every environment used answers (its /healthy endpoint).
func (b *Backend) Ready(ctx context.Context) error {
	for _, e := range b.envs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.pdpURL+"/healthy", nil)
		if err != nil {
			return err
		}
		res, err := e.http.Do(req)
		if err != nil {
			return unavailable("PDP health of "+e.String(), err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return unavailable("PDP health of "+e.String(), fmt.Errorf("status %d", res.StatusCode))
		}
	}
	return nil
}

// Close releases idle connections.
func (b *Backend) Close() error {
	for _, e := range b.envs {
		e.http.CloseIdleConnections()
	}
	return nil
}
