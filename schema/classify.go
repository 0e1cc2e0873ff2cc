package schema

import "strings"

// Keyword lists of the name rule. A tool name is matched case-insensitively as a substring, so
// the rule errs towards the higher level ("undelete" is high); an admin overrides a tool's level
// where the rule is too strict.
var (
	HighKeywords = []string{
		"delete", "remove", "destroy", "drop", "purge", "erase", "truncate", "terminate", "kill", "revoke",
	}
	MediumKeywords = []string{
		"create", "write", "update", "set", "modify", "edit", "put", "post", "insert", "add", "send",
		"execute", "run", "invoke", "submit", "push", "publish", "deploy", "apply", "patch",
	}
)

// Hints are the MCP tool annotations that bear on trust. Nil means the server did not say.
type Hints struct {
	ReadOnly    *bool // readOnlyHint
	Destructive *bool // destructiveHint
}

// ClassifyName applies the name rule: high if the name contains a destructive keyword, else
// medium if it contains a writing keyword, else low.
func ClassifyName(name string) Level {
	n := strings.ToLower(name)
	for _, k := range HighKeywords {
		if strings.Contains(n, k) {
			return High
		}
	}
	for _, k := range MediumKeywords {
		if strings.Contains(n, k) {
			return Medium
		}
	}
	return Low
}

// Classify applies the name rule, then raises (never lowers) the level from the tool's
// annotations: destructiveHint true makes it high; a tool that does not declare itself
// read-only is at least medium. Annotations are hints from the server, so they may only make a
// tool harder to call.
func Classify(name string, hints Hints) Level {
	level := ClassifyName(name)
	if hints.Destructive != nil && *hints.Destructive {
		return High
	}
	if hints.ReadOnly != nil && !*hints.ReadOnly && level < Medium {
		level = Medium
	}
	return level
}
