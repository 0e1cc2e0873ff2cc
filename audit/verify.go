package audit

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Scanner reads a host's chain: fn gets the entries with Seq >= fromSeq in sequence order,
// one at a time (the store streams them; memory stays bounded).
type Scanner interface {
	ScanAudit(ctx context.Context, host string, fromSeq int64, fn func(Entry) error) error
}

// BrokenError names the first entry of a chain that does not verify.
type BrokenError struct {
	Host string
	// Seq is the sequence number of the first broken entry: the edited row, or the row after
	// a deleted one (or, when the end of the chain was cut, the first missing sequence number).
	Seq    int64
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit log of host %q is broken at entry %d: %s", e.Host, e.Seq, e.Reason)
}

// ErrBroken is matched by every *BrokenError (errors.Is).
var ErrBroken = errors.New("audit chain broken")

func (e *BrokenError) Is(target error) bool { return target == ErrBroken }

// Summary is what a verification walked.
type Summary struct {
	Host     string
	Entries  int64
	LastSeq  int64
	LastHash string
}

// Verify walks the whole chain of host and returns the first broken entry as a *BrokenError:
// an entry whose hash is not the hash of its content (edited), whose sequence number does not
// follow the previous one, or whose prev_hash is not the previous entry's hash (deleted or
// inserted rows). When head is not nil (the store's record of the last entry), a chain that
// ends before it was cut at the end. Other errors are read failures.
func Verify(ctx context.Context, s Scanner, host string, head *Head) (Summary, error) {
	res := Summary{Host: host}
	var broken *BrokenError
	err := s.ScanAudit(ctx, host, 1, func(e Entry) error {
		want := res.LastSeq + 1
		switch {
		case e.Seq != want:
			broken = &BrokenError{Host: host, Seq: want, Reason: fmt.Sprintf("entry %d is missing (the next entry is %d): rows were deleted", want, e.Seq)}
		case !equalHash(e.PrevHash, res.LastHash):
			broken = &BrokenError{Host: host, Seq: e.Seq, Reason: "its prev_hash is not the hash of the entry before it: rows were deleted, inserted or edited"}
		default:
			h, err := ComputeHash(e.PrevHash, e)
			if err != nil {
				broken = &BrokenError{Host: host, Seq: e.Seq, Reason: err.Error()}
			} else if !equalHash(h, e.Hash) {
				broken = &BrokenError{Host: host, Seq: e.Seq, Reason: "its content does not match its hash: the row was edited"}
			}
		}
		if broken != nil {
			return broken
		}
		res.Entries++
		res.LastSeq, res.LastHash = e.Seq, e.Hash
		return nil
	})
	if broken != nil {
		return res, broken
	}
	if err != nil {
		return res, fmt.Errorf("read audit log of host %q: %w", host, err)
	}
	if head != nil {
		switch {
		case head.Seq > res.LastSeq:
			return res, &BrokenError{Host: host, Seq: res.LastSeq + 1, Reason: fmt.Sprintf("the log ends at entry %d but %d entries were written: the last rows were deleted", res.LastSeq, head.Seq)}
		case head.Seq == res.LastSeq && !equalHash(head.Hash, res.LastHash):
			return res, &BrokenError{Host: host, Seq: res.LastSeq, Reason: "the last entry is not the one that was written"}
		}
	}
	return res, nil
}

func equalHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
