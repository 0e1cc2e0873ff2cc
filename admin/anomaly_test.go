package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
)

// TestAnomalySettings: a host's anomaly policy is off by default, replaced whole by a PATCH and
// kept by others, refused with the reason when it names an unknown flag, notifies or suspends
// on a flag it does not raise, or gives impossible hours; each change is audited.
func TestAnomalySettings(t *testing.T) {
	e := newEnv(t)
	var h admin.Host
	e.must(200, "GET", "/api/v1/hosts/acme", e.acme, nil, &h)
	if a := h.Settings.Anomaly; a.Flags == nil || len(a.Flags) != 0 || a.UsualHours != nil {
		t.Fatalf("default anomaly settings %+v", a)
	}
	want := admin.AnomalySettings{Flags: []string{"new_tool", "rate_spike"}, Notify: []string{"rate_spike"}, Suspend: []string{"rate_spike"},
		UsualHours: &admin.UsualHours{Start: 22, End: 6, Timezone: "Asia/Tokyo"}, RateFactor: 5, DenialStreak: 7}
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{Anomaly: &want}}, &h)
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{AuditArguments: ptr(true)}}, &h)
	if a := h.Settings.Anomaly; !slices.Equal(a.Flags, want.Flags) || !slices.Equal(a.Suspend, want.Suspend) || *a.UsualHours != *want.UsualHours || a.DenialStreak != 7 {
		t.Fatalf("anomaly settings after PATCHes %+v", a)
	}
	for _, c := range []struct {
		bad  admin.AnomalySettings
		want string
	}{
		{admin.AnomalySettings{Flags: []string{"telepathy"}}, `unknown flag "telepathy"`},
		{admin.AnomalySettings{Flags: []string{"new_tool"}, Suspend: []string{"rate_spike"}}, `flag "rate_spike" is not raised`},
		{admin.AnomalySettings{Flags: []string{"off_hours"}, UsualHours: &admin.UsualHours{Start: 9, End: 9}}, "usual hours 9-9"},
		{admin.AnomalySettings{Flags: []string{"off_hours"}, UsualHours: &admin.UsualHours{Start: 9, End: 17, Timezone: "Mars/Olympus"}}, "unknown time zone"},
		{admin.AnomalySettings{Flags: []string{"denial_streak"}, DenialStreak: -1}, "denial streak"},
	} {
		e.problem(400, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{Anomaly: &c.bad}}, c.want)
	}
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{Anomaly: &admin.AnomalySettings{}}}, &h)
	if len(h.Settings.Anomaly.Flags) != 0 {
		t.Fatalf("anomaly settings after turning them off: %+v", h.Settings.Anomaly)
	}
	entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme"}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, en := range entries {
		if strings.Contains(en.NewValue, "anomaly") {
			changes = append(changes, en.OldValue+" → "+en.NewValue)
		}
	}
	if len(changes) != 2 || !strings.Contains(changes[0], "anomaly flags=new_tool,rate_spike notify=rate_spike suspend=rate_spike hours=22-6 Asia/Tokyo") {
		t.Errorf("audited anomaly changes %q", changes)
	}
}
