package authzserver

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"

	"github.com/trustgate/trustgate/schema"
)

// requiredRelations are the relations and permissions trustgate writes and checks. A custom
// schema may add definitions and relations, but must keep all of these.
var requiredRelations = map[string][]string{
	schema.TypeUser:   {schema.RelUserAgent},
	schema.TypeAgent:  {schema.RelAgentOwner},
	schema.TypeHost:   {schema.RelHostAdmin, schema.RelHostMember, schema.RelHostAgent},
	schema.TypeServer: {schema.RelServerHost, "ceiling_low", "ceiling_medium", "ceiling_high", "granted_low", "granted_medium", "granted_high", "use_low", "use_medium", "use_high"},
	schema.TypeTool:   {"server_low", "server_medium", "server_high", schema.PermToolCall},
}

// ErrInvalidSchema marks a schema that does not compile or lacks what trustgate needs.
var ErrInvalidSchema = errors.New("invalid SpiceDB schema")

// ValidateSchema compiles the schema text and checks it defines everything trustgate writes and
// checks. Errors name the line and column of the fault.
func ValidateSchema(text string) error {
	compiled, err := compileSchema(text)
	if err != nil {
		return err
	}
	return checkDefinitions(compiled)
}

// CheckRequiredDefinitions is ValidateSchema for a schema read back from SpiceDB.
func CheckRequiredDefinitions(text string) error {
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("%w: SpiceDB holds no schema", ErrInvalidSchema)
	}
	return ValidateSchema(text)
}

func compileSchema(text string) (*compiler.CompiledSchema, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: text}, compiler.AllowUnprefixedObjectType())
	if err == nil {
		return compiled, nil
	}
	var withContext compiler.WithContextError
	if errors.As(err, &withContext) {
		line, col, posErr := withContext.SourceRange.Start().LineAndColumn()
		if posErr == nil {
			return nil, fmt.Errorf("%w: line %d, column %d: %s", ErrInvalidSchema, line+1, col+1, withContext.BaseMessage)
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
}

func checkDefinitions(compiled *compiler.CompiledSchema) error {
	defined := map[string][]string{}
	for _, def := range compiled.ObjectDefinitions {
		for _, r := range def.GetRelation() {
			defined[def.GetName()] = append(defined[def.GetName()], r.GetName())
		}
		if _, ok := defined[def.GetName()]; !ok {
			defined[def.GetName()] = nil
		}
	}
	var missing []string
	for _, typ := range schema.ObjectTypes {
		rels, ok := defined[typ]
		if !ok {
			missing = append(missing, "definition "+typ)
			continue
		}
		for _, want := range requiredRelations[typ] {
			if !slices.Contains(rels, want) {
				missing = append(missing, typ+"#"+want)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrInvalidSchema, strings.Join(missing, ", "))
	}
	// trustgate writes each consenting agent's copy of its human's ceiling (schema.Ceiling).
	for _, l := range schema.Levels {
		if relation := "ceiling_" + l.String(); !allowsSubject(compiled, schema.TypeServer, relation, schema.TypeAgent, "") {
			return fmt.Errorf("%w: %s#%s must allow subjects of type %s (each agent carries its human's ceiling; a schema of an earlier version allowed user#agent)",
				ErrInvalidSchema, schema.TypeServer, relation, schema.TypeAgent)
		}
	}
	return nil
}

// allowsSubject reports whether the compiled schema's relation of resourceType allows subjects
// of subjectType (with subjectRelation, or directly when it is empty).
func allowsSubject(compiled *compiler.CompiledSchema, resourceType, relation, subjectType, subjectRelation string) bool {
	if subjectRelation == "" {
		subjectRelation = "..."
	}
	for _, def := range compiled.ObjectDefinitions {
		if def.GetName() != resourceType {
			continue
		}
		for _, r := range def.GetRelation() {
			if r.GetName() != relation {
				continue
			}
			for _, allowed := range r.GetTypeInformation().GetAllowedDirectRelations() {
				if allowed.GetNamespace() == subjectType && allowed.GetRelation() == subjectRelation {
					return true
				}
			}
		}
	}
	return false
}
