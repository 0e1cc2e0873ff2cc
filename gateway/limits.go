package gateway

// Connection limits.
const (
	// fdReserve is kept free of client connections for the store, SpiceDB, the audit log and
	// the process itself.
	fdReserve = 64
	// maxAutoConnections caps the automatic connection limit (raise it with --max-connections).
	maxAutoConnections = 16384
	// minConnections is the smallest limit accepted.
	minConnections = 16
	// fallbackConnections is the limit when the descriptor limit is unknown.
	fallbackConnections = 4096
)

// defaultMaxConnections is the automatic --max-connections: half of the descriptors left
// after a reserve (every proxied stream holds a client connection and an upstream one),
// between minConnections and maxAutoConnections.
func defaultMaxConnections(fdLimit uint64) int {
	if fdLimit == 0 {
		return fallbackConnections
	}
	if fdLimit <= 2*minConnections+fdReserve {
		return minConnections
	}
	n := (fdLimit - fdReserve) / 2
	if n > maxAutoConnections {
		return maxAutoConnections
	}
	return int(n)
}
