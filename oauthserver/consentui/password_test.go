package consentui

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

var phcShape = regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=3,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerifyRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	phc, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !phcShape.MatchString(phc) {
		t.Fatalf("PHC string %q does not have the expected shape", phc)
	}
	ok, rehash, err := VerifyPassword(phc, pw)
	if err != nil || !ok || rehash {
		t.Fatalf("VerifyPassword(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", pw + " "} {
		ok, rehash, err := VerifyPassword(phc, wrong)
		if err != nil || ok || rehash {
			t.Errorf("VerifyPassword(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
	other, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if other == phc {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

// phcWith builds a PHC string for pw with arbitrary parameters, as another system (or an older
// trustgate) might have stored it.
func phcWith(pw string, m, tm uint32, p uint8, saltLen, keyLen int) string {
	salt := make([]byte, saltLen)
	for i := range salt {
		salt[i] = byte(i)
	}
	key := argon2.IDKey([]byte(pw), salt, tm, m, p, uint32(keyLen))
	return formatPHC(argonParams{memory: m, time: tm, threads: p}, salt, key)
}

func TestVerifyNeedsRehash(t *testing.T) {
	const pw = "an older password hash"
	for _, tc := range []struct {
		name string
		phc  string
	}{
		{"less memory", phcWith(pw, 19*1024, 2, 1, 16, 32)},
		{"fewer passes", phcWith(pw, ArgonMemoryKiB, 1, ArgonThreads, 16, 32)},
		{"shorter salt and key", phcWith(pw, ArgonMemoryKiB, ArgonTime, ArgonThreads, 8, 16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(tc.phc, pw)
			if err != nil || !ok || !rehash {
				t.Fatalf("VerifyPassword = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
			ok, rehash, err = VerifyPassword(tc.phc, pw+"x")
			if err != nil || ok || rehash {
				t.Fatalf("VerifyPassword(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestVerifyRefusesMalformedForeignAndAbsurd(t *testing.T) {
	const pw = "correct horse battery staple"
	good, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	join := func(p ...string) string { return strings.Join(p, "$") }
	flip := func(s string) string { // change one base64 character
		b := []byte(s)
		if b[5] == 'A' {
			b[5] = 'B'
		} else {
			b[5] = 'A'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":           "",
		"bcrypt":          "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"argon2i":         join("", "argon2i", parts[2], parts[3], parts[4], parts[5]),
		"argon2d":         join("", "argon2d", parts[2], parts[3], parts[4], parts[5]),
		"scrypt":          "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
		"version 16":      join("", "argon2id", "v=16", parts[3], parts[4], parts[5]),
		"no version":      join("", "argon2id", parts[3], parts[4], parts[5]),
		"params reorder":  join("", "argon2id", parts[2], "t=3,m=65536,p=2", parts[4], parts[5]),
		"extra param":     join("", "argon2id", parts[2], parts[3]+",keyid=abc", parts[4], parts[5]),
		"leading zero":    join("", "argon2id", parts[2], "m=065536,t=3,p=2", parts[4], parts[5]),
		"sign":            join("", "argon2id", parts[2], "m=+65536,t=3,p=2", parts[4], parts[5]),
		"huge memory":     join("", "argon2id", parts[2], "m=4194304,t=3,p=2", parts[4], parts[5]),
		"memory overflow": join("", "argon2id", parts[2], "m=99999999999,t=3,p=2", parts[4], parts[5]),
		"too much work":   join("", "argon2id", parts[2], "m=262144,t=4,p=2", parts[4], parts[5]),
		"many passes":     join("", "argon2id", parts[2], "m=65536,t=1000,p=2", parts[4], parts[5]),
		"zero passes":     join("", "argon2id", parts[2], "m=65536,t=0,p=2", parts[4], parts[5]),
		"many lanes":      join("", "argon2id", parts[2], "m=65536,t=3,p=255", parts[4], parts[5]),
		"zero lanes":      join("", "argon2id", parts[2], "m=65536,t=3,p=0", parts[4], parts[5]),
		"memory < 8p":     join("", "argon2id", parts[2], "m=15,t=3,p=2", parts[4], parts[5]),
		"padded salt":     join("", "argon2id", parts[2], parts[3], parts[4]+"==", parts[5]),
		"bad base64":      join("", "argon2id", parts[2], parts[3], parts[4], parts[5][:42]+"!"),
		"url base64":      join("", "argon2id", parts[2], parts[3], parts[4], parts[5][:41]+"-_"),
		"short salt":      join("", "argon2id", parts[2], parts[3], "AAAAAA", parts[5]),
		"short key":       join("", "argon2id", parts[2], parts[3], parts[4], "AAAAAAAAAA"),
		"trailing part":   good + "$",
		"leading text":    "x" + good,
		"too long":        good + strings.Repeat("A", 300),
	}
	// Non-canonical base64: one of the last character's two unused bits set (a lenient decoder
	// would decode the same key).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, parts[5][42])
	cases["non-canonical base64"] = join("", "argon2id", parts[2], parts[3], parts[4], parts[5][:42]+alphabet[i+1:i+2])
	for name, phc := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			ok, rehash, err := VerifyPassword(phc, pw)
			if !errors.Is(err, ErrMalformedHash) || ok || rehash {
				t.Fatalf("VerifyPassword(%q) = %v, %v, %v; want false, false, ErrMalformedHash", phc, ok, rehash, err)
			}
			if d := time.Since(start); d > 20*time.Millisecond {
				t.Errorf("refusing took %v: the string was hashed before being refused", d)
			}
		})
	}
	// Tampering with the salt or the key is not a format error, but never a match.
	for name, phc := range map[string]string{
		"tampered salt": join("", "argon2id", parts[2], parts[3], flip(parts[4]), parts[5]),
		"tampered key":  join("", "argon2id", parts[2], parts[3], parts[4], flip(parts[5])),
		"weaker params": join("", "argon2id", parts[2], "m=65536,t=1,p=2", parts[4], parts[5]),
	} {
		ok, _, err := VerifyPassword(phc, pw)
		if err != nil || ok {
			t.Errorf("%s: VerifyPassword = %v, %v; want false, nil", name, ok, err)
		}
	}
}

func TestDummyVerifyTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	phc, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	// Interleave the two so a burst of load on a shared machine hits both alike; compare
	// medians.
	var reals, dummies []time.Duration
	for range 5 {
		start := time.Now()
		VerifyPassword(phc, "wrong password, but long")
		reals = append(reals, time.Since(start))
		start = time.Now()
		DummyVerify("wrong password, but long")
		dummies = append(dummies, time.Since(start))
	}
	slices.Sort(reals)
	slices.Sort(dummies)
	real, dummy := reals[len(reals)/2], dummies[len(dummies)/2]
	t.Logf("verify %v, dummy verify %v", real, dummy)
	if dummy > 2*real || real > 2*dummy {
		t.Errorf("DummyVerify takes %v, a real verification %v: not within 2x", dummy, real)
	}
}

func TestCheckPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{"", ErrPasswordTooShort},
		{"elevenchars", ErrPasswordTooShort},
		{"twelve chars", nil},
		{"ünïcödé-pässwörd", nil},
		{"日本語のパス", nil}, // 6 characters, 18 bytes: the policy counts bytes
		{strings.Repeat("a", 1024), nil},
		{strings.Repeat("a", 1025), ErrPasswordTooLong},
		{strings.Repeat(" ", 20), ErrPasswordWhitespace},
		{" \t\n\u00a0\u3000 \t\n\u2003   ", ErrPasswordWhitespace},
		{"valid start \xff\xfe and on", ErrPasswordEncoding},
	} {
		if got := CheckPasswordPolicy(tc.pw); got != tc.want {
			t.Errorf("CheckPasswordPolicy(%q) = %v, want %v", tc.pw, got, tc.want)
		}
	}
	// The messages name the limits the constants set.
	if !strings.Contains(ErrPasswordTooShort.Error(), fmt.Sprint(MinPasswordBytes)) ||
		!strings.Contains(ErrPasswordTooLong.Error(), fmt.Sprint(MaxPasswordBytes)) {
		t.Error("policy messages do not match MinPasswordBytes / MaxPasswordBytes")
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	phc, _ := HashPassword("correct horse battery staple")
	for b.Loop() {
		VerifyPassword(phc, "correct horse battery staple")
	}
}

func BenchmarkDummyVerify(b *testing.B) {
	for b.Loop() {
		DummyVerify("correct horse battery staple")
	}
}
