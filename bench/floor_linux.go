package bench

import (
	"fmt"
	"os"
	"syscall"
)

// dataSync flushes f's data (not its metadata unless needed to read it back), as SQLite's WAL
// commit does.
func dataSync(f *os.File) error {
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync: %w", err)
	}
	return nil
}
