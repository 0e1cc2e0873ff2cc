// Package certfile serves a TLS certificate and key from files and picks up a renewed pair
// without a restart: tls.Config.GetCertificate hands out the cached pair, and at most once per
// check interval the files' size and modification time are compared with those of the pair
// loaded; when they changed, the pair is loaded again. A pair that does not load (say, the
// certificate was replaced and the key not yet) keeps the previous one in service and is tried
// again at the next check.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, the files are looked at again.
const DefaultCheckInterval = time.Second

// Reloader is a certificate/key pair read from two files.
type Reloader struct {
	certPath, keyPath string
	interval          time.Duration
	log               *slog.Logger

	cur atomic.Pointer[tls.Certificate]

	mu        sync.Mutex // one check at a time
	nextCheck time.Time
	stamp     stamp // of the files behind cur
}

// stamp is what tells a changed file: size and modification time of both.
type stamp struct {
	certSize, keySize int64
	certMod, keyMod   time.Time
}

// New loads the pair; it is an error when it does not load. interval 0 is
// DefaultCheckInterval; log nil discards.
func New(certPath, keyPath string, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if certPath == "" || keyPath == "" {
		return nil, errors.New("a TLS certificate needs both a certificate file and a key file")
	}
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certPath: certPath, keyPath: keyPath, interval: interval, log: log}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	c, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(c)
	r.stamp = st
	r.nextCheck = time.Now().Add(interval)
	return r, nil
}

func (r *Reloader) stat() (stamp, error) {
	cf, err := os.Stat(r.certPath)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS certificate: %w", err)
	}
	kf, err := os.Stat(r.keyPath)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS key: %w", err)
	}
	return stamp{certSize: cf.Size(), keySize: kf.Size(), certMod: cf.ModTime(), keyMod: kf.ModTime()}, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", r.certPath, r.keyPath, err)
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", r.certPath, err)
		}
	}
	return &c, nil
}

// Certificate returns the pair in service, after loading the files again when they changed
// and the check interval has passed.
func (r *Reloader) Certificate() *tls.Certificate {
	r.maybeReload(time.Now())
	return r.cur.Load()
}

// GetCertificate is for tls.Config.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

func (r *Reloader) maybeReload(now time.Time) {
	if !r.mu.TryLock() { // another handshake is checking: serve the current pair
		return
	}
	defer r.mu.Unlock()
	if now.Before(r.nextCheck) {
		return
	}
	r.nextCheck = now.Add(r.interval)
	st, err := r.stat()
	if err != nil {
		r.log.Warn("TLS certificate files cannot be read; serving the loaded certificate", "err", err)
		return
	}
	if st == r.stamp {
		return
	}
	c, err := r.load()
	if err != nil {
		r.log.Warn("changed TLS certificate files do not load (yet); serving the loaded certificate", "err", err)
		return
	}
	r.cur.Store(c)
	r.stamp = st
	r.log.Info("loaded the changed TLS certificate", "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
}
