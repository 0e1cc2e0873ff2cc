// Package permitbackend is an authzserver.Backend on Permit.io (the permit-golang SDK): the
// relationships trustgate's store implies become Permit relationship tuples (one Permit tenant
// per host), each agent's effective level on each server becomes one role assignment, and
// checks are answered by a Permit PDP (/allowed; tools/list through /user-permissions).
//
// Facts (tenants, users, tuples, role assignments) are written through the PDP, as the SDK
// does, asking it to wait until it holds them (X-Wait-Timeout, policy fail): a write returns
// only when the PDP that answers checks enforces it, so a revocation is visible to the next
// check without a revision token. The policy model (resources, roles, relations, derivations)
// is created through the Permit API at start-up.
package permitbackend

import (
	"context"
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
	"go.uber.org/zap"

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

// Config says which Permit environment to use.
type Config struct {
	// APIKey is an environment-level Permit API key (it selects the project and environment).
	APIKey string
	// APIURL is the Permit API (default DefaultAPIURL).
	APIURL string
	// PDPURL is the policy decision point the team runs; it answers checks and proxies facts.
	PDPURL string
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
	schemaAPI *openapi.APIClient // the API: api-key scope, policy model
	factsAPI  *openapi.APIClient // facts, through the PDP
	pdp       *enforcement.PermitEnforcer
	http      *http.Client
	project   string
	env       string
	logger    *slog.Logger

	mu      sync.Mutex
	tenants map[string]bool // tenants known to exist
}

var _ authzserver.Backend = (*Backend)(nil)

// Open connects to Permit: it reads the API key's scope (project and environment) and makes
// sure the policy model exists. It fails with a message naming what is missing or wrong.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("the Permit backend needs --permit-api-key (an environment-level API key)")
	}
	if cfg.PDPURL == "" {
		return nil, errors.New("the Permit backend needs --permit-pdp-url (the PDP that answers checks)")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	for name, u := range map[string]string{"--permit-api-url": cfg.APIURL, "--permit-pdp-url": cfg.PDPURL} {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("%s %q must be an http(s) URL", name, u)
		}
	}
	cfg.APIURL = strings.TrimSuffix(cfg.APIURL, "/")
	cfg.PDPURL = strings.TrimSuffix(cfg.PDPURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FactsSyncTimeout < time.Second {
		cfg.FactsSyncTimeout = DefaultFactsSyncTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	httpClient := &http.Client{Timeout: cfg.Timeout + cfg.FactsSyncTimeout}
	pc := permitconfig.NewConfigBuilder(cfg.APIKey).
		WithApiUrl(cfg.APIURL).
		WithPdpUrl(cfg.PDPURL).
		WithHTTPClient(httpClient).
		WithProxyFactsViaPDP(true).
		WithFactsSyncTimeout(cfg.FactsSyncTimeout).
		WithLogger(zap.NewNop()). // the SDK's own logging is off: errors are returned and logged here
		Build()
	factsConfig := api.NewFactsClientConfig(&pc)
	factsConfig.AddDefaultHeader("X-Timeout-Policy", "fail")
	checkConfig := pc
	checkConfig.WithHTTPClient(&http.Client{Timeout: cfg.Timeout})
	b := &Backend{
		cfg:       cfg,
		schemaAPI: openapi.NewAPIClient(api.NewClientConfig(&pc)),
		factsAPI:  openapi.NewAPIClient(factsConfig),
		pdp:       enforcement.NewPermitEnforcerClient(&checkConfig),
		http:      &http.Client{Timeout: cfg.Timeout},
		logger:    cfg.Logger,
		tenants:   map[string]bool{},
	}
	scopeCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	scope, res, err := b.schemaAPI.APIKeysApi.GetApiKeyScope(scopeCtx).Execute()
	if err := permitError(err, res); err != nil {
		return nil, fmt.Errorf("read the Permit API key's scope at %s: %w", cfg.APIURL, err)
	}
	if scope.GetProjectId() == "" || scope.GetEnvironmentId() == "" {
		return nil, errors.New("the Permit API key is not an environment-level key: create one in the environment trustgate should use")
	}
	b.project, b.env = scope.GetProjectId(), scope.GetEnvironmentId()
	if err := b.ensureModel(ctx); err != nil {
		return nil, fmt.Errorf("the Permit policy model: %w", err)
	}
	cfg.Logger.Info("using Permit", "api", cfg.APIURL, "pdp", cfg.PDPURL, "project", b.project, "environment", b.env)
	return b, nil
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

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: Permit %s: %v", authzserver.ErrUnavailable, what, err)
}

// ensureModel creates the resources, relations, roles and derivations of policyModel; those
// that exist already (409) are left as they are.
func (b *Backend) ensureModel(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 4*b.cfg.Timeout)
	defer cancel()
	model := policyModel()
	for _, r := range model {
		actions := map[string]models.ActionBlockEditable{}
		for _, a := range r.actions {
			actions[a] = models.ActionBlockEditable{}
		}
		create := models.NewResourceCreate(r.key, r.key, actions)
		_, res, err := b.schemaAPI.ResourcesApi.CreateResource(ctx, b.project, b.env).ResourceCreate(*create).Execute()
		if err := permitError(err, res); err != nil && !isConflict(err) {
			return fmt.Errorf("create resource %s: %w", r.key, err)
		}
	}
	// Relations after every resource exists (a relation names its subject resource).
	for _, r := range model {
		for _, rel := range r.relations {
			create := models.NewRelationCreate(rel.key, rel.key, rel.subject)
			_, res, err := b.schemaAPI.ResourceRelations.CreateResourceRelation(ctx, b.project, b.env, r.key).RelationCreate(*create).Execute()
			if err := permitError(err, res); err != nil && !isConflict(err) {
				return fmt.Errorf("create relation %s#%s: %w", r.key, rel.key, err)
			}
		}
		for _, role := range r.roles {
			create := models.NewResourceRoleCreate(role.key, role.key)
			create.SetPermissions(role.permissions)
			_, res, err := b.schemaAPI.ResourceRoles.CreateResourceRole(ctx, b.project, b.env, r.key).ResourceRoleCreate(*create).Execute()
			if err := permitError(err, res); err != nil && !isConflict(err) {
				return fmt.Errorf("create role %s#%s: %w", r.key, role.key, err)
			}
		}
	}
	for _, r := range model {
		for _, role := range r.roles {
			for _, d := range role.derivations {
				rule := models.NewDerivedRoleRuleCreate(d.role, d.onResource, d.relation)
				_, res, err := b.schemaAPI.ImplicitGrantsApi.CreateImplicitGrant(ctx, b.project, b.env, r.key, role.key).DerivedRoleRuleCreate(*rule).Execute()
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
			got, res, err := b.schemaAPI.ResourceRoles.GetResourceRole(ctx, b.project, b.env, r.key, role.key).Execute()
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

// WriteRelationships writes the updates as Permit tuples, then re-derives the effective roles
// of every host they touch. Permit has no revisions: the returned revision is empty, and a
// check after a successful write sees it (the PDP acknowledged it).
func (b *Backend) WriteRelationships(ctx context.Context, updates []authzserver.Update) (authzserver.Revision, error) {
	var creates []models.RelationshipTupleCreate
	var deletes []models.RelationshipTupleDelete
	hosts := map[string]bool{}
	for _, u := range updates {
		t, err := toTuple(u.Relationship)
		if err != nil {
			return "", err
		}
		hosts[t.Tenant] = true
		switch u.Op {
		case authzserver.OpTouch:
			c := models.NewRelationshipTupleCreate(t.Subject, t.Relation, t.Object)
			c.SetTenant(t.Tenant)
			creates = append(creates, *c)
		case authzserver.OpDelete:
			deletes = append(deletes, *models.NewRelationshipTupleDelete(t.Subject, t.Relation, t.Object))
		default:
			return "", fmt.Errorf("relationship %s: unknown operation %v", u.Relationship, u.Op)
		}
	}
	if len(hosts) == 0 {
		return "", nil
	}
	for _, h := range sortedKeys(hosts) {
		if err := b.ensureTenant(ctx, h); err != nil {
			return "", err
		}
	}
	for chunk := range slices.Chunk(deletes, bulkLimit) {
		op := models.NewRelationshipTupleDeleteBulkOperation(chunk)
		_, res, err := b.factsAPI.RelationshipTuplesApi.BulkDeleteRelationshipTuples(ctx, b.project, b.env).RelationshipTupleDeleteBulkOperation(*op).Execute()
		if err := permitError(err, res); err != nil {
			return "", unavailable("delete relationship tuples", err)
		}
	}
	for chunk := range slices.Chunk(creates, bulkLimit) {
		op := models.NewRelationshipTupleCreateBulkOperation(chunk)
		_, res, err := b.factsAPI.RelationshipTuplesApi.BulkCreateRelationshipTuples(ctx, b.project, b.env).RelationshipTupleCreateBulkOperation(*op).Execute()
		if err := permitError(err, res); err != nil {
			return "", unavailable("create relationship tuples", err)
		}
	}
	for _, h := range sortedKeys(hosts) {
		if err := b.syncRoles(ctx, h); err != nil {
			return "", err
		}
	}
	return "", nil
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

func (b *Backend) ensureTenant(ctx context.Context, host string) error {
	b.mu.Lock()
	known := b.tenants[host]
	b.mu.Unlock()
	if known {
		return nil
	}
	create := models.NewTenantCreate(host, host)
	_, res, err := b.factsAPI.TenantsApi.CreateTenant(ctx, b.project, b.env).TenantCreate(*create).Execute()
	if err := permitError(err, res); err != nil && !isConflict(err) {
		return unavailable("create tenant "+host, err)
	}
	b.mu.Lock()
	b.tenants[host] = true
	b.mu.Unlock()
	return nil
}

// listTuples reads every relationship tuple (of one tenant when tenant is set), page by page.
func (b *Backend) listTuples(ctx context.Context, tenant string, fn func(tuple) error) error {
	for page := int32(1); ; page++ {
		req := b.factsAPI.RelationshipTuplesApi.ListRelationshipTuples(ctx, b.project, b.env).Page(page).PerPage(perPage)
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
func (b *Backend) syncRoles(ctx context.Context, host string) error {
	var rels []schema.Relationship
	if err := b.listTuples(ctx, host, func(t tuple) error {
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
		got, res, err := b.factsAPI.RoleAssignmentsApi.ListRoleAssignments(ctx, b.project, b.env).
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
		_, res, err := b.factsAPI.RoleAssignmentsApi.BulkUnassignRole(ctx, b.project, b.env).RoleAssignmentRemove(chunk).Execute()
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
		_, res, err := b.factsAPI.UsersApi.CreateUser(ctx, b.project, b.env).UserCreate(*models.NewUserCreate(u)).Execute()
		if err := permitError(err, res); err != nil && !isConflict(err) {
			return unavailable("create user "+u, err)
		}
	}
	for chunk := range slices.Chunk(add, bulkLimit) {
		_, res, err := b.factsAPI.RoleAssignmentsApi.BulkAssignRole(ctx, b.project, b.env).RoleAssignmentCreate(chunk).Execute()
		if err := permitError(err, res); err != nil {
			return unavailable("assign roles", err)
		}
	}
	return nil
}

// ReadRelationships calls fn for every relationship in Permit whose resource is of
// resourceType (tuples of resource types trustgate does not own are skipped).
func (b *Backend) ReadRelationships(ctx context.Context, resourceType string, fn func(schema.Relationship) error) error {
	return b.listTuples(ctx, "", func(t tuple) error {
		r, ok := fromTuple(t)
		if !ok || r.Resource.Type != resourceType {
			return nil
		}
		return fn(r)
	})
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
	user := enforcement.UserBuilder(userKey(req.Subject.Object)).Build()
	resource := enforcement.ResourceBuilder(schemaToPermitType[req.Resource.Type]).
		WithKey(permitKey(req.Resource.ID)).WithTenant(hostOf(req.Resource)).Build()
	allowed, err := b.pdp.Check(user, enforcement.Action(req.Permission), resource)
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
	user := enforcement.UserBuilder(userKey(schema.Agent(hostKey, agentID))).Build()
	perms, err := b.pdp.GetUserPermissionsWithOptions(user,
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

// Ready reports whether the PDP answers (its /healthy endpoint).
func (b *Backend) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.cfg.PDPURL+"/healthy", nil)
	if err != nil {
		return err
	}
	res, err := b.http.Do(req)
	if err != nil {
		return unavailable("PDP health", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return unavailable("PDP health", fmt.Errorf("status %d", res.StatusCode))
	}
	return nil
}

// Close releases idle connections.
func (b *Backend) Close() error {
	b.http.CloseIdleConnections()
	return nil
}
