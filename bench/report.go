package bench

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/trustgate/trustgate/store"
)

// WriteTable prints the report as a table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	answers := "JSON"
	if r.UpstreamSSE {
		answers = "SSE"
	}
	fmt.Fprintf(w, "trustgate bench: mode %s, %d clients, %s per side, store %s, upstream answers %s, %d CPUs, %s\n\n",
		r.Mode, r.Clients, r.Duration, r.Store, answers, r.CPUs, r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(tw, "\tdirect\tgateway\tgateway-direct\t\n")
	fmt.Fprintf(tw, "calls/s\t%.0f\t%.0f\t%.0f%% of direct\t\n", r.Direct.CallsPerSec, r.Gateway.CallsPerSec, 100*r.Ratio)
	row := func(name string, d, g, added float64) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, ms(d), ms(g), ms(added))
	}
	row("p50", r.Direct.P50, r.Gateway.P50, r.AddedP50)
	row("p90", r.Direct.P90, r.Gateway.P90, r.AddedP90)
	row("p99", r.Direct.P99, r.Gateway.P99, r.AddedP99)
	row("p99.9", r.Direct.P999, r.Gateway.P999, r.AddedP999)
	fmt.Fprintf(tw, "CPU/call\t%s\t%s\t%s\t\n", ms(r.Direct.CPUPerCall), ms(r.Gateway.CPUPerCall), ms(r.AddedCPUPerCall))
	fmt.Fprintf(tw, "allocs/call\t%.0f\t%.0f\t%.0f\t\n", r.Direct.AllocsPerCall, r.Gateway.AllocsPerCall, r.AddedAllocsPerCall)
	fmt.Fprintf(tw, "KiB alloc/call\t%.1f\t%.1f\t%.1f\t\n", r.Direct.BytesPerCall/1024, r.Gateway.BytesPerCall/1024, (r.Gateway.BytesPerCall-r.Direct.BytesPerCall)/1024)
	fmt.Fprintf(tw, "calls (errors)\t%d (%d)\t%d (%d)\t\t\n", r.Direct.Calls, r.Direct.Errors, r.Gateway.Calls, r.Gateway.Errors)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nfsync floor (%d writes of 4 KiB + fdatasync in the gateway's data directory): p50 %s, p99 %s\n",
		r.Floor.Samples, ms(r.Floor.P50), ms(r.Floor.P99))
	if r.Store != store.EngineSQLite {
		fmt.Fprintf(w, "  (the store is %s: its server's own commit latency is the floor of the audit commit)\n", r.Store)
	}
	fmt.Fprintf(w, "added latency: p50 %s (%s above the floor), p99 %s (%s above the floor)\n",
		ms(r.AddedP50), ms(r.AddedAboveFloorP50), ms(r.AddedP99), ms(r.AddedAboveFloorP99))
	fmt.Fprintf(w, "\nresident memory of the whole process (gateway + upstream + clients): %.0f MiB (peak %.0f MiB, Go heap %.0f MiB)\n",
		mib(r.RSSBytes), mib(r.PeakRSSBytes), mib(r.HeapBytes))
	fmt.Fprintf(w, "\nCPU through the gateway (share of all samples of the process):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range r.CPU {
		fmt.Fprintf(tw, "  %s\t%5.1f%%\n", s.Area, s.Percent)
	}
	return tw.Flush()
}

func ms(us float64) string { return fmt.Sprintf("%.3f ms", us/1000) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
