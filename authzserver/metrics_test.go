package authzserver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/telemetry"
)

// answering is a Backend that answers every question the same way.
type answering struct {
	authzserver.Backend
	err error
}

func (a answering) Check(context.Context, authzserver.CheckRequest) (bool, error) {
	return a.err == nil, a.err
}

func (a answering) CallableTools(context.Context, string, string, string) ([]string, error) {
	return []string{"t"}, a.err
}

func TestMetricsObserveChecksAndLookups(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	ok := authzserver.NewMetrics(answering{}, tel.Authz())
	if allowed, err := ok.Check(ctx, authzserver.CheckRequest{}); !allowed || err != nil {
		t.Fatalf("check through the metrics: %v %v", allowed, err)
	}
	if names, err := ok.CallableTools(ctx, "acme", "linear", "a"); len(names) != 1 || err != nil {
		t.Fatalf("lookup through the metrics: %v %v", names, err)
	}
	down := authzserver.NewMetrics(answering{err: authzserver.ErrUnavailable}, tel.Authz())
	if _, err := down.Check(ctx, authzserver.CheckRequest{}); !errors.Is(err, authzserver.ErrUnavailable) {
		t.Fatalf("the backend's error is not passed on: %v", err)
	}

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`trustgate_authz_duration_seconds_count{operation="check",outcome="ok"} 1`,
		`trustgate_authz_duration_seconds_count{operation="lookup",outcome="ok"} 1`,
		`trustgate_authz_duration_seconds_count{operation="check",outcome="error"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsWithoutInstrumentsIsTheBackend(t *testing.T) {
	inner := answering{}
	if b := authzserver.NewMetrics(inner, nil); b != authzserver.Backend(inner) {
		t.Fatalf("without instruments: %T", b)
	}
}
