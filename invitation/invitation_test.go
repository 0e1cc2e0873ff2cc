package invitation

import (
	"strings"
	"testing"
)

func TestNewParseVerify(t *testing.T) {
	a, b := New(), New()
	if a.Value == b.Value || a.Selector == b.Selector {
		t.Fatal("tokens repeat")
	}
	if strings.Contains(a.VerifierHash, strings.SplitN(a.Value, ".", 2)[1]) {
		t.Fatal("the stored hash contains the verifier")
	}
	sel, ver, ok := Parse(a.Value)
	if !ok || sel != a.Selector || !Verify(ver, a.VerifierHash) {
		t.Fatalf("round trip: %v %q", ok, sel)
	}
	_, verB, _ := Parse(b.Value)
	if Verify(verB, a.VerifierHash) || Verify(ver, "") || Verify(ver, strings.ToUpper(a.VerifierHash)) {
		t.Fatal("a wrong verifier or hash matched")
	}
	for _, bad := range []string{"", ".", a.Selector, a.Value + "x", "x" + a.Value, strings.Replace(a.Value, ".", "-", 1),
		a.Selector + "." + strings.Repeat("!", 43), strings.Repeat("A", 22) + "." + strings.Repeat("A", 42) + "B"} {
		if _, _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if got := URL("https://gw.example/h/acme/", a.Value); got != "https://gw.example/h/acme/invite/"+a.Value {
		t.Errorf("URL = %q", got)
	}
}
