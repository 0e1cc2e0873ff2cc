package tests

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultMode is what a faultline does to the connections it carries.
type faultMode int32

const (
	// faultPass forwards bytes both ways: the dependency is healthy.
	faultPass faultMode = iota
	// faultDown closes every connection at once: the dependency is down.
	faultDown
	// faultHang accepts connections and reads requests but never answers.
	faultHang
	// faultGarbage answers every connection with bytes that are not what the client expects.
	faultGarbage
)

// faultline is a TCP forwarder in front of a real dependency (an upstream MCP server, SpiceDB,
// PostgreSQL) that a test switches between healthy and faulty, to see what the gateway does
// when the dependency is down, hangs or talks nonsense, and that it recovers by itself.
type faultline struct {
	t      *testing.T
	ln     net.Listener
	target string
	mode   atomic.Int32
	// garbage is what faultGarbage sends.
	garbage []byte

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newFaultline forwards a new loopback address to target; Addr is where to point clients.
func newFaultline(t *testing.T, target string) *faultline {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultline{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{},
		garbage: []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\nConnection: close\r\n\r\n<html>oops</html>\x00\x01\x02\x03")}
	t.Cleanup(func() { _ = ln.Close(); f.closeAll() })
	go f.serve()
	return f
}

// Addr is the forwarder's host:port.
func (f *faultline) Addr() string { return f.ln.Addr().String() }

// set switches the mode; leaving faultPass cuts the connections in flight, as a crash would.
func (f *faultline) set(m faultMode) {
	f.mode.Store(int32(m))
	if m != faultPass {
		f.closeAll()
	}
}

func (f *faultline) track(c net.Conn) {
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
}

func (f *faultline) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
}

func (f *faultline) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.handle(c)
	}
}

func (f *faultline) handle(c net.Conn) {
	switch faultMode(f.mode.Load()) {
	case faultDown:
		_ = c.Close()
		return
	case faultHang:
		f.track(c)
		_, _ = io.Copy(io.Discard, c) // read whatever comes, answer nothing
		return
	case faultGarbage:
		defer c.Close()
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write(f.garbage)
		return
	}
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		_ = c.Close()
		return
	}
	f.track(c)
	f.track(up)
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}
