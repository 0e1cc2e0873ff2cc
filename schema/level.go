package schema

import (
	"fmt"
	"strings"
)

// Level is a trust level: what an agent may do on a server, and what a tool requires.
// Levels are ordered: Low < Medium < High. The zero value is not a valid level.
type Level int

const (
	// Low: read-only tools.
	Low Level = iota + 1
	// Medium: tools that create or change data.
	Medium
	// High: destructive tools.
	High
)

// Levels lists the valid levels in ascending order.
var Levels = []Level{Low, Medium, High}

func (l Level) String() string {
	switch l {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	default:
		return fmt.Sprintf("level(%d)", int(l))
	}
}

// Valid reports whether l is one of Low, Medium, High.
func (l Level) Valid() bool { return l >= Low && l <= High }

// ParseLevel reads "low", "medium" or "high" (any case, surrounding spaces ignored).
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low":
		return Low, nil
	case "medium":
		return Medium, nil
	case "high":
		return High, nil
	}
	return 0, fmt.Errorf("unknown trust level %q: want low, medium or high", s)
}

// MarshalText renders the level as its name.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("invalid trust level %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// MinLevel returns the lower of two levels.
func MinLevel(a, b Level) Level {
	if a < b {
		return a
	}
	return b
}
