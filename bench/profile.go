package bench

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/pprof/profile"
)

// Share is the part of the CPU samples spent in one area.
type Share struct {
	Area    string  `json:"area"`
	Percent float64 `json:"percent"`
}

// areas attribute a sample to the first area (from the innermost frame outwards) one of whose
// function-name prefixes a frame matches. SpiceDB answers on its own goroutines (behind an
// in-process gRPC connection), whose stacks hold no trustgate frame: its packages count as
// authorization too.
var areas = []struct {
	name     string
	prefixes []string
}{
	{"JWT verification", []string{"github.com/trustgate/trustgate/accesstoken.(*KeySet).Verify"}},
	{"authorization", []string{"github.com/trustgate/trustgate/authzserver.", "github.com/authzed/"}},
	{"audit append", []string{"github.com/trustgate/trustgate/audit.", "github.com/trustgate/trustgate/store.*AppendAudit"}},
	{"store reads", []string{"github.com/trustgate/trustgate/store.", "database/sql.", "modernc.org/sqlite", "github.com/jackc/pgx"}},
	{"forwarding", []string{"net/http/httputil.(*ReverseProxy)"}},
	{"proxy (rest)", []string{"github.com/trustgate/trustgate/proxy."}},
	{"upstream MCP server", []string{"github.com/modelcontextprotocol/go-sdk/"}},
	{"benchmark clients", []string{"github.com/trustgate/trustgate/bench."}},
}

const areaOther = "other (runtime, GC, HTTP and network I/O)"

// cpuShares attributes the samples of a CPU profile to areas.
func cpuShares(data []byte) ([]Share, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse the CPU profile: %w", err)
	}
	idx := len(p.SampleType) - 1 // cpu nanoseconds
	totals := make([]int64, len(areas)+1)
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		totals[areaOf(s)] += v
	}
	if total == 0 {
		return nil, errNoSamples
	}
	out := make([]Share, 0, len(totals))
	for i, a := range areas {
		out = append(out, Share{Area: a.name, Percent: 100 * float64(totals[i]) / float64(total)})
	}
	out = append(out, Share{Area: areaOther, Percent: 100 * float64(totals[len(areas)]) / float64(total)})
	return out, nil
}

func areaOf(s *profile.Sample) int {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			for i, a := range areas {
				for _, prefix := range a.prefixes {
					if matches(line.Function.Name, prefix) {
						return i
					}
				}
			}
		}
	}
	return len(areas)
}

// matches: name starts with prefix; a "*" in prefix stands for any text.
func matches(name, prefix string) bool {
	before, after, wild := strings.Cut(prefix, "*")
	if !wild {
		return strings.HasPrefix(name, prefix)
	}
	return strings.HasPrefix(name, before) && strings.Contains(name[len(before):], after)
}
