package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpen(t *testing.T) {
	k, err := NewKeyring(key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal([]byte("Bearer s3cret"), "server:acme/linear")
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(sealed, "server:acme/linear")
	if err != nil || string(got) != "Bearer s3cret" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := k.Open(sealed, "server:beta/linear"); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened under another context: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(sealed, "server:acme/linear"); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered value opened: %v", err)
	}
	if bytes.Equal(k.Seal([]byte("x"), ""), k.Seal([]byte("x"), "")) {
		t.Fatal("two seals of the same value are equal: nonce reuse")
	}
}

func TestRotation(t *testing.T) {
	old, _ := NewKeyring(key(1))
	sealed := old.Seal([]byte("v"), "a")
	rotated, err := NewKeyring(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, "a"); err != nil || string(got) != "v" {
		t.Fatalf("rotated keyring cannot open old value: %v", err)
	}
	fresh := rotated.Seal([]byte("w"), "a")
	if _, err := old.Open(fresh, "a"); !errors.Is(err, ErrOpen) {
		t.Fatalf("old keyring opened a value sealed with the new key: %v", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	k1, generated, err := LoadOrCreate("", dir)
	if err != nil || !generated {
		t.Fatalf("first load: generated=%v err=%v", generated, err)
	}
	info, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", info, err)
	}
	k2, generated, err := LoadOrCreate("", dir)
	if err != nil || generated {
		t.Fatalf("second load: generated=%v err=%v", generated, err)
	}
	if got, err := k2.Open(k1.Seal([]byte("x"), ""), ""); err != nil || string(got) != "x" {
		t.Fatal("the key file does not give back the same key")
	}
	explicit, _, err := LoadOrCreate(base64.StdEncoding.EncodeToString(key(7)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := explicit.Open(k1.Seal([]byte("x"), ""), ""); err == nil {
		t.Fatal("a different explicit key opened the value")
	}
	if _, _, err := LoadOrCreate("too-short", dir); err == nil {
		t.Fatal("a malformed key was accepted")
	}
}

func TestDerive(t *testing.T) {
	a, _ := NewKeyring(key(1))
	b, _ := NewKeyring(key(1), key(2))
	c, _ := NewKeyring(key(2))
	if !bytes.Equal(a.Derive("x"), b.Derive("x")) || len(a.Derive("x")) != 32 {
		t.Fatal("the same primary key derives different secrets")
	}
	if bytes.Equal(a.Derive("x"), a.Derive("y")) || bytes.Equal(a.Derive("x"), c.Derive("x")) {
		t.Fatal("derived secrets are not independent of label and key")
	}
}
