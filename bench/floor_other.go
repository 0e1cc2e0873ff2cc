//go:build !linux

package bench

import (
	"fmt"
	"os"
)

// dataSync flushes f to stable storage (fsync where fdatasync is not available).
func dataSync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}
