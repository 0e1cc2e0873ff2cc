package admin

import (
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/trustgate/trustgate/sdk"
)

// A change saved but not applied by the authorization backend is a 503 of its own problem type,
// which the SDK (and so the CLI) does not send again; any other 503 stays about:blank.
func TestSavedChangeNotEnforcedHasItsProblemType(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	saved := notEnforced{problemf(http.StatusServiceUnavailable, "the change was saved but is not enforced yet: %v", errors.New("backend down"))}
	p := toProblem(saved, "r1", log)
	if p.Status != http.StatusServiceUnavailable || p.Type != sdk.ProblemNotEnforced || p.Title != "Saved, not enforced yet" {
		t.Fatalf("problem of a saved change: %+v", p)
	}
	if !sdk.IsNotEnforced(&sdk.Error{Problem: p}) {
		t.Fatal("the SDK does not recognise the problem")
	}
	if p := toProblem(problemf(http.StatusServiceUnavailable, "unavailable"), "r2", log); p.Type != "about:blank" {
		t.Fatalf("another 503: %+v", p)
	}
}
