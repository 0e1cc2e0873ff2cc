package consentui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password hashing parameters: argon2id, RFC 9106's second recommended option (64 MiB, three
// passes) with two lanes. On two idle cores (AMD EPYC) one hash takes about 95 ms of wall
// time and 0.2 s of CPU time (BenchmarkHashPassword), well under the 200 ms budget of a login
// request, and needs 64 MiB of memory while it runs. On busy cores it takes proportionally
// longer; hashSlots keeps a burst of logins from running more hashes at once than the cores
// can serve.
const (
	// ArgonMemoryKiB is the memory cost m, in KiB (64 MiB).
	ArgonMemoryKiB = 64 * 1024
	// ArgonTime is the number of passes t over the memory.
	ArgonTime = 3
	// ArgonThreads is the parallelism p (lanes).
	ArgonThreads = 2
	// ArgonSaltLen is the length of the random salt, in bytes.
	ArgonSaltLen = 16
	// ArgonKeyLen is the length of the derived key, in bytes.
	ArgonKeyLen = 32
)

// Bounds on the parameters of a stored PHC string. A hash whose parameters fall outside them is
// refused without being computed, so a tampered or foreign row in the store cannot make one
// login cost more than four default verifications (memory × passes) or 256 MiB of memory.
const (
	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 10
	maxArgonThreads   = 16
	maxArgonWork      = 4 * ArgonMemoryKiB * ArgonTime // memory (KiB) × passes
	minArgonSaltLen   = 8
	maxArgonSaltLen   = 64
	minArgonKeyLen    = 16
	maxArgonKeyLen    = 64
	maxPHCLen         = 256
)

// Password policy bounds, in bytes of UTF-8.
const (
	MinPasswordBytes = 12
	MaxPasswordBytes = 1024
)

// PolicyError is a password that breaks the policy. Its message is a sentence for the person
// choosing the password, to be shown as it is.
type PolicyError string

func (e PolicyError) Error() string { return string(e) }

// Password policy errors (the numbers are MinPasswordBytes and MaxPasswordBytes).
const (
	ErrPasswordTooShort   PolicyError = "Password is too short: use at least 12 characters."
	ErrPasswordTooLong    PolicyError = "Password is too long: use at most 1024 bytes."
	ErrPasswordWhitespace PolicyError = "Password cannot be only spaces."
	ErrPasswordEncoding   PolicyError = "Password contains characters that are not valid text."
)

// ErrMalformedHash is returned by VerifyPassword for a stored string that is not an argon2id
// PHC string this package accepts (another algorithm, another version, bad encoding, or
// parameters outside the bounds).
var ErrMalformedHash = errors.New("consentui: stored password hash is malformed or not supported")

// hashSlots bounds how many argon2 computations run at once. Each one holds ArgonMemoryKiB of
// memory (up to maxArgonMemoryKiB for a foreign stored string) and keeps ArgonThreads cores
// busy, so running more than the cores allow only multiplies memory without adding throughput:
// a burst of logins from many addresses queues here instead of exhausting memory.
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

var b64 = base64.RawStdEncoding.Strict()

// argonParams are the parameters of one PHC string.
type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

var currentParams = argonParams{memory: ArgonMemoryKiB, time: ArgonTime, threads: ArgonThreads}

// hashesComputed counts argon2 computations (HashesComputed).
var hashesComputed atomic.Uint64

// HashesComputed is the number of password hashes this process has computed (hashing,
// verifying and DummyVerify alike). Tests use it to check that a response did the same
// password-hash work whatever the account's state; it is also a cheap load metric.
func HashesComputed() uint64 { return hashesComputed.Load() }

func deriveKey(pw string, salt []byte, p argonParams, keyLen uint32) []byte {
	hashesComputed.Add(1)
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, keyLen)
}

// HashPassword hashes pw with argon2id and the package's parameters, returning a PHC string:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt, base64>$<key, base64>
//
// (standard base64 without padding). It does not check the password policy; call
// CheckPasswordPolicy first when a human chooses a password.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, ArgonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("consentui: reading random salt: %w", err)
	}
	key := deriveKey(pw, salt, currentParams, ArgonKeyLen)
	return formatPHC(currentParams, salt, key), nil
}

func formatPHC(p argonParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// VerifyPassword reports whether pw matches the PHC string phc, comparing in constant time.
// needsRehash is true when the password matched but phc was made with parameters other than
// the package's current ones (weaker ones after an upgrade, or different ones after a change of
// policy): the caller should then store HashPassword(pw) in its place.
//
// A string that is not argon2id version 19, is not canonically encoded, or whose parameters are
// outside the package's bounds is refused with ErrMalformedHash before any hashing, so a stored
// string cannot make the server spend unbounded memory or time.
func VerifyPassword(phc, pw string) (ok bool, needsRehash bool, err error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, false, err
	}
	got := deriveKey(pw, salt, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	rehash := p != currentParams || len(salt) != ArgonSaltLen || len(want) != ArgonKeyLen
	return true, rehash, nil
}

// dummySalt and dummyKey stand in for the stored hash of an account that does not exist.
var (
	dummySalt = make([]byte, ArgonSaltLen)
	dummyKey  = make([]byte, ArgonKeyLen)
)

// DummyVerify spends the time and memory of a VerifyPassword against a hash made with the
// current parameters, and always fails. Call it when the email names no account (or an account
// without a password), so that the response time does not tell which emails exist.
func DummyVerify(pw string) {
	got := deriveKey(pw, dummySalt, currentParams, ArgonKeyLen)
	subtle.ConstantTimeCompare(got, dummyKey)
}

// parsePHC reads "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<key>", strictly: this exact shape
// and parameter order, canonical decimal numbers, canonical unpadded standard base64.
func parsePHC(s string) (argonParams, []byte, []byte, error) {
	var p argonParams
	if len(s) > maxPHCLen {
		return p, nil, nil, ErrMalformedHash
	}
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	m, ok1 := phcUint(params[0], "m=")
	t, ok2 := phcUint(params[1], "t=")
	th, ok3 := phcUint(params[2], "p=")
	if !ok1 || !ok2 || !ok3 {
		return p, nil, nil, ErrMalformedHash
	}
	if t < 1 || t > maxArgonTime || th < 1 || th > maxArgonThreads ||
		m < 8*th || m > maxArgonMemoryKiB || m*t > maxArgonWork {
		return p, nil, nil, ErrMalformedHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < minArgonSaltLen || len(salt) > maxArgonSaltLen {
		return p, nil, nil, ErrMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < minArgonKeyLen || len(key) > maxArgonKeyLen {
		return p, nil, nil, ErrMalformedHash
	}
	p = argonParams{memory: uint32(m), time: uint32(t), threads: uint8(th)}
	return p, salt, key, nil
}

// phcUint reads prefix followed by a canonical decimal (no sign, no leading zero) of at most
// ten digits.
func phcUint(s, prefix string) (uint64, bool) {
	d, ok := strings.CutPrefix(s, prefix)
	if !ok || d == "" || len(d) > 10 || (len(d) > 1 && d[0] == '0') {
		return 0, false
	}
	for _, c := range []byte(d) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(d, 10, 64)
	return n, err == nil
}

// CheckPasswordPolicy checks a password a human chooses: valid UTF-8, 12 to 1024 bytes, and not
// only whitespace. The returned errors' messages can be shown on the sign-up page.
func CheckPasswordPolicy(pw string) error {
	switch {
	case !utf8.ValidString(pw):
		return ErrPasswordEncoding
	case len(pw) < MinPasswordBytes:
		return ErrPasswordTooShort
	case len(pw) > MaxPasswordBytes:
		return ErrPasswordTooLong
	case strings.TrimFunc(pw, unicode.IsSpace) == "":
		return ErrPasswordWhitespace
	}
	return nil
}
