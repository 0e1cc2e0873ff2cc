// Package schema holds trustgate's SpiceDB schema (schema.zed, embedded), the mapping from
// control-plane objects to relationship tuples, and the trust-level classifier for tools.
//
// It depends on nothing else in trustgate so that the store, the authorization backends and the
// tests all derive relationships the same way.
package schema

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// Text is the SpiceDB schema trustgate writes at start-up.
//
//go:embed schema.zed
var Text string

// Object types and relations of the schema. Code outside this package names them only through
// these constants.
const (
	TypeUser   = "user"
	TypeAgent  = "agent"
	TypeHost   = "host"
	TypeServer = "mcp_server"
	TypeTool   = "tool"

	RelUserAgent  = "agent"
	RelAgentOwner = "owner"
	RelHostAdmin  = "admin"
	RelHostMember = "member"
	RelHostAgent  = "agent"
	RelServerHost = "host"

	PermToolCall = "call"
)

// ObjectTypes lists every object type the schema defines, in a stable order.
var ObjectTypes = []string{TypeUser, TypeAgent, TypeHost, TypeServer, TypeTool}

// ObjectRef names one object.
type ObjectRef struct {
	Type string
	ID   string
}

func (o ObjectRef) String() string { return o.Type + ":" + o.ID }

// SubjectRef is an object, or a relation of an object (a userset) when Relation is set.
type SubjectRef struct {
	Object   ObjectRef
	Relation string
}

func (s SubjectRef) String() string {
	if s.Relation == "" {
		return s.Object.String()
	}
	return s.Object.String() + "#" + s.Relation
}

// Relationship is one tuple: resource#relation@subject, with an optional caveat.
type Relationship struct {
	Resource ObjectRef
	Relation string
	Subject  SubjectRef
	// Caveat names the relationship's caveat ("" for none); CaveatContext is its context as a
	// JSON object (ArgumentConditions.Encode for CaveatArguments).
	Caveat        string
	CaveatContext string
}

// String renders the tuple in zed's notation, caveat included
// (resource#relation@subject[caveat:{context}]).
func (r Relationship) String() string {
	if r.Caveat == "" {
		return r.Key()
	}
	return r.Key() + "[" + r.Caveat + ":" + r.CaveatContext + "]"
}

// Key is the relationship's identity, as SpiceDB's: the tuple without its caveat (writing the
// same tuple with another caveat replaces it).
func (r Relationship) Key() string {
	return r.Resource.String() + "#" + r.Relation + "@" + r.Subject.String()
}

// ParseRelationship reads a tuple in zed's notation
// (resource:id#relation@subject:id[#relation][[caveat:{context}]]).
func ParseRelationship(s string) (Relationship, error) {
	var caveat, caveatCtx string
	if i := strings.IndexByte(s, '['); i >= 0 {
		inner, ok := strings.CutSuffix(s[i+1:], "]")
		name, ctx, hasCtx := strings.Cut(inner, ":")
		if !ok || !hasCtx || name == "" || !json.Valid([]byte(ctx)) {
			return Relationship{}, fmt.Errorf("relationship %q: caveat is not [name:{context}]", s)
		}
		s, caveat, caveatCtx = s[:i], name, ctx
	}
	r, err := parseTuple(s)
	if err != nil {
		return Relationship{}, err
	}
	r.Caveat, r.CaveatContext = caveat, caveatCtx
	return r, nil
}

func parseTuple(s string) (Relationship, error) {
	res, subj, ok := strings.Cut(s, "@")
	if !ok {
		return Relationship{}, fmt.Errorf("relationship %q: missing '@'", s)
	}
	resObj, rel, ok := strings.Cut(res, "#")
	if !ok {
		return Relationship{}, fmt.Errorf("relationship %q: missing '#relation'", s)
	}
	r := Relationship{Relation: rel}
	var err error
	if r.Resource, err = parseObject(resObj); err != nil {
		return Relationship{}, fmt.Errorf("relationship %q: %w", s, err)
	}
	subjObj, subjRel, _ := strings.Cut(subj, "#")
	if r.Subject.Object, err = parseObject(subjObj); err != nil {
		return Relationship{}, fmt.Errorf("relationship %q: %w", s, err)
	}
	r.Subject.Relation = subjRel
	return r, nil
}

func parseObject(s string) (ObjectRef, error) {
	t, id, ok := strings.Cut(s, ":")
	if !ok || t == "" || id == "" {
		return ObjectRef{}, fmt.Errorf("object %q is not type:id", s)
	}
	return ObjectRef{Type: t, ID: id}, nil
}

// HostOf is the key of the host an object belongs to: a host's id is its key; every other
// object type of the schema (user, agent, mcp_server, tool) has an id that starts with its host
// key and a slash (see the constructors below). An id without a slash is taken whole, so the
// rule is the same for every caller: it only has to be consistent.
func HostOf(o ObjectRef) string {
	if o.Type == TypeHost {
		return o.ID
	}
	host, _, _ := strings.Cut(o.ID, "/")
	return host
}

// Hosts are the hosts of the relationship's resource and subject (the same one for every
// relationship trustgate writes).
func (r Relationship) Hosts() (resource, subject string) {
	return HostOf(r.Resource), HostOf(r.Subject.Object)
}

// Object constructors. Every id but a host's starts with the host key, so that ids never collide
// across tenants and `zed relationship read` output says whose object it is.

// Host is the object of a tenant.
func Host(hostKey string) ObjectRef { return ObjectRef{TypeHost, hostKey} }

// User is the object of a human.
func User(hostKey, userID string) ObjectRef { return ObjectRef{TypeUser, hostKey + "/" + userID} }

// Agent is the object of an agent (an OAuth client acting for one human).
func Agent(hostKey, agentID string) ObjectRef { return ObjectRef{TypeAgent, hostKey + "/" + agentID} }

// Server is the object of an MCP server.
func Server(hostKey, serverKey string) ObjectRef {
	return ObjectRef{TypeServer, hostKey + "/" + serverKey}
}

// Tool is the object of one tool of an MCP server. Tool names are free text, so they are encoded
// (see EncodeID).
func Tool(hostKey, serverKey, toolName string) ObjectRef {
	return ObjectRef{TypeTool, hostKey + "/" + serverKey + "/" + EncodeID(toolName)}
}

// Relationship constructors: the whole mapping from control-plane rows to tuples.

// HostMember: the human belongs to the host.
func HostMember(hostKey, userID string) Relationship {
	return rel(Host(hostKey), RelHostMember, User(hostKey, userID), "")
}

// HostAdmin: the human administers the host.
func HostAdmin(hostKey, userID string) Relationship {
	return rel(Host(hostKey), RelHostAdmin, User(hostKey, userID), "")
}

// AgentTuples are the three tuples that tie an agent to its human and its host.
func AgentTuples(hostKey, agentID, userID string) []Relationship {
	return []Relationship{
		rel(Agent(hostKey, agentID), RelAgentOwner, User(hostKey, userID), ""),
		rel(User(hostKey, userID), RelUserAgent, Agent(hostKey, agentID), ""),
		rel(Host(hostKey), RelHostAgent, Agent(hostKey, agentID), ""),
	}
}

// ServerHost: the MCP server belongs to the host.
func ServerHost(hostKey, serverKey string) Relationship {
	return rel(Server(hostKey, serverKey), RelServerHost, Host(hostKey), "")
}

// ToolLevel: the tool requires level on its server. Disabled tools have no tuple at all.
func ToolLevel(hostKey, serverKey, toolName string, level Level) Relationship {
	return rel(Tool(hostKey, serverKey, toolName), "server_"+level.String(), Server(hostKey, serverKey), "")
}

// ToolLevelWithConditions is ToolLevel caveated with the host's conditions on the tool's
// arguments (ToolLevel itself when there are none).
func ToolLevelWithConditions(hostKey, serverKey, toolName string, level Level, c ArgumentConditions) Relationship {
	r := ToolLevel(hostKey, serverKey, toolName, level)
	if !c.Empty() {
		r.Caveat, r.CaveatContext = CaveatArguments, c.Encode()
	}
	return r
}

// Ceiling: an admin allows the agent's human up to level on the server. The store writes one
// per agent with a consent on the server, carrying its human's ceiling, so that a check reads the
// agent's relationships instead of enumerating every human with a ceiling on the server.
func Ceiling(hostKey, serverKey, agentID string, level Level) Relationship {
	return rel(Server(hostKey, serverKey), "ceiling_"+level.String(), Agent(hostKey, agentID), "")
}

// Grant: the human consented to give the agent level on the server.
func Grant(hostKey, serverKey, agentID string, level Level) Relationship {
	return rel(Server(hostKey, serverKey), "granted_"+level.String(), Agent(hostKey, agentID), "")
}

func rel(resource ObjectRef, relation string, subject ObjectRef, subjectRelation string) Relationship {
	return Relationship{Resource: resource, Relation: relation, Subject: SubjectRef{Object: subject, Relation: subjectRelation}}
}

// EncodeID makes free text (a tool name) safe for a SpiceDB object id, which allows only
// [a-zA-Z0-9/_|\-=+]. Letters, digits, '_' and '-' stay as they are; every other byte becomes
// '=' and two upper-case hex digits, so the encoding is reversible and never produces '/'.
func EncodeID(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// DecodeID reverses EncodeID.
func DecodeID(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("id %q: truncated escape at %d", s, i)
		}
		var c byte
		if _, err := fmt.Sscanf(s[i+1:i+3], "%02X", &c); err != nil {
			return "", fmt.Errorf("id %q: bad escape at %d", s, i)
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}
