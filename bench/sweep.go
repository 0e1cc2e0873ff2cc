package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// The generator's shape of one host: per host, humans, each with agentsPerHuman agents, servers
// with toolsPerServer tools, a ceiling for every human on every server and a consent for every
// agent on every server. That is tuplesPerHost relationships of the real schema.
const (
	humansPerHost  = 10
	agentsPerHuman = 2
	serversPerHost = 5
	toolsPerServer = 20
	tuplesPerHost  = humansPerHost + humansPerHost*agentsPerHuman*3 + serversPerHost + serversPerHost*toolsPerServer +
		2*humansPerHost*agentsPerHuman*serversPerHost
)

// DefaultSweepSizes are the relationship counts of a sweep. 10^6 is opt-in (Sizes): on the
// memory datastore loading it alone takes minutes on two cores.
var DefaultSweepSizes = []int{1_000, 10_000, 100_000}

// sweepBudget bounds the time the uncached checks of one size take (at least minChecks run).
const (
	sweepBudget = 10 * time.Second
	minChecks   = 50
)

// SweepPoint is the check latency at one data size, in microseconds.
type SweepPoint struct {
	Tuples   int     `json:"tuples"`
	LoadSecs float64 `json:"load_seconds"`
	// Uncached: each check a random (agent, tool) through SpiceDB, fully consistent.
	UncachedP50 float64 `json:"uncached_p50_us"`
	UncachedP99 float64 `json:"uncached_p99_us"`
	// Cached: the same through the decision cache, warm.
	CachedP50 float64 `json:"cached_p50_us"`
	CachedP99 float64 `json:"cached_p99_us"`
	Allowed   float64 `json:"allowed_share"`
	// UncachedCPU is the process's CPU time (user and system, every goroutine: SpiceDB, the
	// datastore's driver, GC) per uncached check, in microseconds.
	UncachedCPU float64 `json:"uncached_cpu_us"`
	// RSSBytes is the process's resident memory with this data loaded.
	RSSBytes int64 `json:"rss_bytes"`
	// HeapBytes is the Go heap live after a collection with this data loaded (RSS less what
	// the runtime keeps for growth and has not yet returned to the system, stacks and code).
	HeapBytes int64 `json:"heap_bytes"`
}

// Generate calls fn with the relationships of host number i (the hosts are disjoint).
func Generate(i int, fn func([]authzserver.Update) error) error {
	host := "h" + strconv.Itoa(i)
	var rels []schema.Relationship
	for h := range humansPerHost {
		user := "u" + strconv.Itoa(h)
		rels = append(rels, schema.HostMember(host, user))
		for a := range agentsPerHuman {
			rels = append(rels, schema.AgentTuples(host, agentID(h, a), user)...)
		}
	}
	for s := range serversPerHost {
		srv := "s" + strconv.Itoa(s)
		rels = append(rels, schema.ServerHost(host, srv))
		for t := range toolsPerServer {
			rels = append(rels, schema.ToolLevel(host, srv, toolName(t), schema.Level(1+t%3)))
		}
		for h := range humansPerHost {
			// A consent, and the agent's copy of its human's ceiling, as the store writes them.
			for a := range agentsPerHuman {
				rels = append(rels, schema.Grant(host, srv, agentID(h, a), schema.Level(1+(h+a+s)%3)),
					schema.Ceiling(host, srv, agentID(h, a), schema.Level(1+(h+s)%3)))
			}
		}
	}
	updates := make([]authzserver.Update, len(rels))
	for j, r := range rels {
		updates[j] = authzserver.Update{Op: authzserver.OpTouch, Relationship: r}
	}
	return fn(updates)
}

func agentID(human, n int) string { return "a" + strconv.Itoa(human) + "_" + strconv.Itoa(n) }
func toolName(n int) string       { return "tool_" + strconv.Itoa(n) }

// Load writes at least tuples relationships into the backend; it returns how many.
func Load(ctx context.Context, b authzserver.Backend, tuples int) (int, error) {
	return generateHosts(tuples, writeBatches(ctx, b))
}

// loadBatch is how many relationships the generators hand on at once: SpiceDB takes up to 1000
// updates per WriteRelationships request.
const loadBatch = 900

// writeBatches hands each batch of relationships to WriteRelationships.
func writeBatches(ctx context.Context, b authzserver.Backend) func([]schema.Relationship) error {
	return writeBatchesAt(ctx, b, new(authzserver.Revision))
}

// writeBatchesAt is writeBatches that keeps the revision of the last write in rev.
func writeBatchesAt(ctx context.Context, b authzserver.Backend, rev *authzserver.Revision) func([]schema.Relationship) error {
	return func(rels []schema.Relationship) error {
		updates := make([]authzserver.Update, len(rels))
		for i, r := range rels {
			updates[i] = authzserver.Update{Op: authzserver.OpTouch, Relationship: r}
		}
		r, err := b.WriteRelationships(ctx, updates)
		if err != nil {
			return fmt.Errorf("load relationships: %w", err)
		}
		*rev = r
		return nil
	}
}

// writeAll loads what gen generates through WriteRelationships; it returns how many and the
// revision of the last write.
func writeAll(ctx context.Context, b *authzserver.SpiceDB, gen func(sink func([]schema.Relationship) error) (int, error)) (int, authzserver.Revision, error) {
	var rev authzserver.Revision
	n, err := gen(writeBatchesAt(ctx, b, &rev))
	return n, rev, err
}

// generateHosts hands at least tuples relationships of disjoint hosts to sink, a few hosts at a
// time; it returns how many.
func generateHosts(tuples int, sink func([]schema.Relationship) error) (int, error) {
	hosts := max(1, (tuples+tuplesPerHost-1)/tuplesPerHost)
	var batch []schema.Relationship
	for i := range hosts {
		if err := Generate(i, func(u []authzserver.Update) error {
			for _, x := range u {
				batch = append(batch, x.Relationship)
			}
			return nil
		}); err != nil {
			return 0, err
		}
		if len(batch) >= loadBatch || i == hosts-1 {
			if err := sink(batch); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	return hosts * tuplesPerHost, nil
}

// randomCheck is a tool call of a random agent on a random tool of a random host in [0, hosts).
func randomCheck(r *rand.Rand, hosts int) authzserver.CheckRequest {
	host := "h" + strconv.Itoa(r.IntN(hosts))
	return authzserver.CheckRequest{
		Resource:   schema.Tool(host, "s"+strconv.Itoa(r.IntN(serversPerHost)), toolName(r.IntN(toolsPerServer))),
		Permission: schema.PermToolCall,
		Subject:    schema.SubjectRef{Object: schema.Agent(host, agentID(r.IntN(humansPerHost), r.IntN(agentsPerHuman)))},
	}
}

// SweepOptions configure Sweep.
type SweepOptions struct {
	Sizes []int // default DefaultSweepSizes
	// Checks per size and kind (default 2000; the uncached ones stop after 10s, but not
	// before 50).
	Checks int
	// DatastoreURI, when set, is a scratch PostgreSQL database for SpiceDB (each size in a
	// schema of its own, dropped afterwards); empty is the memory datastore.
	DatastoreURI string
	// Shape is ShapeHosts (default: many small hosts) or ShapeLargeHost (one host).
	Shape string
	// LargeHumans is the large host's number of humans (default DefaultLargeHumans); a smaller
	// host of the same shape loads faster (tests).
	LargeHumans int
	// Consistency is how the uncached checks ask SpiceDB: ConsistencyFull (default) or
	// ConsistencyToken.
	Consistency string
	// Profile, when set, receives the CPU profile of the uncached checks of the last size.
	Profile io.Writer
	// MemProfile, when set, receives the heap profile of the last size, taken after its
	// checks while its data is still loaded (go tool pprof -sample_index=inuse_space).
	MemProfile io.Writer
	// Progress, when set, gets a line per size as it completes.
	Progress io.Writer
}

// Shapes of the sweep's data.
const (
	// ShapeHosts: disjoint hosts of the generator's host shape, as many as the size needs.
	ShapeHosts = "hosts"
	// ShapeLargeHost: one host with 10^4 humans, 2×10^4 agents and 50 servers of 40 tools;
	// each human has a ceiling, and each agent a consent, on as many servers as the size
	// needs (at least one: the smallest size of this shape is about 10^5 relationships).
	ShapeLargeHost = "large-host"
)

// Consistencies of the sweep's uncached checks.
const (
	// ConsistencyFull: fully consistent, as trustgate checks (SpiceDB reads the datastore's
	// head revision for every check).
	ConsistencyFull = "full"
	// ConsistencyToken: at least as fresh as the load's last write (its ZedToken), as a
	// check would be if every relationship write recorded its token for every replica:
	// SpiceDB may then answer at its quantized revision without a head-revision query.
	ConsistencyToken = "token"
)

// The large host's shape.
const (
	// DefaultLargeHumans is the large host's humans unless SweepOptions.LargeHumans says.
	DefaultLargeHumans = 10_000
	largeServers       = 50
	largeTools         = 40
)

// largeBase is the large host's relationships without ceilings and consents.
func largeBase(humans int) int {
	return humans + humans*agentsPerHuman*3 + largeServers + largeServers*largeTools
}

// largePerServer is what one more server per human adds: per agent a consent and its copy of its
// human's ceiling.
func largePerServer(humans int) int { return 2 * humans * agentsPerHuman }

// largeServersPerHuman is how many servers each human of the large host has a ceiling on.
func largeServersPerHuman(tuples, humans int) int {
	per := largePerServer(humans)
	return min(largeServers, max(1, (tuples-largeBase(humans)+per/2)/per))
}

// LoadLargeHost writes the large host's relationships, humans humans with k servers each; it
// returns how many.
func LoadLargeHost(ctx context.Context, b authzserver.Backend, humans, k int) (int, error) {
	return generateLargeHost(humans, k, writeBatches(ctx, b))
}

// generateLargeHost hands the large host's relationships to sink in batches; it returns how many.
func generateLargeHost(humans, k int, sink func([]schema.Relationship) error) (int, error) {
	const host = "big"
	var batch []schema.Relationship
	n := 0
	flush := func(force bool) error {
		if len(batch) < loadBatch && !force {
			return nil
		}
		if len(batch) > 0 {
			if err := sink(batch); err != nil {
				return err
			}
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	add := func(rels ...schema.Relationship) error {
		batch = append(batch, rels...)
		return flush(false)
	}
	for s := range largeServers {
		srv := "s" + strconv.Itoa(s)
		if err := add(schema.ServerHost(host, srv)); err != nil {
			return n, err
		}
		for t := range largeTools {
			if err := add(schema.ToolLevel(host, srv, toolName(t), schema.Level(1+t%3))); err != nil {
				return n, err
			}
		}
	}
	for h := range humans {
		user := "u" + strconv.Itoa(h)
		if err := add(schema.HostMember(host, user)); err != nil {
			return n, err
		}
		for a := range agentsPerHuman {
			if err := add(schema.AgentTuples(host, agentID(h, a), user)...); err != nil {
				return n, err
			}
		}
		for j := range k {
			s := (h + j) % largeServers
			srv := "s" + strconv.Itoa(s)
			for a := range agentsPerHuman {
				if err := add(schema.Grant(host, srv, agentID(h, a), schema.Level(1+(h+a+s)%3)),
					schema.Ceiling(host, srv, agentID(h, a), schema.Level(1+(h+s)%3))); err != nil {
					return n, err
				}
			}
		}
	}
	return n, flush(true)
}

// randomLargeCheck is a tool call of a random agent of the large host: three times in four on
// a server its human has a ceiling on, else on any server.
func randomLargeCheck(r *rand.Rand, humans, k int) authzserver.CheckRequest {
	h := r.IntN(humans)
	s := r.IntN(largeServers)
	if r.IntN(4) > 0 {
		s = (h + r.IntN(k)) % largeServers
	}
	return authzserver.CheckRequest{
		Resource:   schema.Tool("big", "s"+strconv.Itoa(s), toolName(r.IntN(largeTools))),
		Permission: schema.PermToolCall,
		Subject:    schema.SubjectRef{Object: schema.Agent("big", agentID(h, r.IntN(agentsPerHuman)))},
	}
}

// Sweep loads each size of generated relationships into a fresh embedded SpiceDB (memory
// datastore) and measures the tool-call check, uncached and through the decision cache.
func Sweep(ctx context.Context, opts SweepOptions) ([]SweepPoint, error) {
	if len(opts.Sizes) == 0 {
		opts.Sizes = DefaultSweepSizes
	}
	if opts.Checks <= 0 {
		opts.Checks = 2000
	}
	switch opts.Shape {
	case "":
		opts.Shape = ShapeHosts
	case ShapeHosts, ShapeLargeHost:
	default:
		return nil, fmt.Errorf("unknown sweep shape %q (want %s or %s)", opts.Shape, ShapeHosts, ShapeLargeHost)
	}
	switch opts.Consistency {
	case "":
		opts.Consistency = ConsistencyFull
	case ConsistencyFull, ConsistencyToken:
	default:
		return nil, fmt.Errorf("unknown sweep consistency %q (want %s or %s)", opts.Consistency, ConsistencyFull, ConsistencyToken)
	}
	var out []SweepPoint
	for i, size := range opts.Sizes {
		o := opts
		if i < len(opts.Sizes)-1 {
			o.Profile, o.MemProfile = nil, nil // the largest size's profiles only
		}
		p, err := sweepOne(ctx, size, o)
		if err != nil {
			return out, fmt.Errorf("%d tuples: %w", size, err)
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%d tuples loaded in %.1fs: uncached p50 %.0f µs p99 %.0f µs (CPU %.0f µs a check), cached p50 %.1f µs p99 %.1f µs\n",
				p.Tuples, p.LoadSecs, p.UncachedP50, p.UncachedP99, p.UncachedCPU, p.CachedP50, p.CachedP99)
		}
		out = append(out, p)
	}
	return out, nil
}

func sweepOne(ctx context.Context, size int, opts SweepOptions) (_ SweepPoint, err error) {
	checks, pgURI := opts.Checks, opts.DatastoreURI
	cfg := authzserver.EmbeddedConfig{}
	if pgURI != "" {
		uri, drop, err := scratchSchema(ctx, pgURI)
		if err != nil {
			return SweepPoint{}, err
		}
		defer func() { err = errors.Join(err, drop()) }()
		cfg = authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri}
	}
	b, err := authzserver.StartEmbedded(ctx, cfg)
	if err != nil {
		return SweepPoint{}, err
	}
	defer b.Close()
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		return SweepPoint{}, err
	}
	// PostgreSQL loads through the bulk import (a COPY, several times faster); the memory
	// datastore through WriteRelationships, which it loads as fast, with less memory.
	load := writeAll
	if pgURI != "" {
		load = importAll
	}
	start := time.Now()
	var n int
	var rev authzserver.Revision
	var next func(*rand.Rand) authzserver.CheckRequest
	if opts.Shape == ShapeLargeHost {
		humans := cmp.Or(opts.LargeHumans, DefaultLargeHumans)
		k := largeServersPerHuman(size, humans)
		n, rev, err = load(ctx, b, func(sink func([]schema.Relationship) error) (int, error) {
			return generateLargeHost(humans, k, sink)
		})
		next = func(r *rand.Rand) authzserver.CheckRequest { return randomLargeCheck(r, humans, k) }
	} else {
		n, rev, err = load(ctx, b, func(sink func([]schema.Relationship) error) (int, error) {
			return generateHosts(size, sink)
		})
		hosts := n / tuplesPerHost
		next = func(r *rand.Rand) authzserver.CheckRequest { return randomCheck(r, hosts) }
	}
	if err != nil {
		return SweepPoint{}, err
	}
	// PostgreSQL plans the checks' statements with the statistics of the table SpiceDB's
	// migration analyzed empty until autovacuum analyzes it again, which on a busy server can
	// take minutes after a load: until then single lookups can take a second (measured: p50
	// 240 to 270 ms a check with one large host at 10^6). The checks are measured with the
	// statistics autovacuum would have gathered, not in that window, as the gateway does
	// after a reconciliation (RefreshStatistics does nothing on the memory datastore).
	if err := b.RefreshStatistics(ctx); err != nil {
		return SweepPoint{}, err
	}
	p := SweepPoint{Tuples: n, LoadSecs: time.Since(start).Seconds()}
	cache, err := authzserver.NewDecisionCache(ctx, b, 0)
	if err != nil {
		return SweepPoint{}, err
	}
	r := rand.New(rand.NewPCG(1, uint64(size)))
	allowed := 0
	uncached := make([]time.Duration, 0, checks)
	stopProfile := func() {}
	if opts.Profile != nil {
		if err := pprof.StartCPUProfile(opts.Profile); err != nil {
			return p, fmt.Errorf("start the CPU profile: %w", err)
		}
		stopProfile = sync.OnceFunc(pprof.StopCPUProfile)
		defer stopProfile()
	}
	began, cpuBegan := time.Now(), cpuTime()
	for i := range checks {
		if i >= minChecks && time.Since(began) > sweepBudget {
			break
		}
		req := next(r)
		if opts.Consistency == ConsistencyToken {
			req.AtLeastAsFresh = rev
		}
		t0 := time.Now()
		ok, err := b.Check(ctx, req)
		uncached = append(uncached, time.Since(t0))
		if err != nil {
			return p, err
		}
		if ok {
			allowed++
		}
	}
	p.UncachedCPU = float64(cpuTime()-cpuBegan) / float64(time.Microsecond) / float64(len(uncached))
	stopProfile()
	// The cache's working set: 100 questions, asked once to fill it (at large sizes each
	// costs what an uncached check does).
	set := make([]authzserver.CheckRequest, 100)
	for i := range set {
		set[i] = next(r)
		if _, err := cache.Check(ctx, set[i]); err != nil {
			return p, err
		}
	}
	cached := make([]time.Duration, 0, checks)
	for i := range checks {
		t0 := time.Now()
		_, err := cache.Check(ctx, set[i%len(set)])
		cached = append(cached, time.Since(t0))
		if err != nil {
			return p, err
		}
	}
	p.UncachedP50, p.UncachedP99 = percentile(uncached, 0.5), percentile(uncached, 0.99)
	p.CachedP50, p.CachedP99 = percentile(cached, 0.5), percentile(cached, 0.99)
	p.Allowed = float64(allowed) / float64(len(uncached))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.HeapBytes = int64(ms.HeapAlloc)
	p.RSSBytes, _ = residentMemory()
	if opts.MemProfile != nil {
		if err := pprof.Lookup("heap").WriteTo(opts.MemProfile, 0); err != nil {
			return p, fmt.Errorf("write the heap profile: %w", err)
		}
	}
	return p, nil
}

// importAll loads what gen generates through SpiceDB's bulk import (on PostgreSQL a COPY),
// importPerStream relationships per import, then touches the last relationship again: that
// write's revision contains the whole load.
func importAll(ctx context.Context, b *authzserver.SpiceDB, gen func(sink func([]schema.Relationship) error) (int, error)) (int, authzserver.Revision, error) {
	var imp *authzserver.Import
	inImport := 0
	var last schema.Relationship
	n, err := gen(func(rels []schema.Relationship) error {
		if len(rels) == 0 {
			return nil
		}
		if imp == nil {
			var err error
			if imp, err = b.StartImport(ctx); err != nil {
				return err
			}
		}
		if err := imp.Send(rels); err != nil {
			imp = nil
			return err
		}
		last = rels[len(rels)-1]
		if inImport += len(rels); inImport >= importPerStream {
			_, err := imp.Close()
			imp, inImport = nil, 0
			return err
		}
		return nil
	})
	if err == nil && imp != nil {
		_, err = imp.Close()
	} else if imp != nil {
		imp.Abort()
	}
	if err != nil {
		return 0, "", fmt.Errorf("load relationships: %w", err)
	}
	rev, err := b.WriteRelationships(ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: last}})
	if err != nil {
		return 0, "", fmt.Errorf("load relationships: %w", err)
	}
	return n, rev, nil
}

// importPerStream is how many relationships one bulk import of the sweep's loader holds: SpiceDB
// ends an import stream after 30 s, and 10^5 took up to 16 s on a busy two-core machine.
const importPerStream = 20_000

// scratchSchema creates a schema of its own in the PostgreSQL database and returns the URI that
// uses it, and a function that drops it.
func scratchSchema(ctx context.Context, uri string) (string, func() error, error) {
	name := "trustgate_sweep_" + randomHex(6)
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return "", nil, fmt.Errorf("connect to the sweep database: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		_ = conn.Close(ctx)
		return "", nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		_ = conn.Close(ctx)
		return "", nil, fmt.Errorf("parse the sweep database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	drop := func() error {
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

// percentile of durations, in microseconds (sorts d).
func percentile(d []time.Duration, q float64) float64 {
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Microsecond)
}

// WriteSweepTable prints sweep results.
func WriteSweepTable(w io.Writer, points []SweepPoint) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "tuples\tload\tuncached p50\tuncached p99\tCPU a check\tcached p50\tcached p99\tallowed\tRSS\tlive heap\t\n")
	for _, p := range points {
		fmt.Fprintf(tw, "%d\t%.1fs\t%.0f µs\t%.0f µs\t%.0f µs\t%.1f µs\t%.1f µs\t%.0f%%\t%.0f MiB\t%.0f MiB\t\n", p.Tuples, p.LoadSecs,
			p.UncachedP50, p.UncachedP99, p.UncachedCPU, p.CachedP50, p.CachedP99, 100*p.Allowed, mib(p.RSSBytes), mib(p.HeapBytes))
	}
	return tw.Flush()
}
