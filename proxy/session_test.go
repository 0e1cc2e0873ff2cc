package proxy

import (
	"strings"
	"testing"
)

func TestSessionBinding(t *testing.T) {
	b := newSessionBinder([]byte("0123456789abcdef0123456789abcdef"))
	id := b.wrap("acme", "tracker", "a_1", "upstream-session-42", 0)
	if !strings.HasPrefix(id, sessionPrefix) {
		t.Fatalf("a session without capabilities keeps the tg1 form: %q", id)
	}
	if got, caps, ok := b.unwrap("acme", "tracker", "a_1", id); !ok || got != "upstream-session-42" || caps != 0 {
		t.Fatalf("unwrap(own id) = %q %v %v", got, caps, ok)
	}
	withCaps := b.wrap("acme", "tracker", "a_1", "upstream-session-42", capElicitationForm)
	if got, caps, ok := b.unwrap("acme", "tracker", "a_1", withCaps); !ok || got != "upstream-session-42" || caps != capElicitationForm {
		t.Fatalf("unwrap(own id with capabilities) = %q %v %v", got, caps, ok)
	}
	parts := strings.Split(strings.TrimPrefix(withCaps, sessionCapsPrefix), ".")
	for name, c := range map[string][4]string{
		"another agent":           {"acme", "tracker", "a_2", id},
		"another server":          {"acme", "github", "a_1", id},
		"another host":            {"beta", "tracker", "a_1", id},
		"raw upstream":            {"acme", "tracker", "a_1", "upstream-session-42"},
		"tampered":                {"acme", "tracker", "a_1", id[:len(id)-2] + "AA"},
		"forged id":               {"acme", "tracker", "a_1", sessionPrefix + "b3RoZXI." + id[len(id)-22:]},
		"capabilities, agent":     {"acme", "tracker", "a_2", withCaps},
		"capabilities added":      {"acme", "tracker", "a_1", sessionCapsPrefix + strings.TrimPrefix(id, sessionPrefix)},
		"capabilities added, mac": {"acme", "tracker", "a_1", sessionCapsPrefix + parts[0] + ".1." + id[len(id)-22:]},
		"capabilities changed":    {"acme", "tracker", "a_1", sessionCapsPrefix + parts[0] + ".3." + parts[2]},
		"capabilities spelled":    {"acme", "tracker", "a_1", sessionCapsPrefix + parts[0] + ".01." + parts[2]},
		"capabilities dropped":    {"acme", "tracker", "a_1", sessionPrefix + parts[0] + "." + parts[2]},
	} {
		if _, _, ok := b.unwrap(c[0], c[1], c[2], c[3]); ok {
			t.Errorf("%s: session id accepted", name)
		}
	}
	other := newSessionBinder([]byte("another key, another replica set"))
	if _, _, ok := other.unwrap("acme", "tracker", "a_1", id); ok {
		t.Error("a binder with another key accepted the id")
	}
}
