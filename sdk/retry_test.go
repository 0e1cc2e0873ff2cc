package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// These tests answer with a handler of their own: the gateway cannot be made to fail on cue.
// The handler answers as a proxy in front of it would (502/503/504, Retry-After).

// fastRetry keeps the tests quick; the waits are still real waits.
var fastRetry = WithRetry(Retry{Attempts: 3, Backoff: time.Millisecond, MaxWait: 2 * time.Second})

// failingThen answers status (with header retryAfter, when set) to the first n requests and
// 200 with an empty host list afterwards, counting every request.
func failingThen(n int32, status int, retryAfter string, count *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) <= n {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			clientTestProblem(w, status, "try again")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[]}`))
	})
}

func TestIdempotentRequestsAreRetried(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		var count atomic.Int32
		c := newClientForTest(t, failingThen(2, status, "", &count))
		fastRetry(c)
		if _, err := c.ListHosts(context.Background(), PageRequest{}); err != nil {
			t.Errorf("status %d twice, then 200: %v", status, err)
		}
		if got := count.Load(); got != 3 {
			t.Errorf("status %d: %d requests, want 3", status, got)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	var count atomic.Int32
	c := newClientForTest(t, failingThen(100, http.StatusServiceUnavailable, "", &count))
	fastRetry(c)
	err := c.DeleteHost(context.Background(), "acme")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.Detail != "try again" {
		t.Fatalf("DeleteHost = %v, want the last 503 as *Error", err)
	}
	if got := count.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (the Retry's attempts)", got)
	}
}

func TestNonIdempotentAndClientErrorsAreNotRetried(t *testing.T) {
	var count atomic.Int32
	c := newClientForTest(t, failingThen(100, http.StatusServiceUnavailable, "", &count))
	fastRetry(c)
	if _, err := c.CreateHost(context.Background(), HostCreate{Key: "acme"}); err == nil {
		t.Fatal("POST succeeded")
	}
	if got := count.Load(); got != 1 {
		t.Errorf("POST sent %d times, want once", got)
	}

	count.Store(0)
	c = newClientForTest(t, failingThen(100, http.StatusInternalServerError, "", &count))
	fastRetry(c)
	if _, err := c.GetHost(context.Background(), "acme"); err == nil {
		t.Fatal("GET of a 500 succeeded")
	}
	if got := count.Load(); got != 1 {
		t.Errorf("500 sent %d times, want once", got)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	var count atomic.Int32
	var first, second time.Time
	h := failingThen(1, http.StatusServiceUnavailable, "1", &count)
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.IsZero() {
			first = time.Now()
		} else {
			second = time.Now()
		}
		h.ServeHTTP(w, r)
	}))
	fastRetry(c) // backoff 1 ms: the wait of about a second comes from Retry-After alone
	if _, err := c.ListHosts(context.Background(), PageRequest{}); err != nil {
		t.Fatal(err)
	}
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, before the 1 s Retry-After", gap)
	}
}

func TestRetryAfterBeyondTheBoundIsNotWaitedFor(t *testing.T) {
	var count atomic.Int32
	c := newClientForTest(t, failingThen(100, http.StatusServiceUnavailable, "3600", &count))
	fastRetry(c)
	if _, err := c.ListHosts(context.Background(), PageRequest{}); !hasStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("err = %v, want the 503", err)
	}
	if got := count.Load(); got != 1 {
		t.Errorf("%d requests, want 1: an hour's Retry-After exceeds MaxWait", got)
	}
}

func TestConnectionErrorsAreRetried(t *testing.T) {
	// A listener that drops its first connection unanswered, then serves.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var count atomic.Int32
	srv := &http.Server{Handler: failingThen(0, 0, "", &count)}
	dropped := make(chan struct{})
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_ = conn.Close()
		}
		close(dropped)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := NewClient("http://"+ln.Addr().String(), "", fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListHosts(context.Background(), PageRequest{}); err != nil {
		t.Fatalf("after a dropped connection: %v", err)
	}
	<-dropped
	if got := count.Load(); got != 1 {
		t.Errorf("the server saw %d requests, want 1 (the retry)", got)
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	var count atomic.Int32
	c := newClientForTest(t, failingThen(100, http.StatusServiceUnavailable, "1", &count))
	fastRetry(c)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for count.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.ListHosts(ctx, PageRequest{})
	if err == nil {
		t.Fatal("succeeded")
	}
	if got := count.Load(); got != 1 {
		t.Errorf("%d requests after cancellation during the wait, want 1", got)
	}
}

// A change the gateway saved but has not enforced yet (503 of type ProblemNotEnforced) is not
// sent again: the retry of a DELETE would find the object gone and report a 404 for a change
// that was made.
func TestSavedChangeNotEnforcedIsNotRetried(t *testing.T) {
	var count atomic.Int32
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(Problem{Type: ProblemNotEnforced, Title: "Saved, not enforced yet", Status: http.StatusServiceUnavailable, Detail: "the change was saved but is not enforced yet"})
	}))
	fastRetry(c)
	err := c.DeleteHost(context.Background(), "acme")
	if !IsNotEnforced(err) || IsNotFound(err) {
		t.Fatalf("DeleteHost = %v, want the saved-not-enforced problem", err)
	}
	if got := count.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
	if IsNotEnforced(&Error{Problem: Problem{Type: "about:blank", Status: http.StatusServiceUnavailable}}) {
		t.Error("a plain 503 is not a saved change")
	}
}
