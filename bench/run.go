// Package bench measures what trustgate adds to an MCP tool call: an upstream MCP server, a
// gateway in process and concurrent MCP clients calling once directly and once through the
// gateway, in one run (Run); and the authorization check as the relationship data grows
// (Sweep).
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mode is what the clients call.
type Mode string

const (
	// ModeAllowed: tools/call echo, allowed.
	ModeAllowed Mode = "allowed"
	// ModeDenied: tools/call of a tool above the agent's level; the gateway denies every call.
	ModeDenied Mode = "denied"
	// ModeList: tools/list of a server with 200 tools, filtered to the callable ones.
	ModeList Mode = "list"
	// ModeLarge: tools/call of a tool answering 64 KiB.
	ModeLarge Mode = "large"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAllowed, ModeDenied, ModeList, ModeLarge:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want allowed, denied, list or large", s)
}

// listTools is the number of tools on the server in the list mode.
const listTools = 200

// Options configure Run.
type Options struct {
	Mode     Mode
	Clients  int
	Duration time.Duration
	// Database is the gateway's store (empty: the embedded default).
	Database string
	// Warmup is run before each measured phase (default 1s, at most Duration).
	Warmup time.Duration
	// Profile, when set, receives the CPU profile of the gateway phase (pprof format).
	Profile io.Writer
	// UpstreamSSE makes the upstream answer each POST with an SSE stream instead of JSON.
	UpstreamSSE bool
}

// floorSamples is how many durable writes MeasureFloor times before a run.
const floorSamples = 200

// Phase is the measurement of one side.
type Phase struct {
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	CallsPerSec float64 `json:"calls_per_sec"`
	// Latencies in microseconds.
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	// AllocsPerCall and BytesPerCall are the whole process's (clients, upstream and, through
	// the gateway, the gateway) heap allocations divided by the calls.
	AllocsPerCall float64 `json:"allocs_per_call"`
	BytesPerCall  float64 `json:"bytes_per_call"`
	// CPUPerCall is the process's CPU time (user + system) per call, in microseconds: unlike
	// latency it barely depends on what else the machine runs.
	CPUPerCall float64 `json:"cpu_per_call_us"`
	FirstError string  `json:"first_error,omitempty"`
}

// Report is the result of Run.
type Report struct {
	Date     time.Time     `json:"date"`
	Mode     Mode          `json:"mode"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration_ns"`
	Store    string        `json:"store"`
	// UpstreamSSE tells that the upstream answered with SSE streams instead of JSON.
	UpstreamSSE bool  `json:"upstream_sse"`
	CPUs        int   `json:"cpus"`
	Direct      Phase `json:"direct"`
	Gateway     Phase `json:"gateway"`
	// Ratio is gateway throughput / direct throughput.
	Ratio float64 `json:"throughput_ratio"`
	// Added latency at each percentile, microseconds (gateway - direct).
	AddedP50  float64 `json:"added_p50_us"`
	AddedP90  float64 `json:"added_p90_us"`
	AddedP99  float64 `json:"added_p99_us"`
	AddedP999 float64 `json:"added_p999_us"`
	// Floor is the durable-write latency of the gateway's data directory, measured before the
	// run: with one client the audit commit's fsync is the largest part of the added latency.
	Floor Floor `json:"fsync_floor"`
	// AddedAboveFloorP50 and AddedAboveFloorP99 are the added latency minus the floor's
	// percentile, microseconds.
	AddedAboveFloorP50 float64 `json:"added_above_floor_p50_us"`
	AddedAboveFloorP99 float64 `json:"added_above_floor_p99_us"`
	// AddedAllocsPerCall is what the gateway allocates per call (gateway - direct).
	AddedAllocsPerCall float64 `json:"added_allocs_per_call"`
	// AddedCPUPerCall is the gateway's CPU time per call, in microseconds (gateway - direct).
	AddedCPUPerCall float64 `json:"added_cpu_per_call_us"`
	// RSSBytes is the resident memory of the whole benchmark process (gateway, upstream and
	// clients) after the gateway phase; PeakRSSBytes its high-water mark; HeapBytes the Go heap.
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	HeapBytes    int64 `json:"heap_bytes"`
	// CPU is the share of CPU samples of the gateway phase by where they were spent.
	CPU []Share `json:"cpu"`
}

// Run sets up an Env and measures opts.Mode directly and through the gateway.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Clients <= 0 {
		opts.Clients = 32
	}
	if opts.Duration <= 0 {
		opts.Duration = 10 * time.Second
	}
	if opts.Mode == "" {
		opts.Mode = ModeAllowed
	}
	if opts.Warmup <= 0 {
		opts.Warmup = min(time.Second, opts.Duration)
	}
	extra := 0
	if opts.Mode == ModeList {
		extra = listTools - 3
	}
	env, err := Setup(ctx, SetupOptions{Database: opts.Database, ExtraTools: extra, UpstreamSSE: opts.UpstreamSSE})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	rep := &Report{Date: time.Now().UTC(), Mode: opts.Mode, Clients: opts.Clients, Duration: opts.Duration,
		Store: env.Gateway.Store().Engine(), UpstreamSSE: opts.UpstreamSSE, CPUs: runtime.GOMAXPROCS(0)}
	if rep.Floor, err = MeasureFloor(ctx, env.dataDir, floorSamples); err != nil {
		return nil, err
	}

	shape := load{clients: opts.Clients, warmup: opts.Warmup, duration: opts.Duration}
	if rep.Direct, err = measure(ctx, shape, env.Upstream.URL, "", modeCalls(opts.Mode, false), nil); err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}
	var prof bytes.Buffer
	if rep.Gateway, err = measure(ctx, shape, env.Resource, "Bearer "+env.Token, modeCalls(opts.Mode, true), &prof); err != nil {
		return nil, fmt.Errorf("through the gateway: %w", err)
	}
	rep.RSSBytes, rep.PeakRSSBytes = residentMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapBytes = int64(ms.HeapAlloc)
	if rep.CPU, err = cpuShares(prof.Bytes()); err != nil {
		return nil, err
	}
	if opts.Profile != nil {
		if _, err := opts.Profile.Write(prof.Bytes()); err != nil {
			return nil, fmt.Errorf("write the CPU profile: %w", err)
		}
	}
	if rep.Direct.CallsPerSec > 0 {
		rep.Ratio = rep.Gateway.CallsPerSec / rep.Direct.CallsPerSec
	}
	rep.AddedP50 = rep.Gateway.P50 - rep.Direct.P50
	rep.AddedP90 = rep.Gateway.P90 - rep.Direct.P90
	rep.AddedP99 = rep.Gateway.P99 - rep.Direct.P99
	rep.AddedP999 = rep.Gateway.P999 - rep.Direct.P999
	rep.AddedAboveFloorP50 = rep.AddedP50 - rep.Floor.P50
	rep.AddedAboveFloorP99 = rep.AddedP99 - rep.Floor.P99
	rep.AddedAllocsPerCall = rep.Gateway.AllocsPerCall - rep.Direct.AllocsPerCall
	rep.AddedCPUPerCall = rep.Gateway.CPUPerCall - rep.Direct.CPUPerCall
	return rep, nil
}

// load is how many clients call, and for how long.
type load struct {
	clients          int
	warmup, duration time.Duration
}

// calls is what the clients send and how they check an answer.
type calls struct {
	request func(id int) []byte
	check   func(status int, body []byte) error
}

// modeCalls are the calls of a mode (through the gateway, denied calls must be denied).
func modeCalls(mode Mode, viaGateway bool) calls {
	return calls{
		request: func(id int) []byte { return request(mode, id) },
		check:   func(status int, body []byte) error { return check(mode, viaGateway, status, body) },
	}
}

// measure runs l.clients clients against url for a warm-up and then l.duration; with prof
// set, a CPU profile of the measured part is written to it.
func measure(ctx context.Context, l load, url, auth string, cs calls, prof *bytes.Buffer) (Phase, error) {
	trans := newTransport(l.clients)
	defer trans.CloseIdleConnections()
	clients := make([]*client, l.clients)
	for i := range clients {
		clients[i] = &client{http: &http.Client{Transport: trans, Timeout: 30 * time.Second}, url: url, auth: auth}
		if err := clients[i].initialize(ctx); err != nil {
			return Phase{}, err
		}
	}
	if _, _, err := drive(ctx, clients, cs, l.warmup); err != nil {
		return Phase{}, err
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return Phase{}, fmt.Errorf("CPU profile: %w", err)
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	lat, errs, err := drive(ctx, clients, cs, l.duration)
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	if prof != nil {
		pprof.StopCPUProfile()
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		return Phase{}, err
	}
	p := Phase{Calls: len(lat), Errors: errs.n, FirstError: errs.first, CallsPerSec: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) == 0 {
		return p, fmt.Errorf("no call succeeded: %s", errs.first)
	}
	slices.Sort(lat)
	p.P50, p.P90, p.P99, p.P999 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), percentile(lat, 0.999)
	n := float64(len(lat) + errs.n)
	p.AllocsPerCall = float64(after.Mallocs-before.Mallocs) / n
	p.BytesPerCall = float64(after.TotalAlloc-before.TotalAlloc) / n
	p.CPUPerCall = float64(cpu) / float64(time.Microsecond) / n
	return p, nil
}

type callErrors struct {
	mu    sync.Mutex
	n     int
	first string
}

// drive makes every client call in a loop for d; it returns the latencies of the calls that
// got the expected answer. More than 1% of wrong answers (or none right) is an error.
func drive(ctx context.Context, clients []*client, cs calls, d time.Duration) ([]time.Duration, *callErrors, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	errs := &callErrors{}
	per := make([][]time.Duration, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<14)
			for id := 1; ctx.Err() == nil; id++ {
				body := cs.request(id)
				t0 := time.Now()
				status, resp, err := c.post(ctx, body)
				took := time.Since(t0)
				if ctx.Err() != nil {
					break // cut off by the end of the phase: not counted
				}
				if err == nil {
					err = cs.check(status, resp)
				}
				if err != nil {
					errs.mu.Lock()
					if errs.n == 0 {
						errs.first = err.Error()
					}
					errs.n++
					errs.mu.Unlock()
					continue
				}
				lat = append(lat, took)
			}
			per[i] = lat
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	if errs.n > 0 && (len(all) == 0 || errs.n*100 > len(all)) {
		return all, errs, fmt.Errorf("%d of %d calls got a wrong answer; first: %s", errs.n, errs.n+len(all), errs.first)
	}
	return all, errs, nil
}

// residentMemory reads VmRSS and VmHWM of this process (Linux; zero elsewhere).
func residentMemory() (rss, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak
}

// cpuTime is the CPU time (user + system) this process used so far (zero where unknown).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var errNoSamples = errors.New("the CPU profile has no samples")
