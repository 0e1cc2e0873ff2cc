package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/store"
)

// Outcome is what reviewing one listed tool against the stored one found.
type Outcome int

const (
	// Unchanged: nothing to write.
	Unchanged Outcome = iota
	// Updated: the stored tool changes (level, metadata, a hash upgraded to v2, a flag lifted
	// because the upstream went back to the approved definition), nothing to review.
	Updated
	// Added: a tool the store does not have; it awaits review (disabled) unless the host
	// auto-enables new tools on sync.
	Added
	// Changed: the definition differs from the approved one; the tool is flagged and disabled
	// until an admin approves the new definition.
	Changed
)

// Review is the outcome of reviewing one tool and the stored tool to write.
type Review struct {
	Outcome Outcome
	Tool    store.Tool // the tool to store (Unchanged: the stored one)
	Old     store.Tool // the stored tool (zero for Added)
	Diff    string     // Changed: what changed since the definition trustgate last recorded
}

// ReviewTool compares the tool the upstream lists now (ft) with the stored tool of that name
// (old; found false when there is none). autoEnable enables a new tool at once (the host's
// setting, applied by an admin's sync only). Server sync and the tools/list check of the proxy
// both decide with this function.
func ReviewTool(host, server string, old store.Tool, found bool, ft discovery.Tool, autoEnable bool) Review {
	if !found {
		t := StoredTool(host, server, ft, autoEnable)
		if !autoEnable {
			t.ApprovedHash = "" // a new tool is reviewed before it is enabled
		}
		// One whose definition may carry hidden instructions is flagged, even on a host that
		// enables new tools at once (screen.go).
		return Review{Outcome: Added, Tool: screened(t)}
	}
	next := StoredTool(host, server, ft, old.Enabled)
	next.ApprovedHash, next.Flagged, next.FlagReason = old.ApprovedHash, old.Flagged, old.FlagReason
	approved := old.ApprovedHash != "" && ft.Matches(old.ApprovedHash)
	if old.LevelOverridden {
		next.Level, next.LevelOverridden = old.Level, true
	} else if !old.Flagged && approved {
		next.Level = max(next.Level, old.Level) // never lowered by a sync of an unchanged tool
	}
	changed := old.ApprovedHash != "" && !approved
	switch {
	case changed && old.Flagged && ft.Matches(old.DefinitionHash):
		// Already flagged with this very definition: nothing new to review.
		next.Enabled, next.DefinitionHash = false, old.DefinitionHash
	case changed:
		next.Enabled, next.Flagged = false, true
		diff := Diff(old, next)
		next.FlagReason = "changed upstream since it was approved (" + diff + "); review and approve it again"
		if findings := Screen(next); len(findings) > 0 {
			next.FlagReason += "; " + screenReason(findings)
		}
		return Review{Outcome: Changed, Tool: next, Old: old, Diff: diff}
	case approved:
		if old.Flagged {
			next.Flagged, next.FlagReason = false, "" // changed back to what was approved
		}
		// An approval recorded with a v1 hash now covers the whole definition (v2).
		next.ApprovedHash = ft.Hash
	case old.ApprovedHash == "":
		// Awaiting its first review: flagged while its definition may carry hidden
		// instructions (screen.go), the flag lifted when it no longer does.
		if findings := Screen(next); len(findings) > 0 {
			next.Enabled, next.Flagged, next.FlagReason = false, true, screenReason(findings)
		} else if old.Flagged {
			next.Flagged, next.FlagReason = false, ""
		}
	}
	if next.Title == old.Title && next.Description == old.Description && next.InputSchema == old.InputSchema &&
		next.OutputSchema == old.OutputSchema && next.Annotations == old.Annotations && next.Level == old.Level && next.DefinitionHash == old.DefinitionHash &&
		next.ApprovedHash == old.ApprovedHash && next.Flagged == old.Flagged && next.Enabled == old.Enabled {
		return Review{Outcome: Unchanged, Tool: old, Old: old}
	}
	return Review{Outcome: Updated, Tool: next, Old: old}
}

// Source says who reviewed: an admin's sync or the proxy passing a tools/list answer on.
type Source struct {
	Name  string // "sync" or "tools_list" (the metric's source label)
	Actor string // the audit entry's actor
	// Detail is added to the audit entry's reason (for example the agent whose list showed it).
	Detail    string
	RequestID string
}

// ApplyReview writes r in one transaction: one code path for server sync and the proxy's
// tools/list check, so that a change is flagged the same way, and once, whoever sees it first.
// Added and Changed are conditional writes (AddTool, FlagTool): of reviewers seeing the same
// change at once, on any replica, exactly one writes it, and that one records an audit entry
// (tool.add or tool.flag, with the diff) and counts the metric. wrote reports whether this call
// wrote.
func (c *Catalog) ApplyReview(ctx context.Context, r Review, src Source) (wrote bool, err error) {
	err = c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		var err error
		wrote, err = applyReview(ctx, tx, r)
		return err
	})
	if err != nil || !wrote {
		return false, err
	}
	c.recordReview(ctx, r, src)
	return true, nil
}

// applyReview writes r in tx; wrote reports whether it wrote.
func applyReview(ctx context.Context, tx store.Tx, r Review) (wrote bool, err error) {
	t := r.Tool
	switch r.Outcome {
	case Unchanged:
		return false, nil
	case Updated:
		if _, err := tx.PutTool(ctx, t); err != nil {
			return false, err
		}
		return true, nil
	case Added:
		return tx.AddTool(ctx, t)
	case Changed:
		return tx.FlagTool(ctx, t, t.ApprovedHash)
	}
	return false, fmt.Errorf("review of tool %q: unknown outcome %d", t.Name, r.Outcome)
}

// recordReview audits and counts a review that was written (Added and Changed only), once its
// transaction committed.
func (c *Catalog) recordReview(ctx context.Context, r Review, src Source) {
	t := r.Tool
	switch r.Outcome {
	case Added:
		if t.Flagged {
			c.record(ctx, t, src, "tool.add", "screened", "new tool listed upstream, flagged: "+t.FlagReason, "", definitionText(t))
			return
		}
		c.record(ctx, t, src, "tool.add", "new", "new tool listed upstream; it stays hidden until an admin reviews (enables) it", "", definitionText(t))
	case Changed:
		c.record(ctx, t, src, "tool.flag", "changed", "definition changed upstream since it was approved: "+r.Diff, definitionText(r.Old), definitionText(t))
	}
}

func (c *Catalog) record(ctx context.Context, t store.Tool, src Source, action, kind, reason, oldValue, newValue string) {
	c.metrics.DefinitionChange(ctx, t.Host, t.Server, kind, src.Name)
	log := c.log
	log.Warn("tool definition flagged for review", "host", t.Host, "server", t.Server, "tool", t.Name, "kind", kind, "source", src.Name)
	if c.audit == nil {
		return
	}
	if src.Detail != "" {
		reason += " (" + src.Detail + ")"
	}
	e := audit.Entry{
		Host: t.Host, Time: time.Now(), Decision: audit.Admin, Actor: src.Actor, Action: action,
		Object: "servers/" + t.Server + "/tools/" + t.Name, Server: t.Server, Tool: t.Name,
		Reason: reason, OldValue: oldValue, NewValue: newValue, RequestID: src.RequestID,
	}
	if err := c.audit.Append(context.WithoutCancel(ctx), e); err != nil {
		log.Error("audit entry of a flagged tool lost", "host", t.Host, "server", t.Server, "tool", t.Name, "err", err)
	}
}

// definitionText is a tool's stored definition as one line of JSON, for audit entries.
func definitionText(t store.Tool) string {
	def := map[string]any{"name": t.Name, "description": t.Description}
	if t.Title != "" {
		def["title"] = t.Title
	}
	if t.InputSchema != "" {
		def["inputSchema"] = json.RawMessage(t.InputSchema)
	}
	if t.OutputSchema != "" {
		def["outputSchema"] = json.RawMessage(t.OutputSchema)
	}
	if t.Annotations != "" {
		def["annotations"] = json.RawMessage(t.Annotations)
	}
	b, err := json.Marshal(def)
	if err != nil {
		return ""
	}
	return string(b)
}

// maxDiffItems bounds how many differences Diff lists; maxDiffValue how long a quoted value is.
const (
	maxDiffItems = 12
	maxDiffValue = 160
)

// Diff says what differs between two stored definitions of a tool, field by field, with
// JSON schemas compared member by member: `description: "a" → "b"; input schema: added
// properties.note`. A tool stored before output schemas were kept has none, so a change there
// may read as an added output schema; a change of nothing stored reads "another field".
func Diff(old, now store.Tool) string {
	var parts []string
	if old.Title != now.Title {
		parts = append(parts, "title: "+quote(old.Title)+" → "+quote(now.Title))
	}
	if old.Description != now.Description {
		parts = append(parts, "description: "+quote(old.Description)+" → "+quote(now.Description))
	}
	if d := jsonDiff(old.InputSchema, now.InputSchema); d != "" {
		parts = append(parts, "input schema: "+d)
	}
	if d := jsonDiff(old.OutputSchema, now.OutputSchema); d != "" {
		parts = append(parts, "output schema: "+d)
	}
	if d := jsonDiff(old.Annotations, now.Annotations); d != "" {
		parts = append(parts, "annotations: "+d)
	}
	if len(parts) == 0 {
		return "another field"
	}
	return strings.Join(parts, "; ")
}

func quote(s string) string {
	if r := []rune(s); len(r) > maxDiffValue {
		s = string(r[:maxDiffValue]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// jsonDiff lists the paths added, removed and changed from a to b ("" when they mean the same).
func jsonDiff(a, b string) string {
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	if errA != nil || errB != nil {
		if a == b {
			return ""
		}
		return "changed"
	}
	var out []string
	walkDiff("", va, vb, &out)
	if len(out) > maxDiffItems {
		out = append(out[:maxDiffItems], fmt.Sprintf("and %d more", len(out)-maxDiffItems))
	}
	return strings.Join(out, ", ")
}

func decodeJSON(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func walkDiff(path string, a, b any, out *[]string) {
	if len(*out) > maxDiffItems {
		return
	}
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if okA && okB {
		keys := make([]string, 0, len(ma)+len(mb))
		for k := range ma {
			keys = append(keys, k)
		}
		for k := range mb {
			if _, ok := ma[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			va, inA := ma[k]
			vb, inB := mb[k]
			switch {
			case !inA:
				*out = append(*out, "added "+p+" = "+compact(vb))
			case !inB:
				*out = append(*out, "removed "+p)
			default:
				walkDiff(p, va, vb, out)
			}
		}
		return
	}
	if compact(a) != compact(b) {
		if path == "" {
			path = "(whole value)"
		}
		*out = append(*out, "changed "+path+": "+compact(a)+" → "+compact(b))
	}
}

// compact is v as short JSON (sorted keys), cut at maxDiffValue characters.
func compact(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if r := []rune(s); len(r) > maxDiffValue {
		s = string(r[:maxDiffValue]) + "…"
	}
	return s
}
