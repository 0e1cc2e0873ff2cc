package proxy

import "sync"

// copyBufferSize is the size of the buffers responses are copied through (ReverseProxy's own
// default).
const copyBufferSize = 32 << 10

// bufferPool reuses the response copy buffers: without it httputil.ReverseProxy allocates
// 32 KiB per forwarded request.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}}}
}

// Get returns a buffer of copyBufferSize bytes.
func (p *bufferPool) Get() []byte { return *(p.pool.Get().(*[]byte)) }

// Put takes a buffer back; buffers of another size are dropped.
func (p *bufferPool) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	p.pool.Put(&b)
}
