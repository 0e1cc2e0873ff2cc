package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		mode, database, sizes string
		profile, shape, plot  string
		consistency           string
		memProfile            string
		clients, checks       int
		duration              time.Duration
		asJSON, upstreamSSE   bool
		target, token, tool   string
		arguments             string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what the gateway adds to an MCP tool call, or the authorization check as data grows",
		Long: `bench starts an upstream MCP server (the official Go SDK), a gateway in this
process (the embedded default in a temporary directory, or --database), sets up a
host, a human and an agent through the real OAuth flow, and then drives --clients
concurrent MCP clients for --duration, once directly against the upstream and once
through the gateway. It prints throughput, latency percentiles, the added latency,
allocations, memory and where the CPU went.

Modes: allowed (tools/call echo), denied (every call denied by the gateway),
list (tools/list of 200 tools, filtered), large (a tool answering 64 KiB), and
sweep (the authorization check at 10^3..10^5 generated relationships, --sizes for
more; on SpiceDB's memory datastore, or PostgreSQL with --database; no gateway).

Before the run it times 4 KiB writes with fdatasync in the gateway's data directory
and reports them as the floor of the added latency (the audit commit's fsync).

With --target URL it sets nothing up: the same clients drive any MCP endpoint
(another gateway, a server directly) with tools/call of --tool (default: the first
tool tools/list returns) and --arguments, sending --token as a bearer token, so
that runs can be compared side by side.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if target != "" {
				for _, name := range []string{"mode", "database", "upstream-sse", "cpu-profile", "mem-profile", "sizes", "checks", "shape", "plot"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s does not apply to --target", name)
					}
				}
				if clients <= 0 || clients > 4096 {
					return fmt.Errorf("--clients %d: want 1 to 4096", clients)
				}
				if duration <= 0 || duration > time.Hour {
					return fmt.Errorf("--duration %s: want up to 1h", duration)
				}
				rep, err := bench.RunTarget(cmd.Context(), bench.TargetOptions{URL: target, Token: token, Tool: tool,
					Arguments: json.RawMessage(arguments), Clients: clients, Duration: duration})
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(out).Encode(rep)
				}
				return rep.WriteTable(out)
			}
			for _, name := range []string{"token", "tool", "arguments"} {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s applies only to --target", name)
				}
			}
			if plot != "" && mode != "sweep" {
				return fmt.Errorf("--plot applies only to --mode sweep")
			}
			if memProfile != "" && mode != "sweep" {
				return fmt.Errorf("--mem-profile applies only to --mode sweep")
			}
			if mode == "sweep" {
				var sz []int
				for f := range strings.SplitSeq(sizes, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil || n <= 0 {
						return fmt.Errorf("--sizes %q: want comma-separated positive numbers", sizes)
					}
					sz = append(sz, n)
				}
				opts := bench.SweepOptions{Sizes: sz, Checks: checks, DatastoreURI: database, Shape: shape, Consistency: consistency}
				if profile != "" {
					f, err := os.Create(profile)
					if err != nil {
						return fmt.Errorf("--cpu-profile: %w", err)
					}
					defer f.Close()
					opts.Profile = f
				}
				if memProfile != "" {
					f, err := os.Create(memProfile)
					if err != nil {
						return fmt.Errorf("--mem-profile: %w", err)
					}
					defer f.Close()
					opts.MemProfile = f
				}
				if !asJSON {
					opts.Progress = cmd.ErrOrStderr()
				}
				points, err := bench.Sweep(cmd.Context(), opts)
				if err != nil {
					return err
				}
				if plot != "" {
					if err := writePlot(plot, shape, database != "", points); err != nil {
						return err
					}
				}
				if asJSON {
					return json.NewEncoder(out).Encode(points)
				}
				return bench.WriteSweepTable(out, points)
			}
			m, err := bench.ParseMode(mode)
			if err != nil {
				return err
			}
			if clients <= 0 || clients > 4096 {
				return fmt.Errorf("--clients %d: want 1 to 4096", clients)
			}
			if duration <= 0 || duration > time.Hour {
				return fmt.Errorf("--duration %s: want up to 1h", duration)
			}
			opts := bench.Options{Mode: m, Clients: clients, Duration: duration, Database: database, UpstreamSSE: upstreamSSE}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return fmt.Errorf("--cpu-profile: %w", err)
				}
				defer f.Close()
				opts.Profile = f
			}
			rep, err := bench.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(out).Encode(rep)
			}
			return rep.WriteTable(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "allowed", "allowed, denied, list, large or sweep")
	f.IntVar(&clients, "clients", 32, "concurrent MCP clients")
	f.DurationVar(&duration, "duration", 10*time.Second, "measured time of each side (direct, gateway), after a warm-up of up to 1s")
	f.StringVar(&database, "database", "", "a scratch PostgreSQL database for the gateway's store and SpiceDB (default: the embedded default in a temporary directory)")
	f.StringVar(&sizes, "sizes", "1000,10000,100000", "sweep: relationship counts (add 1000000 for 10^6: minutes on the memory datastore)")
	f.IntVar(&checks, "checks", 2000, "sweep: checks measured per size and kind")
	f.StringVar(&shape, "shape", bench.ShapeHosts, "sweep: hosts (many small hosts) or large-host (one host: 10^4 humans, 2×10^4 agents, 50 servers × 40 tools)")
	f.StringVar(&consistency, "consistency", bench.ConsistencyFull, "sweep: how the uncached checks ask SpiceDB: full (fully consistent, as the gateway does) or token (at least as fresh as the load's last write)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&plot, "plot", "", "sweep: also draw the check's latency against the relationships as a PNG in this file")
	f.StringVar(&profile, "cpu-profile", "", "write the CPU profile of the gateway phase (sweep: of the largest size's uncached checks) to this file (go tool pprof)")
	f.StringVar(&memProfile, "mem-profile", "", "sweep: write the heap profile of the largest size, its data loaded, to this file (go tool pprof -sample_index=inuse_space)")
	f.BoolVar(&upstreamSSE, "upstream-sse", false, "the bundled upstream answers each POST with an SSE stream (as the official SDKs do by default) instead of JSON")
	f.StringVar(&target, "target", "", "drive this MCP endpoint (Streamable HTTP) instead of setting up an upstream and a gateway")
	f.StringVar(&token, "token", "", "target: bearer token sent to --target (never printed)")
	f.StringVar(&tool, "tool", "", "target: the tool to call (default: the first one tools/list returns)")
	f.StringVar(&arguments, "arguments", "{}", "target: the tool's arguments, a JSON object")
	return cmd
}

// writePlot draws the sweep's points as a PNG in file, titled with the shape and datastore.
func writePlot(file, shape string, postgres bool, points []bench.SweepPoint) (err error) {
	datastore := "memory datastore"
	if postgres {
		datastore = "PostgreSQL datastore"
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--plot: %w", cerr)
		}
	}()
	return bench.WriteSweepPlot(f, fmt.Sprintf("authorization check, %s shape, %s", shape, datastore), points)
}
