package anomaly_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

// The detector reads a real audit log (SQLite store): each test writes the history a user would
// have made and asks about the next call.

var t0 = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC) // a Tuesday, 10:30 UTC

func newLog(t *testing.T) (store.Store, *anomaly.Detector) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.EnsureHost(ctx, store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	return st, anomaly.New(st)
}

func write(t *testing.T, st store.Store, entries ...audit.Entry) {
	t.Helper()
	if err := st.AppendAudit(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

func call(at time.Time, agent, server, tool string, d audit.Decision) audit.Entry {
	return audit.Entry{Host: "acme", Time: at, UserID: "u1", AgentID: agent, Server: server, Tool: tool, Method: "tools/call", Decision: d}
}

func all(flags ...anomaly.Flag) store.AnomalySettings {
	s := store.AnomalySettings{}
	for _, f := range flags {
		s.Flags = append(s.Flags, string(f))
	}
	return s
}

func detect(d *anomaly.Detector, s store.AnomalySettings, at time.Time, agent, server, tool string, denied bool) []anomaly.Flag {
	return d.Detect(context.Background(), s, anomaly.Call{Host: "acme", UserID: "u1", AgentID: agent, Server: server, Tool: tool, Denied: denied, Time: at})
}

func TestFirstUseOfAToolAndAServer(t *testing.T) {
	st, d := newLog(t)
	write(t, st, call(t0.Add(-time.Hour), "a1", "github", "list_repos", audit.Allowed),
		call(t0.Add(-time.Hour), "a1", "github", "delete_repo", audit.Denied)) // denied: never used
	s := all(anomaly.NewTool, anomaly.NewServer)
	for _, c := range []struct {
		agent, server, tool string
		want                []anomaly.Flag
	}{
		{"a1", "github", "list_repos", nil},
		{"a1", "github", "delete_repo", []anomaly.Flag{anomaly.NewTool}},
		{"a1", "linear", "list_issues", []anomaly.Flag{anomaly.NewTool, anomaly.NewServer}},
		{"a2", "github", "list_repos", []anomaly.Flag{anomaly.NewTool, anomaly.NewServer}}, // another agent's history is not a2's
	} {
		if got := detect(d, s, t0, c.agent, c.server, c.tool, false); !slices.Equal(got, c.want) {
			t.Errorf("%s %s/%s: flags %v, want %v", c.agent, c.server, c.tool, got, c.want)
		}
	}
	// Once called, not new any more (this replica remembers; another reads the log).
	if got := detect(d, s, t0, "a1", "linear", "list_issues", false); got != nil {
		t.Errorf("second call flagged %v", got)
	}
	write(t, st, call(t0, "a1", "linear", "create_issue", audit.Allowed))
	other := anomaly.New(st)
	if got := detect(other, s, t0.Add(time.Second), "a1", "linear", "create_issue", false); got != nil {
		t.Errorf("another replica flagged a tool the log shows used: %v", got)
	}
	if got := detect(d, all(anomaly.NewServer), t0, "a3", "github", "x", false); !slices.Equal(got, []anomaly.Flag{anomaly.NewServer}) {
		t.Errorf("new_server alone: %v", got)
	}
	if got := detect(d, store.AnomalySettings{}, t0, "a4", "github", "x", false); got != nil {
		t.Errorf("flags raised with the policy off: %v", got)
	}
}

func TestOffHours(t *testing.T) {
	st, d := newLog(t)
	window := all(anomaly.OffHours)
	window.UsualHours = &store.UsualHours{Start: 8, End: 18, Timezone: "Europe/Berlin"}
	night := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC) // 03:00 in Berlin
	if got := detect(d, window, night, "a1", "gh", "t", false); !slices.Equal(got, []anomaly.Flag{anomaly.OffHours}) {
		t.Errorf("03:00 Berlin with a window of 8-18: %v", got)
	}
	if got := detect(d, window, night.Add(time.Minute), "a1", "gh", "t", false); got != nil {
		t.Errorf("flagged again within the quiet period: %v", got)
	}
	if got := detect(d, window, t0, "a2", "gh", "t", false); got != nil { // 11:30 Berlin
		t.Errorf("11:30 Berlin flagged %v", got)
	}

	// Learned: the human's agents called every working day between 9 and 12 UTC.
	var history []audit.Entry
	for day := 1; day <= 10; day++ {
		for i := range 6 {
			history = append(history, call(t0.Add(-time.Duration(day)*24*time.Hour).Add(-time.Duration(i)*20*time.Minute), "a9", "gh", "t", audit.Allowed))
		}
	}
	write(t, st, history...)
	learned := all(anomaly.OffHours)
	if got := detect(d, learned, night, "a5", "gh", "t", false); !slices.Equal(got, []anomaly.Flag{anomaly.OffHours}) {
		t.Errorf("02:00 UTC against a history of 9-11 UTC: %v", got)
	}
	if got := detect(anomaly.New(st), learned, t0, "a1", "gh", "t", false); got != nil {
		t.Errorf("10:30 UTC flagged %v", got)
	}
	// Too little history tells nothing.
	st2, d2 := newLog(t)
	write(t, st2, call(t0.Add(-24*time.Hour), "a1", "gh", "t", audit.Allowed))
	if got := detect(d2, learned, night, "a1", "gh", "t", false); got != nil {
		t.Errorf("flagged on a history of one call: %v", got)
	}
}

func TestRateSpike(t *testing.T) {
	st, d := newLog(t)
	var history []audit.Entry
	for i := range 59 { // one call a minute over the hour before
		history = append(history, call(t0.Add(-time.Duration(i+2)*time.Minute), "a1", "gh", "t", audit.Allowed))
	}
	write(t, st, history...)
	s := all(anomaly.RateSpike)
	if got := detect(d, s, t0, "a1", "gh", "t", false); got != nil {
		t.Fatalf("the usual rate flagged %v", got)
	}
	var burst []audit.Entry
	for i := range 25 { // 25 calls in the last minute: 25× the baseline, above the minimum of 20
		burst = append(burst, call(t0.Add(time.Duration(i)*time.Second), "a2", "gh", "t", audit.Allowed))
	}
	write(t, st, burst...)
	if got := detect(d, s, t0.Add(30*time.Second), "a2", "gh", "t", false); !slices.Equal(got, []anomaly.Flag{anomaly.RateSpike}) {
		t.Errorf("25 calls in a minute from nothing: %v", got)
	}
	if got := detect(d, s, t0.Add(31*time.Second), "a2", "gh", "t", false); got != nil {
		t.Errorf("flagged again within the quiet period: %v", got)
	}
	// a1's 1/minute baseline × 10 = 10, but the minimum is 20: 15 calls are not a spike.
	var some []audit.Entry
	for i := range 15 {
		some = append(some, call(t0.Add(time.Duration(i)*time.Second), "a1", "gh", "t", audit.Allowed))
	}
	write(t, st, some...)
	if got := detect(anomaly.New(st), s, t0.Add(40*time.Second), "a1", "gh", "t", false); got != nil {
		t.Errorf("15 calls in a minute, under the minimum: %v", got)
	}
	s.RateMinPerMinute = 5
	if got := detect(anomaly.New(st), s, t0.Add(40*time.Second), "a1", "gh", "t", false); !slices.Equal(got, []anomaly.Flag{anomaly.RateSpike}) {
		t.Errorf("15 calls against a baseline of 1 with a minimum of 5: %v", got)
	}
}

func TestDenialStreak(t *testing.T) {
	st, d := newLog(t)
	s := all(anomaly.DenialStreak)
	s.DenialStreak = 4
	write(t, st, call(t0, "a1", "gh", "ok", audit.Allowed),
		call(t0.Add(1*time.Second), "a1", "gh", "x", audit.Denied),
		call(t0.Add(2*time.Second), "a1", "gh", "x", audit.Denied))
	if got := detect(d, s, t0.Add(3*time.Second), "a1", "gh", "x", true); got != nil {
		t.Fatalf("third denial in a row flagged %v", got)
	}
	write(t, st, call(t0.Add(3*time.Second), "a1", "gh", "x", audit.Denied))
	if got := detect(d, s, t0.Add(4*time.Second), "a1", "gh", "x", true); !slices.Equal(got, []anomaly.Flag{anomaly.DenialStreak}) {
		t.Fatalf("fourth denial in a row: %v", got)
	}
	// An allowed call breaks a streak.
	write(t, st, call(t0, "a2", "gh", "x", audit.Denied), call(t0.Add(time.Second), "a2", "gh", "x", audit.Denied),
		call(t0.Add(2*time.Second), "a2", "gh", "x", audit.Denied), call(t0.Add(3*time.Second), "a2", "gh", "ok", audit.Allowed))
	if got := detect(d, s, t0.Add(4*time.Second), "a2", "gh", "x", true); got != nil {
		t.Errorf("a denial after an allowed call flagged %v", got)
	}
	// Only denials are checked for streaks; allowed calls raise nothing here.
	if got := detect(d, s, t0.Add(5*time.Second), "a1", "gh", "ok", false); got != nil {
		t.Errorf("an allowed call flagged %v", got)
	}
}

// The denial that makes the streak is flagged although the entries of the denials before it
// are not written yet (they are written in the background): this replica's own denials count.
func TestDenialStreakBeforeItsEntriesAreWritten(t *testing.T) {
	st, d := newLog(t)
	s := all(anomaly.DenialStreak)
	s.DenialStreak = 3
	write(t, st, call(t0, "a1", "gh", "ok", audit.Allowed))
	for i := 1; i <= 2; i++ {
		if got := detect(d, s, t0.Add(time.Duration(i)*time.Second), "a1", "gh", "x", true); got != nil {
			t.Fatalf("denial %d flagged %v", i, got)
		}
	}
	if got := detect(d, s, t0.Add(3*time.Second), "a1", "gh", "x", true); !slices.Equal(got, []anomaly.Flag{anomaly.DenialStreak}) {
		t.Fatalf("third denial in a row, none of them written yet: %v", got)
	}
	// An allowed call this replica decided ends the streak, written or not.
	if got := detect(d, s, t0.Add(4*time.Second), "a2", "gh", "x", true); got != nil {
		t.Fatalf("a2's first denial: %v", got)
	}
	detect(d, s, t0.Add(5*time.Second), "a2", "gh", "x", true)
	detect(d, s, t0.Add(6*time.Second), "a2", "gh", "ok", false)
	if got := detect(d, s, t0.Add(7*time.Second), "a2", "gh", "x", true); got != nil {
		t.Fatalf("a denial after an allowed call flagged %v", got)
	}
	// An allowed call another replica wrote to the log ends this replica's streak too.
	detect(d, s, t0.Add(8*time.Second), "a3", "gh", "x", true)
	detect(d, s, t0.Add(9*time.Second), "a3", "gh", "x", true)
	write(t, st, call(t0.Add(10*time.Second), "a3", "gh", "ok", audit.Allowed))
	if got := detect(d, s, t0.Add(11*time.Second), "a3", "gh", "x", true); got != nil {
		t.Fatalf("a denial after another replica's allowed call flagged %v", got)
	}
}

func TestDescribe(t *testing.T) {
	if got := anomaly.Describe([]anomaly.Flag{anomaly.NewTool, anomaly.OffHours}); got != "anomaly: new_tool, off_hours" {
		t.Errorf("Describe = %q", got)
	}
}
