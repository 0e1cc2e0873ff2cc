package sdk

import (
	"errors"
	"net/http"
)

// Error is an answer of the admin API that is not a success: its HTTP status and the RFC 9457
// problem document it carried (or, when it carried none, one made up from the status and a
// bounded snippet of the body). The Problem's fields are promoted: e.Status, e.Type,
// e.Title, e.Detail, e.Instance. Find it with errors.As:
//
//	var e *sdk.Error
//	if errors.As(err, &e) && e.Status == http.StatusNotFound { … }
type Error struct {
	Problem
}

// Error is "<title>: <detail>" (just the title when there is no detail).
func (e *Error) Error() string {
	title := e.Title
	if title == "" {
		title = statusTitle(e.Status)
	}
	if e.Detail == "" {
		return title
	}
	return title + ": " + e.Detail
}

// ProblemNotEnforced is the problem type of a change the gateway saved but whose relationships
// the authorization backend has not applied yet (status 503). The change stands and is applied
// automatically; until then the gateway refuses the host's calls that depend on it. The client
// does not send such a request again: a PUT would change nothing and a DELETE would find the
// object gone (404).
const ProblemNotEnforced = "urn:trustgate:problem:not-enforced"

// IsNotEnforced reports whether err is an *Error of type ProblemNotEnforced: the change was saved
// and is not enforced yet.
func IsNotEnforced(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == ProblemNotEnforced
}

// IsNotFound reports whether err is an *Error with status 404.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsForbidden reports whether err is an *Error with status 403: the token may not do this
// (a host's token on another host, a check-scoped token on an administrative route).
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
