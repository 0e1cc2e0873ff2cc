//go:build unix

package gateway

import "syscall"

// openFileLimit is the process's limit on open file descriptors (0: unknown or unlimited).
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) {
		return 0
	}
	return rl.Cur
}
