package bench_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/trustgate/trustgate/bench"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// TestRunMeasuresBothSides runs the whole benchmark briefly in denied mode: the gateway must
// deny every call (the run fails otherwise) while the upstream answers them directly.
func TestRunMeasuresBothSides(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	rep, err := bench.Run(context.Background(), bench.Options{Mode: bench.ModeDenied, Clients: 2, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Direct.Calls == 0 || rep.Gateway.Calls == 0 || rep.Gateway.Errors != 0 || rep.RSSBytes <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	var sum float64
	for _, s := range rep.CPU {
		sum += s.Percent
	}
	if sum < 99.9 || sum > 100.1 {
		t.Fatalf("CPU shares add up to %.1f%%: %+v", sum, rep.CPU)
	}
	if rep.Floor.Samples == 0 || rep.Floor.P50 <= 0 || rep.Floor.P99 < rep.Floor.P50 || rep.AddedAboveFloorP50 != rep.AddedP50-rep.Floor.P50 {
		t.Fatalf("floor: %+v, added p50 %.0f µs, above the floor %.0f µs", rep.Floor, rep.AddedP50, rep.AddedAboveFloorP50)
	}
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil || !strings.Contains(out.String(), "calls/s") || !strings.Contains(out.String(), "fsync floor") ||
		!strings.Contains(out.String(), "above the floor") {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
}

// TestRunUpstreamSSE runs the allowed mode with the upstream answering SSE streams: every call,
// direct and through the gateway, must get the tool's result out of the stream.
func TestRunUpstreamSSE(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	rep, err := bench.Run(context.Background(), bench.Options{Mode: bench.ModeAllowed, Clients: 2, Duration: 500 * time.Millisecond, UpstreamSSE: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.UpstreamSSE || rep.Direct.Calls == 0 || rep.Gateway.Calls == 0 || rep.Direct.Errors != 0 || rep.Gateway.Errors != 0 {
		t.Fatalf("report: %+v", rep)
	}
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil || !strings.Contains(out.String(), "upstream answers SSE") {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
}

// TestSweepSmallSizes runs the scale sweep on small sizes: every point is measured and the
// generated data allows some calls and denies others; the heap profile of the largest size is a
// profile of the memory in use.
func TestSweepSmallSizes(t *testing.T) {
	var heap bytes.Buffer
	points, err := bench.Sweep(context.Background(), bench.SweepOptions{Sizes: []int{500, 2000}, Checks: 100, MemProfile: &heap})
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 2 || points[0].Tuples < 500 || points[1].Tuples < 2000 {
		t.Fatalf("points: %+v", points)
	}
	for _, p := range points {
		if p.Allowed <= 0.1 || p.Allowed >= 0.9 || p.UncachedP50 <= 0 || p.CachedP50 <= 0 || p.UncachedCPU <= 0 || p.HeapBytes <= 0 || p.RSSBytes <= 0 {
			t.Fatalf("point: %+v", p)
		}
	}
	prof, err := profile.Parse(&heap)
	if err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	if !slices.ContainsFunc(prof.SampleType, func(s *profile.ValueType) bool { return s.Type == "inuse_space" }) || len(prof.Sample) == 0 {
		t.Fatalf("heap profile without memory in use: %v, %d samples", prof.SampleType, len(prof.Sample))
	}
	// At least as fresh as the load's last write, the same random checks get the same answers.
	token, err := bench.Sweep(context.Background(), bench.SweepOptions{Sizes: []int{500}, Checks: 100, Consistency: bench.ConsistencyToken})
	if err != nil {
		t.Fatal(err)
	}
	if token[0].Tuples != points[0].Tuples || token[0].Allowed != points[0].Allowed {
		t.Fatalf("token consistency: %+v, fully consistent: %+v", token[0], points[0])
	}
	if _, err := bench.Sweep(context.Background(), bench.SweepOptions{Sizes: []int{500}, Consistency: "eventual"}); err == nil {
		t.Fatal("an unknown consistency was accepted")
	}
}

// TestSweepPostgres loads the sweep's data into SpiceDB's PostgreSQL datastore through the bulk
// import (COPY): the same random checks get the same answers as on the memory datastore, for
// both shapes, fully consistent and at least as fresh as the load.
func TestSweepPostgres(t *testing.T) {
	uri := services.Postgres(t)
	ctx := context.Background()
	for _, opts := range []bench.SweepOptions{
		{Sizes: []int{2000}, Checks: 60},
		{Sizes: []int{1}, Checks: 60, Shape: bench.ShapeLargeHost, LargeHumans: 200},
	} {
		memory, err := bench.Sweep(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, consistency := range []string{bench.ConsistencyFull, bench.ConsistencyToken} {
			o := opts
			o.DatastoreURI, o.Consistency = uri, consistency
			pg, err := bench.Sweep(ctx, o)
			if err != nil {
				t.Fatalf("%s, %s: %v", opts.Shape, consistency, err)
			}
			if pg[0].Tuples != memory[0].Tuples || pg[0].Allowed != memory[0].Allowed || memory[0].Allowed <= 0 || memory[0].Allowed >= 1 {
				t.Fatalf("%s, %s: PostgreSQL %+v, memory %+v", opts.Shape, consistency, pg[0], memory[0])
			}
		}
	}
}

// TestSweepLargeHost runs the one-large-host shape at its smallest size, scaled down to 10^3
// humans and 2×10^3 agents (the sweep's default is 10^4 and 2×10^4, about 10^5 relationships,
// which takes minutes to load on a busy machine): some calls allowed and others denied.
func TestSweepLargeHost(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10^4 relationships")
	}
	points, err := bench.Sweep(context.Background(), bench.SweepOptions{Sizes: []int{1}, Checks: 60, Shape: bench.ShapeLargeHost, LargeHumans: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	// 10^3 humans, 6×10^3 agent tuples, 50 servers, 2000 tools, and per agent on one server
	// a consent and its copy of the human's ceiling.
	if len(points) != 1 || points[0].Tuples != 13_050 {
		t.Fatalf("points: %+v", points)
	}
	if p := points[0]; p.Allowed <= 0.1 || p.Allowed >= 0.9 || p.UncachedP50 <= 0 || p.CachedP50 <= 0 {
		t.Fatalf("point: %+v", p)
	}
	if _, err := bench.Sweep(context.Background(), bench.SweepOptions{Sizes: []int{1}, Shape: "flat"}); err == nil {
		t.Fatal("an unknown shape was accepted")
	}
}
