package proxy

import "testing"

func TestSessionBinding(t *testing.T) {
	b := newSessionBinder([]byte("0123456789abcdef0123456789abcdef"))
	id := b.wrap("acme", "tracker", "a_1", "upstream-session-42")
	if got, ok := b.unwrap("acme", "tracker", "a_1", id); !ok || got != "upstream-session-42" {
		t.Fatalf("unwrap(own id) = %q %v", got, ok)
	}
	for name, c := range map[string][4]string{
		"another agent":  {"acme", "tracker", "a_2", id},
		"another server": {"acme", "github", "a_1", id},
		"another host":   {"beta", "tracker", "a_1", id},
		"raw upstream":   {"acme", "tracker", "a_1", "upstream-session-42"},
		"tampered":       {"acme", "tracker", "a_1", id[:len(id)-2] + "AA"},
		"forged id":      {"acme", "tracker", "a_1", sessionPrefix + "b3RoZXI." + id[len(id)-22:]},
	} {
		if _, ok := b.unwrap(c[0], c[1], c[2], c[3]); ok {
			t.Errorf("%s: session id accepted", name)
		}
	}
	other := newSessionBinder([]byte("another key, another replica set"))
	if _, ok := other.unwrap("acme", "tracker", "a_1", id); ok {
		t.Error("a binder with another key accepted the id")
	}
}
