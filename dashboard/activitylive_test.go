package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/tenant"
)

// event is one Server-Sent Event.
type event struct{ id, name, data string }

// stream opens path as an event stream in b's session and sends its events on a channel
// (closed when the stream ends).
func (b *browser) stream(ctx context.Context, path, lastEventID string) (<-chan event, *http.Response) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.e.srv.URL+path, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	out := make(chan event, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out, resp
}

// next waits for the next event named name whose data contains want.
func next(t *testing.T, events <-chan event, name, want string) event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before a %s event with %q", name, want)
			}
			if ev.name == name && strings.Contains(ev.data, want) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event with %q within 15s", name, want)
		}
	}
}

// TestActivityLiveTail: the live tail streams the host's new audit entries as they are
// written (only the host's, with the page's filters), resumes after Last-Event-ID without
// losing any, and ends when the viewer signs out.
func TestActivityLiveTail(t *testing.T) {
	e := newEnv(t)
	e.human(tenant.DefaultHost, "op@example.com", true)
	op := e.signIn("op@example.com", "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	status, page, _ := op.get("/dashboard/hosts/acme/activity")
	if status != http.StatusOK || !strings.Contains(page, `data-live="/dashboard/hosts/acme/activity/live?after=0"`) || !strings.Contains(page, `id="live-status"`) {
		t.Fatalf("activity page = %d\n%s", status, page)
	}
	events, resp := op.stream(ctx, "/dashboard/hosts/acme/activity/live?after=0", "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("live = %d %q", resp.StatusCode, ct)
	}
	add := func(host, email string) {
		t.Helper()
		if status, body, _ := op.post("/dashboard/hosts/"+host+"/humans", url.Values{"csrf_token": {op.csrf()}, "email": {email}}); status >= 400 {
			t.Fatalf("add human = %d\n%s", status, body)
		}
	}
	add("beta", "someone@beta.test") // another host's: never in acme's tail
	add("acme", "first@acme.test")
	ev := next(t, events, "entry", "first@acme.test")
	var row struct {
		Seq           int64
		Decision, Who string
		What          string
	}
	if err := json.Unmarshal([]byte(ev.data), &row); err != nil || row.Decision != "admin" || row.Who != "dashboard:op@example.com" || !strings.Contains(row.What, "human.create") || ev.id == "" {
		t.Fatalf("entry = %+v (%v) from %q", row, err, ev.data)
	}
	add("acme", "second@acme.test")
	next(t, events, "entry", "second@acme.test")
	cancel()
	for range events { // the stream ends with the request
	}

	// Reconnecting with Last-Event-ID sends what came after it, and nothing before it.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	add("acme", "third@acme.test")
	events, _ = op.stream(ctx2, "/dashboard/hosts/acme/activity/live?after=0", ev.id)
	got := next(t, events, "entry", "@acme.test")
	if strings.Contains(got.data, "first@acme.test") || !strings.Contains(got.data, "second@acme.test") {
		t.Fatalf("after Last-Event-ID %s the first entry is %s", ev.id, got.data)
	}
	next(t, events, "entry", "third@acme.test")

	// At most MaxLiveStreams tails at once; one more is refused until one ends.
	ctx3, cancel3 := context.WithCancel(context.Background())
	for range dashboard.MaxLiveStreams - 1 { // the one of events is open
		op.stream(ctx3, "/dashboard/hosts/acme/activity/live", "")
	}
	if _, resp := op.stream(ctx2, "/dashboard/hosts/acme/activity/live", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("one live tail too many = %d; want 503", resp.StatusCode)
	}
	cancel3()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx4, cancel4 := context.WithCancel(ctx2)
		_, resp := op.stream(ctx4, "/dashboard/hosts/acme/activity/live", "")
		cancel4()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closed tails were not given back: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A filter applies to the tail too.
	filtered, _ := op.stream(ctx2, "/dashboard/hosts/acme/activity/live?after=0&decision=denied", "")
	// Signing out ends both streams.
	if status, _, _ := op.post("/dashboard/sign-out", url.Values{"csrf_token": {op.csrf()}}); status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", status)
	}
	next(t, events, "end", "signed out")
	for ev := range filtered {
		if ev.name == "entry" {
			t.Errorf("the tail filtered on denied sent %s", ev.data)
		}
	}
}

// The Activity page shows an entry's anomaly flags and filters by one.
func TestActivityShowsAndFiltersAnomalyFlags(t *testing.T) {
	e := newEnv(t)
	e.human(tenant.DefaultHost, "op@example.com", true)
	op := e.signIn("op@example.com", "")
	if err := e.store.AppendAudit(context.Background(), []audit.Entry{
		{Host: "acme", ClientName: "Cursor", Server: "tracker", Tool: "delete_issue", Method: "tools/call", Decision: audit.Denied,
			Reason: "level_too_low", Flags: []string{"new_tool", "denial_streak"}},
		{Host: "acme", ClientName: "Cursor", Server: "tracker", Tool: "list_issues", Method: "tools/call", Decision: audit.Allowed},
	}); err != nil {
		t.Fatal(err)
	}
	_, page, _ := op.get("/dashboard/hosts/acme/activity")
	if !strings.Contains(page, `<span class="flags">flags: new_tool, denial_streak</span>`) || !strings.Contains(page, "list_issues") ||
		!strings.Contains(page, `<option value="denial_streak">denial_streak</option>`) {
		t.Fatalf("activity page:\n%s", page)
	}
	_, page, _ = op.get("/dashboard/hosts/acme/activity?flag=denial_streak")
	if !strings.Contains(page, "delete_issue") || strings.Contains(page, "list_issues") ||
		!strings.Contains(page, `<option value="denial_streak" selected>denial_streak</option>`) {
		t.Fatalf("activity page filtered by denial_streak:\n%s", page)
	}
}
