package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Sessions of the older Streamable HTTP revisions (Mcp-Session-Id) are bound to the agent that
// opened them without any state: the client sees "tg1.<upstream id>.<mac>", where the MAC binds
// the upstream's session id to the host, the server and the agent. Another agent presenting the
// id (or anyone altering it) is answered 404 "session not found", which makes a client start a
// new session; every replica sharing the master key verifies the same ids.

const sessionPrefix = "tg1."

// sessionMACLen is the MAC's length in bytes (128 bits).
const sessionMACLen = 16

// sessionBinder wraps and checks session ids.
type sessionBinder struct{ key []byte }

func newSessionBinder(key []byte) sessionBinder {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // per process: only for tests and single instances
	}
	return sessionBinder{key: key}
}

func (b sessionBinder) mac(host, server, agentID, upstreamID string) []byte {
	m := hmac.New(sha256.New, b.key)
	for _, part := range []string{host, server, agentID, upstreamID} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:sessionMACLen]
}

// wrap turns the upstream's session id into the id the agent sees.
func (b sessionBinder) wrap(host, server, agentID, upstreamID string) string {
	enc := base64.RawURLEncoding
	return sessionPrefix + enc.EncodeToString([]byte(upstreamID)) + "." + enc.EncodeToString(b.mac(host, server, agentID, upstreamID))
}

// unwrap returns the upstream's session id when id was issued to this agent for this server.
func (b sessionBinder) unwrap(host, server, agentID, id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	if !ok {
		return "", false
	}
	idPart, macPart, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	enc := base64.RawURLEncoding
	upstreamID, err1 := enc.DecodeString(idPart)
	mac, err2 := enc.DecodeString(macPart)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, b.mac(host, server, agentID, string(upstreamID))) {
		return "", false
	}
	return string(upstreamID), true
}
