//go:build !unix

package gateway

// openFileLimit is the process's limit on open file descriptors (0: unknown).
func openFileLimit() uint64 { return 0 }
