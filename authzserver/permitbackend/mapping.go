package permitbackend

import (
	"fmt"
	"strings"

	"github.com/trustgate/trustgate/schema"
)

// Permit resource types. trustgate's `user` (a human) is Permit's `human`: in Permit a "user"
// is whoever a check is made for, and that is an agent here.
const (
	permitHuman  = "human"
	permitAgent  = "agent"
	permitHost   = "host"
	permitServer = schema.TypeServer // mcp_server
	permitTool   = schema.TypeTool   // tool

	// actionCall is the tool's action; the server's actions are use_low, use_medium, use_high.
	actionCall = schema.PermToolCall
	// roleCaller is the tool role derived from a level role on the tool's server.
	roleCaller = "caller"
)

var schemaToPermitType = map[string]string{
	schema.TypeUser:   permitHuman,
	schema.TypeAgent:  permitAgent,
	schema.TypeHost:   permitHost,
	schema.TypeServer: permitServer,
	schema.TypeTool:   permitTool,
}

var permitToSchemaType = map[string]string{
	permitHuman:  schema.TypeUser,
	permitAgent:  schema.TypeAgent,
	permitHost:   schema.TypeHost,
	permitServer: schema.TypeServer,
	permitTool:   schema.TypeTool,
}

// permitKey is the Permit key of a trustgate object id: '/' (which Permit keys, being URL
// path segments, avoid) becomes '~', which trustgate ids never contain (tool names are encoded).
func permitKey(id string) string { return strings.ReplaceAll(id, "/", "~") }

func schemaID(key string) string { return strings.ReplaceAll(key, "~", "/") }

// instance is the "type:key" form Permit names a resource instance by.
func instance(o schema.ObjectRef) (string, error) {
	t, ok := schemaToPermitType[o.Type]
	if !ok {
		return "", fmt.Errorf("object type %q has no Permit resource", o.Type)
	}
	return t + ":" + permitKey(o.ID), nil
}

func parseInstance(s string) (schema.ObjectRef, bool) {
	t, key, ok := strings.Cut(s, ":")
	if !ok || key == "" {
		return schema.ObjectRef{}, false
	}
	st, ok := permitToSchemaType[t]
	if !ok {
		return schema.ObjectRef{}, false
	}
	return schema.ObjectRef{Type: st, ID: schemaID(key)}, true
}

// hostOf is the host (Permit tenant) an object belongs to: a host's own id, else the part of
// the id before the first '/'.
func hostOf(o schema.ObjectRef) string {
	if o.Type == schema.TypeHost {
		return o.ID
	}
	h, _, _ := strings.Cut(o.ID, "/")
	return h
}

// userKey is the Permit user an agent is checked as.
func userKey(agent schema.ObjectRef) string { return permitKey(agent.ID) }

// tuple is one Permit relationship tuple (subject and object as "type:key").
type tuple struct {
	Subject, Relation, Object, Tenant string
}

// toTuple maps a trustgate relationship to its Permit tuple. The schema's relationships have no
// subject relation.
func toTuple(r schema.Relationship) (tuple, error) {
	if r.Subject.Relation != "" {
		return tuple{}, fmt.Errorf("relationship %s: subject relation %q has no Permit form", r, r.Subject.Relation)
	}
	subj, err := instance(r.Subject.Object)
	if err != nil {
		return tuple{}, fmt.Errorf("relationship %s: %w", r, err)
	}
	obj, err := instance(r.Resource)
	if err != nil {
		return tuple{}, fmt.Errorf("relationship %s: %w", r, err)
	}
	return tuple{Subject: subj, Relation: r.Relation, Object: obj, Tenant: hostOf(r.Resource)}, nil
}

// fromTuple reverses toTuple; ok is false for a tuple of a resource type trustgate does not own.
func fromTuple(t tuple) (schema.Relationship, bool) {
	obj, ok := parseInstance(t.Object)
	if !ok {
		return schema.Relationship{}, false
	}
	subj, ok := parseInstance(t.Subject)
	if !ok {
		return schema.Relationship{}, false
	}
	return schema.Relationship{Resource: obj, Relation: t.Relation, Subject: schema.SubjectRef{Object: subj}}, true
}

// levelOf reads the level from a relation named prefix+level (granted_medium, server_high).
func levelOf(relation, prefix string) (schema.Level, bool) {
	rest, ok := strings.CutPrefix(relation, prefix)
	if !ok {
		return 0, false
	}
	l, err := schema.ParseLevel(rest)
	if err != nil || rest != l.String() {
		return 0, false
	}
	return l, true
}
