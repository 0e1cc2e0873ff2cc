package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/store"
)

// agentSuspender is the kill switch the proxy pulls when a host's anomaly policy says so: the
// agent is disabled and everything it holds revoked in the store (as `admin agent kill`), the
// relationships applied at once, and an audit entry names the policy as the actor.
type agentSuspender struct {
	store  store.Store
	writer *authzserver.Writer
	audit  audit.Appender
}

func (s agentSuspender) SuspendAgent(ctx context.Context, host, agentID, reason string) error {
	ag, err := s.store.KillAgent(ctx, host, agentID)
	if err != nil {
		return fmt.Errorf("suspend agent %s: %w", agentID, err)
	}
	if _, err := s.writer.Sync(ctx); err != nil {
		return fmt.Errorf("suspend agent %s: apply the revocation: %w", agentID, err)
	}
	return s.audit.Append(ctx, audit.Entry{Host: host, Time: time.Now(), Decision: audit.Admin,
		Actor: "anomaly policy", Action: "agent.kill", Object: "agents/" + agentID + "/kill",
		AgentID: agentID, UserID: ag.UserID, OldValue: "enabled", NewValue: "disabled: " + reason})
}
