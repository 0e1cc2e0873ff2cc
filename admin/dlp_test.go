package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestResultFilterSettings: a host's settings.dlp reads off with every list empty by default,
// is replaced whole by a PATCH and kept by a PATCH of other settings; invalid settings are
// refused with the reason and change nothing; a server's dlp_mode follows the host ("") until
// set. Each change is an admin audit entry.
func TestResultFilterSettings(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	e.imported(up)
	var h admin.Host
	e.must(200, "GET", "/api/v1/hosts/acme", e.acme, nil, &h)
	if d := h.Settings.DLP; d.Mode != "off" || d.Kinds == nil || len(d.Kinds) != 0 || d.Patterns == nil || len(d.Patterns) != 0 {
		t.Fatalf("default dlp settings = %+v", d)
	}
	want := admin.DLPSettings{Mode: "redact", Kinds: []string{"card_number", "aws_access_key_id"},
		Patterns: []admin.DLPPattern{{Name: "employee_id", Regexp: `\bEMP-\d{6}\b`}}}
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{DLP: &want}}, &h)
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{AuditArguments: ptr(true)}}, &h)
	if d := h.Settings.DLP; d.Mode != "redact" || !slices.Equal(d.Kinds, []string{"aws_access_key_id", "card_number"}) || len(d.Patterns) != 1 || d.Patterns[0] != want.Patterns[0] {
		t.Fatalf("dlp settings after PATCHes = %+v", d)
	}
	for _, c := range []struct {
		bad  admin.DLPSettings
		want string
	}{
		{admin.DLPSettings{Mode: "shred"}, `mode "shred"`},
		{admin.DLPSettings{Kinds: []string{"ssn"}}, `kind "ssn"`},
		{admin.DLPSettings{Patterns: []admin.DLPPattern{{Name: "x", Regexp: `(a`}}}, `pattern "x"`},
		{admin.DLPSettings{Patterns: []admin.DLPPattern{{Name: "email", Regexp: `a`}}}, "built-in kind"},
	} {
		e.problem(400, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{DLP: &c.bad}}, c.want)
	}
	e.must(200, "GET", "/api/v1/hosts/acme", e.acme, nil, &h)
	if h.Settings.DLP.Mode != "redact" || len(h.Settings.DLP.Patterns) != 1 {
		t.Errorf("a refused PATCH changed the settings: %+v", h.Settings.DLP)
	}

	var s admin.Server
	e.must(200, "GET", "/api/v1/hosts/acme/servers/tracker", e.acme, nil, &s)
	if s.DLPMode != "" {
		t.Fatalf("default dlp_mode = %q", s.DLPMode)
	}
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{DLPMode: ptr("block")}, &s)
	if s.DLPMode != "block" {
		t.Fatalf("dlp_mode after PATCH = %q", s.DLPMode)
	}
	e.problem(400, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{DLPMode: ptr("mask")}, "dlp_mode")
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{DLPMode: ptr("")}, &s)
	if s.DLPMode != "" {
		t.Fatalf("dlp_mode after clearing = %q", s.DLPMode)
	}

	entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme"}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, en := range entries {
		if en.Decision == audit.Admin && (strings.Contains(en.NewValue, "dlp") || strings.Contains(en.OldValue, "dlp")) {
			changes = append(changes, en.OldValue+" → "+en.NewValue)
		}
	}
	want2 := []string{
		"dlp mode=off kinds=all patterns= → dlp mode=redact kinds=aws_access_key_id,card_number patterns=employee_id",
		"dlp_mode= → dlp_mode=block",
		"dlp_mode=block → dlp_mode=",
	}
	if !slices.Equal(changes, want2) {
		t.Errorf("audited changes %q, want %q", changes, want2)
	}
}
