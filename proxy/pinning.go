package proxy

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/store"
)

// Approved tool definitions hold at run time: every tools/list answer the proxy passes on is
// compared, tool by tool, with the definitions an admin approved.
//
//   - A tool whose definition hash (discovery v2; a v1 approval for the fields it covers) differs
//     from its approved hash is withheld from the list and flagged, exactly as server sync flags
//     it (catalog.ReviewTool and Catalog.ApplyReview: a conditional store write, so that
//     concurrent lists on any replica flag it once, a tool.flag audit entry with the diff, the
//     definition-change metric). A flagged tool is disabled, so its calls are refused until an
//     admin approves the new definition.
//   - A tool the store does not know is withheld and recorded as a new tool awaiting review
//     (disabled), as sync records it; the host's auto-enable setting applies to an admin's sync
//     only.
//   - A tool recorded but never approved (awaiting its first review) has nothing to compare with:
//     it is disabled, so it is not listed either.
//
// Cost on the answer path: one hash per tool entry, memoised per identical entry bytes (an
// unchanged upstream costs one map lookup per tool), against the approved hashes read from the
// control-plane cache. The store writes of a review happen off the answer path; the answer
// waits for them at most reviewWait, so that a call made right after the list is refused. When
// the store cannot be written the tool is still withheld (fail closed), and the next list tries
// again.
//
// Known gap: a tools/call made before any tools/list has seen the changed definition is decided
// on the stored (approved) tool and forwarded; the proxy does not read the upstream's current
// definition on the call path.

const (
	// reviewWait bounds how long an answer waits for the flagging of the tools it withholds.
	reviewWait = 3 * time.Second
	// reviewTimeout bounds one review's store writes and SpiceDB sync (off the answer path).
	reviewTimeout = 30 * time.Second
	// Bounds of the memo of entry hashes: entries above maxMemoEntry bytes are not kept, and the
	// memo starts over above maxMemoBytes of kept entries.
	maxMemoEntry = 64 << 10
	maxMemoBytes = 8 << 20
)

// Syncer applies the store's pending relationship changes to the authorization backend
// (authzserver.Writer).
type Syncer interface {
	Sync(ctx context.Context) (authzserver.Revision, error)
}

// defHash is what the memo keeps of one tool entry: its definition hashes, or that it cannot
// be read as a tool.
type defHash struct {
	tool discovery.Tool // only Hash and LegacyHash are set
	ok   bool
}

// defMemo memoises the definition hashes of tool entries by their exact bytes.
type defMemo struct {
	mu    sync.Mutex
	m     map[string]defHash
	bytes int
}

func newDefMemo() *defMemo { return &defMemo{m: map[string]defHash{}} }

// hash is the definition hash of one raw tool entry (ok false: not a tool definition).
func (d *defMemo) hash(raw json.RawMessage) defHash {
	d.mu.Lock()
	h, found := d.m[string(raw)]
	d.mu.Unlock()
	if found {
		return h
	}
	t, err := discovery.ParseTool(raw)
	h = defHash{tool: discovery.Tool{Hash: t.Hash, LegacyHash: t.LegacyHash}, ok: err == nil}
	if len(raw) <= maxMemoEntry {
		d.mu.Lock()
		if d.bytes+len(raw) > maxMemoBytes {
			clear(d.m)
			d.bytes = 0
		}
		if _, dup := d.m[string(raw)]; !dup {
			d.m[string(raw)] = h
			d.bytes += len(raw)
		}
		d.mu.Unlock()
	}
	return h
}

// pinCheck is the per-tool decision of one tools/list answer: the agent's visibility and the
// approved definitions.
type pinCheck struct {
	defs    *defMemo
	tools   map[string]store.Tool // the stored tools of the server, by name
	visible func(name string) bool
	// pending are the entries withheld for review, not yet reviewed.
	pending []pendingReview
}

type pendingReview struct {
	name  string
	raw   json.RawMessage
	old   store.Tool
	found bool
}

// keep decides one entry: it is listed only when its definition is the approved one (or the
// tool awaits its first review and is visible anyway) and the agent may see it. An entry that
// needs a review is remembered for settle.
func (c *pinCheck) keep(name string, raw json.RawMessage) bool {
	old, found := c.tools[name]
	if found && old.ApprovedHash == "" {
		return c.visible(name) // awaiting its first review: disabled, nothing approved to compare
	}
	if found {
		h := c.defs.hash(raw)
		if !h.ok {
			return false // not a definition a client could read as one: never listed
		}
		if h.tool.Matches(old.ApprovedHash) {
			return c.visible(name)
		}
		if old.Flagged && h.tool.Matches(old.DefinitionHash) {
			return false // already flagged with this very definition
		}
	}
	c.pending = append(c.pending, pendingReview{name: name, raw: raw, old: old, found: found})
	return false
}

// reviewKey identifies one review in flight in this process.
type reviewKey struct{ host, server, name, hash string }

// settle reviews the entries the last answer withheld (flag a changed tool, record a new one),
// waiting at most reviewWait. Reviews of the same definition in flight are shared.
func (p *Proxy) settle(fw *forward, c *pinCheck) {
	if len(c.pending) == 0 {
		return
	}
	pending := c.pending
	c.pending = nil
	if p.cfg.Reviewer == nil {
		return // withheld, not recorded (a Proxy built without a reviewer, in tests)
	}
	var waits []<-chan struct{}
	for _, pr := range pending {
		ft, err := discovery.ParseTool(pr.raw)
		if err != nil {
			continue
		}
		review := catalog.ReviewTool(fw.host, fw.server, pr.old, pr.found, ft, false)
		if review.Outcome != catalog.Added && review.Outcome != catalog.Changed {
			continue
		}
		k := reviewKey{fw.host, fw.server, pr.name, ft.Hash}
		done := make(chan struct{})
		if other, busy := p.reviewing.LoadOrStore(k, (<-chan struct{})(done)); busy {
			waits = append(waits, other.(<-chan struct{}))
			continue
		}
		waits = append(waits, done)
		src := catalog.Source{Name: "tools_list", Actor: "trustgate",
			Detail: "seen in a tools/list answer to agent " + fw.agentID, RequestID: fw.entry.RequestID}
		go p.review(k, done, review, src)
	}
	timer := time.NewTimer(reviewWait)
	defer timer.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-timer.C:
			p.log.Warn("proxy: flagging a tool took longer than the answer waits; the tool is withheld meanwhile",
				"host", fw.host, "server", fw.server, "wait", reviewWait)
			return
		}
	}
}

// review writes one review and applies its relationship change to the authorization backend.
func (p *Proxy) review(k reviewKey, done chan struct{}, r catalog.Review, src catalog.Source) {
	defer func() {
		p.reviewing.Delete(k)
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), reviewTimeout)
	defer cancel()
	wrote, err := p.cfg.Reviewer.ApplyReview(ctx, r, src)
	if err != nil {
		p.log.Error("proxy: could not record a tool changed or added upstream; it stays withheld from tools/list",
			"host", k.host, "server", k.server, "tool", k.name, "err", err)
		return
	}
	if wrote && p.cfg.Syncer != nil {
		if _, err := p.cfg.Syncer.Sync(ctx); err != nil {
			p.log.Error("proxy: a flagged tool is recorded but not yet enforced; it will be applied when the authorization backend answers",
				"host", k.host, "server", k.server, "tool", k.name, "err", err)
		}
	}
}
