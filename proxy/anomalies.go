package proxy

import (
	"context"
	"slices"
	"time"

	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/webhook"
)

// Anomaly flags (package anomaly): after the decision of a tools/call, the handler asks the
// detector whether the call is new for the agent. The flags are in the call's audit entry (its
// flags field), counted in the telemetry, posted to the host's webhook and, per the host's policy,
// suspend the agent (its kill switch) — they never decide the call itself.

// Suspender suspends an agent as its kill switch does (the gateway: store, relationships and an
// audit entry naming the policy).
type Suspender interface {
	SuspendAgent(ctx context.Context, host, agentID, reason string) error
}

// suspendTimeout bounds an automatic suspension.
const suspendTimeout = 5 * time.Second

// flagCall returns the anomaly flags of the tools/call of e (denied: refused by policy) and
// sets them as e's flags.
func (p *Proxy) flagCall(ctx context.Context, e *audit.Entry, m *message, denied bool) []anomaly.Flag {
	if p.cfg.Anomalies == nil || m == nil || !m.toolCall || e.AgentID == "" {
		return nil
	}
	h, err := p.cfg.Store.GetHost(ctx, e.Host)
	if err != nil || len(h.Settings.Anomaly.Flags) == 0 {
		return nil
	}
	flags := p.cfg.Anomalies.Detect(ctx, h.Settings.Anomaly, anomaly.Call{Host: e.Host, UserID: e.UserID, AgentID: e.AgentID,
		Server: e.Server, Tool: m.tool, Denied: denied, Time: time.Now()})
	if len(flags) == 0 {
		return nil
	}
	e.Flags = make([]string, len(flags))
	for i, f := range flags {
		e.Flags[i] = string(f)
	}
	return flags
}

// actOnFlags counts the flags, suspends the agent when the host's policy says so, and posts to
// the host's webhook; after the call's audit entry is written.
func (p *Proxy) actOnFlags(ctx context.Context, e audit.Entry, flags []anomaly.Flag) {
	if len(flags) == 0 {
		return
	}
	h, err := p.cfg.Store.GetHost(ctx, e.Host)
	if err != nil {
		return
	}
	policy := h.Settings.Anomaly
	notify, suspend := false, ""
	for _, f := range flags {
		p.cfg.Telemetry.Anomalies().Flag(e.Host, string(f))
		notify = notify || slices.Contains(policy.Notify, string(f))
		if suspend == "" && slices.Contains(policy.Suspend, string(f)) {
			suspend = string(f)
		}
	}
	suspended := false
	if suspend != "" && p.cfg.Suspender != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), suspendTimeout)
		err := p.cfg.Suspender.SuspendAgent(sctx, e.Host, e.AgentID, "anomaly flag "+suspend)
		cancel()
		if err != nil {
			p.log.Error("anomaly policy could not suspend the agent", "host", e.Host, "agent", e.AgentID, "flag", suspend, "err", err)
		} else {
			suspended = true
			p.log.Warn("agent suspended by the anomaly policy", "host", e.Host, "agent", e.AgentID, "flag", suspend)
		}
	}
	if notify {
		c := anomaly.Call{Host: e.Host, AgentID: e.AgentID, Server: e.Server, Tool: e.Tool}
		p.cfg.Webhooks.Notify(e.Host, webhook.Message{Text: anomaly.Message(c, flags, suspended)})
	}
}
