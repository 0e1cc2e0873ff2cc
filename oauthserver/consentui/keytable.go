package consentui

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
)

// DefaultMaxKeys is the number of keys a Limiter or a Backoff remembers when its constructor is
// given 0.
const DefaultMaxKeys = 100_000

// maxKeyLen is the longest key stored as it is; longer keys are stored as their SHA-256, so a
// key's size is bounded whatever the caller passes (emails come from the form).
const maxKeyLen = 128

// keyTable is the bounded memory of Limiter and Backoff: one value per key, at most maxKeys
// keys, the least recently used forgotten first. It is not safe for concurrent use: its owner
// holds a mutex around every call.
type keyTable[V any] struct {
	maxKeys int
	keys    map[string]*list.Element
	order   *list.List // of *keyed[V], most recently used at the front
}

type keyed[V any] struct {
	key   string
	value V
}

func newKeyTable[V any](maxKeys int) keyTable[V] {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return keyTable[V]{maxKeys: maxKeys, keys: make(map[string]*list.Element), order: list.New()}
}

// get returns key's value, marking it most recently used, or nil.
func (t *keyTable[V]) get(key string) *V {
	el, found := t.keys[key]
	if !found {
		return nil
	}
	t.order.MoveToFront(el)
	return &el.Value.(*keyed[V]).value
}

// add remembers key with v (key must not be remembered yet), forgetting the least recently used
// keys first when the table is full, and returns the stored value.
func (t *keyTable[V]) add(key string, v V) *V {
	for len(t.keys) >= t.maxKeys {
		el := t.order.Back()
		t.order.Remove(el)
		delete(t.keys, el.Value.(*keyed[V]).key)
	}
	e := &keyed[V]{key: key, value: v}
	t.keys[key] = t.order.PushFront(e)
	return &e.value
}

// forget removes key.
func (t *keyTable[V]) forget(key string) {
	if el, found := t.keys[key]; found {
		t.order.Remove(el)
		delete(t.keys, key)
	}
}

// sweep forgets every key whose value done reports as finished.
func (t *keyTable[V]) sweep(done func(*V) bool) {
	for el := t.order.Back(); el != nil; {
		prev := el.Prev()
		if e := el.Value.(*keyed[V]); done(&e.value) {
			t.order.Remove(el)
			delete(t.keys, e.key)
		}
		el = prev
	}
}

func (t *keyTable[V]) len() int { return len(t.keys) }

// limitKey bounds the size of a key.
func limitKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
