// Package audit is trustgate's tamper-evident audit log: the entry of one decision (a proxied
// MCP message allowed, denied or failed, or an admin's change to who may do what), its canonical
// encoding and hash chain, the verification of a chain, the redaction of tool-call arguments,
// and Log, which makes entries durable by batching concurrent appends into one transaction.
//
// Entries are chained per host: hash = SHA-256(prev_hash || canonical(entry)), where the entry
// carries its host and its per-host sequence number. An edited row no longer matches its hash;
// a deleted row leaves a gap in the sequence numbers and a prev_hash that matches nothing. The
// store (package store) assigns sequence numbers and computes the chain inside the transaction
// that writes the rows, and offers no way to update or delete them.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Decision is what happened.
type Decision string

const (
	// Allowed: the message was authorized and is being forwarded.
	Allowed Decision = "allowed"
	// Denied: the message was refused by policy.
	Denied Decision = "denied"
	// Error: the decision could not be made or carried out (backend, store or upstream failure).
	Error Decision = "error"
	// Admin: an administrator changed who may do what.
	Admin Decision = "admin"
	// Result: the outcome of an allowed message (upstream status and latency), written after
	// the upstream answered; it has the request id of the allowed entry.
	Result Decision = "result"
	// Identity: a person proved (or failed to prove) who they are: a sign-in, with its
	// method in Method and its outcome in Action (never the secret they used).
	Identity Decision = "identity"
	// Approval: a call a host's approval policy holds for a person, and what became of it,
	// in Action: "held", "approved", "denied" or "expired"; Actor names who decided and
	// Reason how (email, dashboard, api, elicitation).
	Approval Decision = "approval"
)

// Valid reports whether d is one of the decisions above.
func (d Decision) Valid() bool {
	switch d {
	case Allowed, Denied, Error, Admin, Result, Identity, Approval:
		return true
	}
	return false
}

// FormatVersion is the version of the canonical encoding new entries with anomaly flags are
// hashed with. Each version adds a field: version 2 the client address, version 3 the flags.
// An entry is hashed with the oldest version that holds all it carries (no flags: 2 with a
// client address, 1 without one), so that a replica of an earlier release, which knows only
// the older versions, can still verify the entries it knows during a rolling upgrade. Every
// version verifies.
const FormatVersion = 3

// MaxFlags bounds an entry's flags.
const MaxFlags = 16

// Size bounds of the fields (in bytes). Normalize truncates longer values.
const (
	maxShort     = 256  // ids, names, levels, methods
	maxText      = 2048 // reason, object, old and new values
	MaxArguments = 16 << 10
)

// Entry is one audit record. The store fills Seq, PrevHash and Hash.
type Entry struct {
	Host string    `json:"host"`
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`

	// The human the agent acts for (or the admin's human, when known).
	UserID    string `json:"user_id,omitempty"`
	UserEmail string `json:"user_email,omitempty"`
	// The agent: its id, its OAuth client id and name.
	AgentID    string `json:"agent_id,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	ClientName string `json:"client_name,omitempty"`

	Server string `json:"server,omitempty"`
	// Tool is the tool of a tools/call; Method the JSON-RPC method (or the HTTP method of a
	// GET or DELETE without a body).
	Tool   string `json:"tool,omitempty"`
	Method string `json:"method,omitempty"`

	Decision Decision `json:"decision"`
	Reason   string   `json:"reason,omitempty"`

	// Levels involved: the tool's required level, the agent's consented level, the human's
	// ceiling ("none" when absent).
	RequiredLevel string `json:"required_level,omitempty"`
	AgentLevel    string `json:"agent_level,omitempty"`
	Ceiling       string `json:"ceiling,omitempty"`

	// UpstreamStatus is the upstream's HTTP status (0: not forwarded or no answer).
	UpstreamStatus int `json:"upstream_status,omitempty"`
	// LatencyMS is how long the upstream took to answer, in milliseconds.
	LatencyMS int64  `json:"latency_ms,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
	// Arguments are the tool call's arguments as redacted JSON text (see RedactArguments),
	// stored only when the host's audit_arguments setting is on.
	Arguments string `json:"arguments,omitempty"`
	// ClientAddr is the IP address the request came from: the connection's peer, or the
	// client a trusted reverse proxy names (--trusted-proxies; see internal/forwarded). Empty
	// for entries made outside a request (the CLI, start-up) and for entries written before
	// trustgate recorded it.
	ClientAddr string `json:"client_addr,omitempty"`
	// Flags are the anomaly flags of a tool call (package anomaly: new_tool, new_server,
	// off_hours, rate_spike, denial_streak), in that order; none for most entries.
	Flags []string `json:"flags,omitempty"`

	// Admin changes: who (an API token's id and name, or "cli"), what, on which object, and
	// the value before and after ("" when there is none).
	Actor    string `json:"actor,omitempty"`
	Action   string `json:"action,omitempty"`
	Object   string `json:"object,omitempty"`
	OldValue string `json:"old_value,omitempty"`
	NewValue string `json:"new_value,omitempty"`

	// Version is the canonical encoding the hash was computed with.
	Version  int    `json:"version"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Normalize returns e as the store keeps it: time in UTC at millisecond precision (now when
// zero), strings valid UTF-8 and within their size bounds, the current format version.
func Normalize(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = time.UnixMilli(e.Time.UnixMilli()).UTC()
	for _, f := range []*string{&e.Host, &e.UserID, &e.UserEmail, &e.AgentID, &e.ClientID, &e.ClientName,
		&e.Server, &e.Tool, &e.Method, &e.RequiredLevel, &e.AgentLevel, &e.Ceiling,
		&e.RequestID, &e.TraceID, &e.Actor, &e.Action, &e.ClientAddr} {
		*f = clip(*f, maxShort)
	}
	for _, f := range []*string{&e.Reason, &e.Object, &e.OldValue, &e.NewValue} {
		*f = clip(*f, maxText)
	}
	d := Decision(clip(string(e.Decision), maxShort))
	e.Decision = d
	if len(e.Arguments) > MaxArguments || !utf8.ValidString(e.Arguments) {
		e.Arguments = truncatedArguments(len(e.Arguments))
	}
	e.Flags = normalizeFlags(e.Flags)
	if e.Version == 0 {
		switch {
		case len(e.Flags) > 0:
			e.Version = 3
		case e.ClientAddr != "":
			e.Version = 2
		default:
			e.Version = 1
		}
	}
	return e
}

// normalizeFlags bounds flags (MaxFlags, each a short name without commas, none empty); nil
// when there are none.
func normalizeFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		f = strings.ReplaceAll(clip(f, maxShort), ",", "_")
		if f != "" && len(out) < MaxFlags {
			out = append(out, f)
		}
	}
	return out
}

// clip makes s valid UTF-8 of at most n bytes, cut at a rune boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// canonicalV1 is version 1 of the canonical encoding: JSON of this struct, whose fields
// encoding/json writes in declaration order with fixed escaping. Every field of Entry but the
// hashes is in it; a new field means a new version.
type canonicalV1 struct {
	V              int    `json:"v"`
	Host           string `json:"host"`
	Seq            int64  `json:"seq"`
	TimeMS         int64  `json:"time_ms"`
	UserID         string `json:"user_id"`
	UserEmail      string `json:"user_email"`
	AgentID        string `json:"agent_id"`
	ClientID       string `json:"client_id"`
	ClientName     string `json:"client_name"`
	Server         string `json:"server"`
	Tool           string `json:"tool"`
	Method         string `json:"method"`
	Decision       string `json:"decision"`
	Reason         string `json:"reason"`
	RequiredLevel  string `json:"required_level"`
	AgentLevel     string `json:"agent_level"`
	Ceiling        string `json:"ceiling"`
	UpstreamStatus int    `json:"upstream_status"`
	LatencyMS      int64  `json:"latency_ms"`
	RequestID      string `json:"request_id"`
	TraceID        string `json:"trace_id"`
	Arguments      string `json:"arguments"`
	Actor          string `json:"actor"`
	Action         string `json:"action"`
	Object         string `json:"object"`
	OldValue       string `json:"old_value"`
	NewValue       string `json:"new_value"`
}

// canonicalV2 is version 2: version 1 and the client address.
type canonicalV2 struct {
	canonicalV1
	ClientAddr string `json:"client_addr"`
}

// canonicalV3 is version 3: version 2 and the anomaly flags, comma-separated.
type canonicalV3 struct {
	canonicalV2
	Flags string `json:"flags"`
}

// Canonical is the byte encoding of e that its hash covers.
func Canonical(e Entry) ([]byte, error) {
	if e.Version < 3 && len(e.Flags) > 0 {
		return nil, fmt.Errorf("audit entry %s/%d: format version %d has no flags", e.Host, e.Seq, e.Version)
	}
	switch e.Version {
	case 1:
		if e.ClientAddr != "" {
			return nil, fmt.Errorf("audit entry %s/%d: format version 1 has no client address", e.Host, e.Seq)
		}
		return json.Marshal(v1(e))
	case 2:
		return json.Marshal(canonicalV2{canonicalV1: v1(e), ClientAddr: e.ClientAddr})
	case 3:
		return json.Marshal(canonicalV3{canonicalV2: canonicalV2{canonicalV1: v1(e), ClientAddr: e.ClientAddr}, Flags: strings.Join(e.Flags, ",")})
	}
	return nil, fmt.Errorf("audit entry %s/%d: unknown format version %d", e.Host, e.Seq, e.Version)
}

func v1(e Entry) canonicalV1 {
	return canonicalV1{
		V: e.Version, Host: e.Host, Seq: e.Seq, TimeMS: e.Time.UnixMilli(),
		UserID: e.UserID, UserEmail: e.UserEmail, AgentID: e.AgentID, ClientID: e.ClientID, ClientName: e.ClientName,
		Server: e.Server, Tool: e.Tool, Method: e.Method, Decision: string(e.Decision), Reason: e.Reason,
		RequiredLevel: e.RequiredLevel, AgentLevel: e.AgentLevel, Ceiling: e.Ceiling,
		UpstreamStatus: e.UpstreamStatus, LatencyMS: e.LatencyMS, RequestID: e.RequestID, TraceID: e.TraceID,
		Arguments: e.Arguments, Actor: e.Actor, Action: e.Action, Object: e.Object, OldValue: e.OldValue, NewValue: e.NewValue,
	}
}

// ComputeHash is hex(SHA-256(prev || canonical(e))), where prev is the previous entry's hash
// as bytes (nothing for the first entry of a host).
func ComputeHash(prevHash string, e Entry) (string, error) {
	prev, err := hex.DecodeString(prevHash)
	if err != nil {
		return "", fmt.Errorf("audit entry %s/%d: previous hash is not hex", e.Host, e.Seq)
	}
	c, err := Canonical(e)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Chain normalizes e and links it after the entry (seq-1, prevHash) of its host: it sets Seq,
// PrevHash and Hash. The store calls it inside the transaction that writes e.
func Chain(e Entry, seq int64, prevHash string) (Entry, error) {
	e = Normalize(e)
	e.Seq, e.PrevHash = seq, prevHash
	h, err := ComputeHash(prevHash, e)
	if err != nil {
		return Entry{}, err
	}
	e.Hash = h
	return e, nil
}

// Head is the last entry of a host's chain, as the store records it beside the entries.
type Head struct {
	Host string
	Seq  int64
	Hash string
}
