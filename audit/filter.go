package audit

import "time"

// Filter selects entries of one host. Empty fields match everything.
type Filter struct {
	Host     string
	UserID   string
	AgentID  string
	Server   string
	Tool     string
	Decision Decision
	// Flag: only entries carrying this anomaly flag.
	Flag string
	// Since and Until bound the entries' time: Since <= Time < Until.
	Since, Until time.Time
	// Descending lists newest first; the cursor is then the sequence number to list below.
	Descending bool
}
