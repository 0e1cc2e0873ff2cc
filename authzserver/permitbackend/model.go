package permitbackend

import (
	"github.com/trustgate/trustgate/schema"
)

// The Permit policy model trustgate creates (and checks) at start-up. It mirrors schema.zed:
// every SpiceDB relation is a Permit relation with the same name, so every relationship the
// store implies is one Permit relationship tuple. Permit's role derivation is a union and cannot
// intersect "granted" with "ceiling" and "agent of the host", so those relations decide nothing
// by themselves: the backend derives each agent's effective level on each server from them
// (effectiveRoles) and assigns it as one role (low, medium or high) on the mcp_server instance.
// Tools derive `caller` from that role through their server_<level> relation.

type resourceModel struct {
	key       string
	actions   []string
	relations []relationModel
	roles     []roleModel
}

type relationModel struct {
	key     string
	subject string // subject resource
}

type roleModel struct {
	key         string
	permissions []string
	derivations []derivation
}

// derivation: the role is granted to users with role on resource onResource linked to the
// instance by relation.
type derivation struct {
	role, onResource, relation string
}

func levelRelations(prefix, subject string) []relationModel {
	var rels []relationModel
	for _, l := range schema.Levels {
		rels = append(rels, relationModel{key: prefix + l.String(), subject: subject})
	}
	return rels
}

// useAction is the server action a level allows (and every lower level's).
func useAction(l schema.Level) string { return "use_" + l.String() }

func serverRoles() []roleModel {
	var roles []roleModel
	for _, l := range schema.Levels {
		var perms []string
		for _, lower := range schema.Levels {
			if lower <= l {
				perms = append(perms, useAction(lower))
			}
		}
		roles = append(roles, roleModel{key: l.String(), permissions: perms})
	}
	return roles
}

// callerDerivations: a tool requiring level L is callable by users with a role of level L or
// higher on the server it is linked to by server_L.
func callerDerivations() []derivation {
	var ds []derivation
	for _, required := range schema.Levels {
		for _, held := range schema.Levels {
			if held >= required {
				ds = append(ds, derivation{role: held.String(), onResource: permitServer, relation: "server_" + required.String()})
			}
		}
	}
	return ds
}

func policyModel() []resourceModel {
	var serverActions []string
	for _, l := range schema.Levels {
		serverActions = append(serverActions, useAction(l))
	}
	server := resourceModel{
		key:       permitServer,
		actions:   serverActions,
		relations: []relationModel{{key: schema.RelServerHost, subject: permitHost}},
		roles:     serverRoles(),
	}
	server.relations = append(server.relations, levelRelations("ceiling_", permitAgent)...)
	server.relations = append(server.relations, levelRelations("granted_", permitAgent)...)
	return []resourceModel{
		{key: permitHuman, relations: []relationModel{{key: schema.RelUserAgent, subject: permitAgent}}},
		{key: permitAgent, relations: []relationModel{{key: schema.RelAgentOwner, subject: permitHuman}}},
		{key: permitHost, relations: []relationModel{
			{key: schema.RelHostAdmin, subject: permitHuman},
			{key: schema.RelHostMember, subject: permitHuman},
			{key: schema.RelHostAgent, subject: permitAgent},
		}},
		server,
		{
			key:       permitTool,
			actions:   []string{actionCall},
			relations: levelRelations("server_", permitServer),
			roles:     []roleModel{{key: roleCaller, permissions: []string{actionCall}, derivations: callerDerivations()}},
		},
	}
}

// assignment is one effective role: the agent (Permit user) holds role on the server instance.
type assignment struct {
	User, Role, Instance, Tenant string
}

// effectiveRoles derives the role assignments the relationships of one host imply, exactly as
// schema.zed decides use_<level>: an agent holds level L on a server when it was granted at
// least L there, its copy of its human's ceiling there is at least L, and
// the agent is an agent of a host the server belongs to. The role is the highest such L.
func effectiveRoles(rels []schema.Relationship) map[assignment]bool {
	type pair struct{ server, other string }
	granted := map[pair]schema.Level{}  // (server, agent) → highest grant
	ceilings := map[pair]schema.Level{} // (server, agent) → highest copy of its human's ceiling
	serverHosts := map[string][]string{}
	hostAgents := map[pair]bool{} // (host, agent)
	for _, r := range rels {
		switch r.Resource.Type {
		case schema.TypeServer:
			if l, ok := levelOf(r.Relation, "granted_"); ok && r.Subject.Object.Type == schema.TypeAgent {
				k := pair{r.Resource.ID, r.Subject.Object.ID}
				granted[k] = max(granted[k], l)
			}
			if l, ok := levelOf(r.Relation, "ceiling_"); ok && r.Subject.Object.Type == schema.TypeAgent {
				k := pair{r.Resource.ID, r.Subject.Object.ID}
				ceilings[k] = max(ceilings[k], l)
			}
			if r.Relation == schema.RelServerHost && r.Subject.Object.Type == schema.TypeHost {
				serverHosts[r.Resource.ID] = append(serverHosts[r.Resource.ID], r.Subject.Object.ID)
			}
		case schema.TypeHost:
			if r.Relation == schema.RelHostAgent && r.Subject.Object.Type == schema.TypeAgent {
				hostAgents[pair{r.Resource.ID, r.Subject.Object.ID}] = true
			}
		}
	}
	out := map[assignment]bool{}
	for k, grant := range granted {
		server, agent := k.server, k.other
		ceiling := ceilings[pair{server, agent}]
		inHost := false
		for _, h := range serverHosts[server] {
			inHost = inHost || hostAgents[pair{h, agent}]
		}
		level := schema.MinLevel(grant, ceiling)
		if !inHost || !level.Valid() {
			continue
		}
		srv := schema.ObjectRef{Type: schema.TypeServer, ID: server}
		inst, _ := instance(srv)
		out[assignment{
			User:     userKey(schema.ObjectRef{Type: schema.TypeAgent, ID: agent}),
			Role:     level.String(),
			Instance: inst,
			Tenant:   hostOf(srv),
		}] = true
	}
	return out
}
