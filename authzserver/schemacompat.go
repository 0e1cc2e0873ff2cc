package authzserver

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	core "github.com/authzed/spicedb/pkg/proto/core/v1"
)

// SchemaRemovals lists what the SpiceDB schema next takes away from the schema prev, sorted:
// each is something a gateway serving prev may still write or check while it shares SpiceDB with
// one serving next (a rolling upgrade), so writing next would refuse its writes or its checks.
// An entry is one of
//
//	definition T                    an object type gone
//	relation T#r                    a relation gone (or turned into a permission)
//	permission T#p                  a permission gone (or turned into a relation)
//	subject T#r@S                   a relation that no longer allows subjects S (S#rel, S:*,
//	                                S with caveat C, S with expiration, as written in the schema)
//	caveat C                        a caveat gone
//	caveat C(name type)             a caveat's parameter gone or of another type
//
// Everything next adds, and a permission's changed expression, is not a removal.
func SchemaRemovals(prev, next string) ([]string, error) {
	before, err := compileSchema(prev)
	if err != nil {
		return nil, fmt.Errorf("the earlier schema: %w", err)
	}
	after, err := compileSchema(next)
	if err != nil {
		return nil, fmt.Errorf("the new schema: %w", err)
	}
	nextDefs := map[string]*core.NamespaceDefinition{}
	for _, def := range after.ObjectDefinitions {
		nextDefs[def.GetName()] = def
	}
	var removed []string
	for _, def := range before.ObjectDefinitions {
		nextDef, ok := nextDefs[def.GetName()]
		if !ok {
			removed = append(removed, "definition "+def.GetName())
			continue
		}
		nextRels := map[string]*core.Relation{}
		for _, r := range nextDef.GetRelation() {
			nextRels[r.GetName()] = r
		}
		for _, r := range def.GetRelation() {
			name := def.GetName() + "#" + r.GetName()
			nextRel, ok := nextRels[r.GetName()]
			if isPermission(r) {
				if !ok || !isPermission(nextRel) {
					removed = append(removed, "permission "+name)
				}
				continue
			}
			if !ok || isPermission(nextRel) {
				removed = append(removed, "relation "+name)
				continue
			}
			allowed := allowedSubjects(nextRel)
			for _, s := range allowedSubjects(r) {
				if !slices.Contains(allowed, s) {
					removed = append(removed, "subject "+name+"@"+s)
				}
			}
		}
	}
	nextCaveats := map[string]*core.CaveatDefinition{}
	for _, c := range after.CaveatDefinitions {
		nextCaveats[c.GetName()] = c
	}
	for _, c := range before.CaveatDefinitions {
		nextCaveat, ok := nextCaveats[c.GetName()]
		if !ok {
			removed = append(removed, "caveat "+c.GetName())
			continue
		}
		nextParams := nextCaveat.GetParameterTypes()
		for param, typ := range c.GetParameterTypes() {
			if nextTyp, ok := nextParams[param]; !ok || caveatType(nextTyp) != caveatType(typ) {
				removed = append(removed, fmt.Sprintf("caveat %s(%s %s)", c.GetName(), param, caveatType(typ)))
			}
		}
	}
	sort.Strings(removed)
	return removed, nil
}

func isPermission(r *core.Relation) bool { return r.GetUsersetRewrite() != nil }

// allowedSubjects renders each subject type a relation allows the way the schema writes it.
func allowedSubjects(r *core.Relation) []string {
	var out []string
	for _, a := range r.GetTypeInformation().GetAllowedDirectRelations() {
		s := a.GetNamespace()
		switch {
		case a.GetPublicWildcard() != nil:
			s += ":*"
		case a.GetRelation() != "" && a.GetRelation() != "...":
			s += "#" + a.GetRelation()
		}
		var traits []string
		if c := a.GetRequiredCaveat().GetCaveatName(); c != "" {
			traits = append(traits, c)
		}
		if a.GetRequiredExpiration() != nil {
			traits = append(traits, "expiration")
		}
		if len(traits) > 0 {
			s += " with " + strings.Join(traits, " and ")
		}
		out = append(out, s)
	}
	return out
}

func caveatType(t *core.CaveatTypeReference) string {
	if len(t.GetChildTypes()) == 0 {
		return t.GetTypeName()
	}
	children := make([]string, 0, len(t.GetChildTypes()))
	for _, c := range t.GetChildTypes() {
		children = append(children, caveatType(c))
	}
	return t.GetTypeName() + "<" + strings.Join(children, ", ") + ">"
}
