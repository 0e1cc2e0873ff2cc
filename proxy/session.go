package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Sessions of the older Streamable HTTP revisions (Mcp-Session-Id) are bound to the agent that
// opened them without any state: the client sees "tg1.<upstream id>.<mac>", where the MAC binds
// the upstream's session id to the host, the server and the agent. Another agent presenting the
// id (or anyone altering it) is answered 404 "session not found", which makes a client start a
// new session; every replica sharing the master key verifies the same ids.
//
// A session whose client declared capabilities the gateway itself uses (clientCaps: form
// elicitation, for asking the agent's human to approve a held call in their own client) carries
// them in its id, under the same MAC: "tg2.<upstream id>.<caps>.<mac>". So whichever replica
// gets the session's later requests knows them without any shared state, and nobody can add
// them to a session after initialize. Declaring a capability changes only how a held call's
// human is asked (approval.go, elicitation.go), never whether a call is allowed. Sessions
// without such capabilities keep the tg1 form, which older gateways read too.

const (
	sessionPrefix     = "tg1."
	sessionCapsPrefix = "tg2."
)

// sessionMACLen is the MAC's length in bytes (128 bits).
const sessionMACLen = 16

// clientCaps are the client capabilities, declared at initialize, that the gateway uses.
type clientCaps uint8

const (
	// capElicitationForm: the client answers elicitation/create in form mode.
	capElicitationForm clientCaps = 1 << iota
	capsKnown                     = capElicitationForm
)

// sessionBinder wraps and checks session ids.
type sessionBinder struct {
	key []byte
	// macs reuses HMAC states keyed with key (*macState): a session id is checked on every
	// request and wrapped again on every answer.
	macs *sync.Pool
}

// macState is one reusable HMAC-SHA-256 under the binder's key and the buffer its input is
// gathered in.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// maxPooledMACInput bounds the input buffer a pooled macState keeps.
const maxPooledMACInput = 4 << 10

func newSessionBinder(key []byte) sessionBinder {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // per process: only for tests and single instances
	}
	return sessionBinder{key: key, macs: &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, key)} }}}
}

// mac is the truncated HMAC of parts, each followed by a zero byte.
func (b sessionBinder) mac(parts ...string) []byte {
	s := b.macs.Get().(*macState)
	s.h.Reset()
	buf := s.buf[:0]
	for _, part := range parts {
		buf = append(buf, part...)
		buf = append(buf, 0)
	}
	s.h.Write(buf)
	out := make([]byte, sessionMACLen)
	copy(out, s.h.Sum(s.sum[:0]))
	if cap(buf) <= maxPooledMACInput {
		s.buf = buf
	} else {
		s.buf = nil
	}
	b.macs.Put(s)
	return out
}

// wrap turns the upstream's session id into the id the agent sees, carrying caps.
func (b sessionBinder) wrap(host, server, agentID, upstreamID string, caps clientCaps) string {
	enc := base64.RawURLEncoding
	caps &= capsKnown
	if caps == 0 {
		return sessionPrefix + enc.EncodeToString([]byte(upstreamID)) + "." + enc.EncodeToString(b.mac(host, server, agentID, upstreamID))
	}
	c := strconv.Itoa(int(caps))
	return sessionCapsPrefix + enc.EncodeToString([]byte(upstreamID)) + "." + c + "." +
		enc.EncodeToString(b.mac(host, server, agentID, upstreamID, "caps", c))
}

// unwrap returns the upstream's session id and the client's capabilities when id was issued
// to this agent for this server.
func (b sessionBinder) unwrap(host, server, agentID, id string) (string, clientCaps, bool) {
	enc := base64.RawURLEncoding
	if rest, ok := strings.CutPrefix(id, sessionCapsPrefix); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 3 {
			return "", 0, false
		}
		upstreamID, err1 := enc.DecodeString(parts[0])
		mac, err2 := enc.DecodeString(parts[2])
		n, err3 := strconv.ParseUint(parts[1], 10, 8)
		if err1 != nil || err2 != nil || err3 != nil || strconv.FormatUint(n, 10) != parts[1] ||
			!hmac.Equal(mac, b.mac(host, server, agentID, string(upstreamID), "caps", parts[1])) {
			return "", 0, false
		}
		return string(upstreamID), clientCaps(n) & capsKnown, true
	}
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	if !ok {
		return "", 0, false
	}
	idPart, macPart, ok := strings.Cut(rest, ".")
	if !ok {
		return "", 0, false
	}
	upstreamID, err1 := enc.DecodeString(idPart)
	mac, err2 := enc.DecodeString(macPart)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, b.mac(host, server, agentID, string(upstreamID))) {
		return "", 0, false
	}
	return string(upstreamID), 0, true
}
