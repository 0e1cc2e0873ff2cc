package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"
)

// Floor is the durable-write latency of a directory: what one audit commit cannot go below.
type Floor struct {
	Samples int `json:"samples"`
	// Latencies of one 4 KiB write followed by fdatasync, microseconds.
	P50 float64 `json:"p50_us"`
	P99 float64 `json:"p99_us"`
}

// floorBlock is the size of each write of MeasureFloor, about one SQLite WAL frame.
const floorBlock = 4 << 10

// MeasureFloor writes 4 KiB and fdatasyncs it samples times in a temporary file in dir (the
// gateway's data directory), and returns the percentiles of the pairs. The file is removed.
func MeasureFloor(ctx context.Context, dir string, samples int) (_ Floor, err error) {
	if samples <= 0 {
		return Floor{}, fmt.Errorf("fsync floor: %d samples: want at least 1", samples)
	}
	f, err := os.CreateTemp(dir, "fsync-floor-*")
	if err != nil {
		return Floor{}, fmt.Errorf("fsync floor: %w", err)
	}
	defer func() {
		f.Close()
		if rmErr := os.Remove(f.Name()); rmErr != nil && err == nil {
			err = fmt.Errorf("fsync floor: %w", rmErr)
		}
	}()
	block := make([]byte, floorBlock)
	_, _ = rand.Read(block)
	lat := make([]time.Duration, 0, samples)
	for range samples {
		if err := ctx.Err(); err != nil {
			return Floor{}, fmt.Errorf("fsync floor: %w", err)
		}
		t0 := time.Now()
		if _, err := f.Write(block); err != nil {
			return Floor{}, fmt.Errorf("fsync floor: write: %w", err)
		}
		if err := dataSync(f); err != nil {
			return Floor{}, fmt.Errorf("fsync floor: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return Floor{Samples: samples, P50: percentile(lat, 0.50), P99: percentile(lat, 0.99)}, nil
}
