package fositestore

import (
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// Session is the fosite session of every trustgate grant, stored with its codes and tokens.
//
// It embeds fosite's oauth2.JWTSession (subject, expiry per token type, JWT claims and
// headers), so it is an oauth2.JWTSessionContainer and a fosite.ExtraClaimsSession for the JWT
// access-token strategy, and adds who the grant is for: the host (tenant), the human and the
// agent, and the two times the gateway session's limits run from (see SessionLimits).
type Session struct {
	oauth2.JWTSession
	Host    string `json:"host"`
	UserID  string `json:"user_id"`
	AgentID string `json:"agent_id"`
	// ConsentedAt is when the human consented: the gateway session's absolute start, kept by
	// every refresh. When zero, the store sets it as it stores the grant's first row.
	ConsentedAt time.Time `json:"consented_at,omitzero"`
	// LastUsedAt, on a refresh token's row, is when the token was issued: the grant's last use.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// TokenID is the jti of the access token last issued in this session (set as the token
	// is minted, stored with its row so that revoking the row revokes the token).
	TokenID string `json:"token_id,omitempty"`
}

var _ oauth2.JWTSessionContainer = (*Session)(nil)

// NewSession returns the session of a grant of host's human userID to agentID; its subject is
// the human.
func NewSession(host, userID, agentID string) *Session {
	return &Session{
		JWTSession: oauth2.JWTSession{Subject: userID},
		Host:       host,
		UserID:     userID,
		AgentID:    agentID,
	}
}

// Clone returns a deep copy (fosite clones the session of a refreshed grant).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*Session)
}
