package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// A passkey is found by its credential id in its host only, keeps what verifying a sign-in
// needs, takes only a growing signature counter (also when two sign-ins race), is removed by
// its owner only, and goes with its human and host.
func testPasskeys(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create beta")(s.CreateHost(ctx, store.Host{Key: "beta"}))
		ada := must[store.User](t, "ada")(s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"}))
		bob := must[store.User](t, "bob")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@example.com"}))
		id := []byte{0xfb, 0xff, 0x00, 0x01, 0x02} // base64url needs '-' and '_' here
		aaguid := bytes.Repeat([]byte{0xad}, 16)
		in := store.Passkey{Host: "acme", UserID: ada.ID, CredentialID: id, Name: " Laptop ", PublicKey: []byte{1, 2, 3},
			AttestationType: "none", SignCount: 5, Transports: []string{"internal", "hybrid"}, AAGUID: aaguid, BackupEligible: true}
		created := must[store.Passkey](t, "create")(s.CreatePasskey(ctx, in))
		if created.Name != "Laptop" || created.CreatedAt.IsZero() {
			t.Fatalf("created = %+v", created)
		}
		got := must[store.Passkey](t, "get")(s.GetPasskey(ctx, "acme", id))
		if got.UserID != ada.ID || !bytes.Equal(got.CredentialID, id) || !bytes.Equal(got.PublicKey, []byte{1, 2, 3}) ||
			got.SignCount != 5 || !slices.Equal(got.Transports, []string{"internal", "hybrid"}) || !bytes.Equal(got.AAGUID, aaguid) ||
			!got.BackupEligible || got.BackupState || got.AttestationType != "none" || !got.LastUsedAt.IsZero() {
			t.Fatalf("passkey = %+v", got)
		}
		_, err := s.GetPasskey(ctx, "beta", id)
		wantErr(t, "other host", err, store.ErrNotFound)
		_, err = s.CreatePasskey(ctx, in)
		wantErr(t, "same credential id", err, store.ErrConflict)
		in2 := in
		in2.Host, in2.UserID = "beta", "u_nobody"
		_, err = s.CreatePasskey(ctx, in2)
		wantErr(t, "unknown human", err, store.ErrNotFound)
		for name, bad := range map[string]func(p *store.Passkey){
			"empty id":        func(p *store.Passkey) { p.CredentialID = nil },
			"long id":         func(p *store.Passkey) { p.CredentialID = make([]byte, store.MaxPasskeyIDBytes+1) },
			"no key":          func(p *store.Passkey) { p.PublicKey = nil },
			"long name":       func(p *store.Passkey) { p.Name = strings.Repeat("n", store.MaxPasskeyNameLen+1) },
			"control in name": func(p *store.Passkey) { p.Name = "a\nb" },
			"short aaguid":    func(p *store.Passkey) { p.AAGUID = []byte{1} },
			"empty transport": func(p *store.Passkey) { p.Transports = []string{""} },
			"no human":        func(p *store.Passkey) { p.UserID = "" },
		} {
			p := in
			p.CredentialID = []byte("other")
			bad(&p)
			_, err := s.CreatePasskey(ctx, p)
			wantErr(t, name, err, store.ErrInvalid)
		}

		// The counter only grows.
		at := time.Now().UTC().Truncate(time.Millisecond)
		noErr(t, "use with 6", s.UsePasskey(ctx, "acme", id, 6, true, at))
		got = must[store.Passkey](t, "get")(s.GetPasskey(ctx, "acme", id))
		if got.SignCount != 6 || !got.BackupState || !got.LastUsedAt.Equal(at) {
			t.Fatalf("after use: %+v", got)
		}
		for _, c := range []uint32{6, 3, 0} {
			err := s.UsePasskey(ctx, "acme", id, c, false, at)
			wantErr(t, fmt.Sprintf("counter %d after 6", c), err, store.ErrConflict)
			if !errors.Is(err, store.ErrSignCountRegressed) {
				t.Errorf("counter %d after 6: %v, want ErrSignCountRegressed", c, err)
			}
		}
		if got := must[store.Passkey](t, "get")(s.GetPasskey(ctx, "acme", id)); got.SignCount != 6 || !got.BackupState {
			t.Fatalf("a refused use changed the passkey: %+v", got)
		}
		wantErr(t, "use of an unknown passkey", s.UsePasskey(ctx, "acme", []byte("nope"), 9, false, at), store.ErrNotFound)

		// Two uses racing with the same counter: one wins.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = s.UsePasskey(ctx, "acme", id, 7, false, at) })
		}
		wg.Wait()
		if ok := slices.IndexFunc(errs, func(e error) bool { return e == nil }); ok < 0 || slices.ContainsFunc(errs[ok+1:], func(e error) bool { return e == nil }) {
			t.Fatalf("racing uses with one counter: %v, want exactly one accepted", errs)
		}

		// Authenticators without a counter (always 0) stay usable.
		zero := in
		zero.CredentialID, zero.SignCount = []byte("zero"), 0
		must[store.Passkey](t, "create zero")(s.CreatePasskey(ctx, zero))
		noErr(t, "use zero", s.UsePasskey(ctx, "acme", zero.CredentialID, 0, false, at))
		noErr(t, "use zero again", s.UsePasskey(ctx, "acme", zero.CredentialID, 0, false, at))

		list := must[[]store.Passkey](t, "list")(s.ListPasskeys(ctx, "acme", ada.ID))
		if len(list) != 2 || !bytes.Equal(list[0].CredentialID, id) || !bytes.Equal(list[1].CredentialID, []byte("zero")) {
			t.Fatalf("list = %+v", list)
		}
		if l := must[[]store.Passkey](t, "list bob")(s.ListPasskeys(ctx, "acme", bob.ID)); len(l) != 0 {
			t.Fatalf("bob's passkeys = %+v", l)
		}

		// Only the owner removes it.
		wantErr(t, "bob removes ada's", s.DeletePasskey(ctx, "acme", bob.ID, id), store.ErrNotFound)
		noErr(t, "ada removes hers", s.DeletePasskey(ctx, "acme", ada.ID, id))
		_, err = s.GetPasskey(ctx, "acme", id)
		wantErr(t, "removed", err, store.ErrNotFound)
		wantErr(t, "removed twice", s.DeletePasskey(ctx, "acme", ada.ID, id), store.ErrNotFound)
		wantErr(t, "use of a removed passkey", s.UsePasskey(ctx, "acme", id, 100, false, at), store.ErrNotFound)

		// A bounded number per human.
		for i := range store.MaxPasskeysPerHuman {
			p := in
			p.UserID, p.CredentialID = bob.ID, []byte(fmt.Sprintf("bob-%d", i))
			must[store.Passkey](t, "bob's passkey")(s.CreatePasskey(ctx, p))
		}
		p := in
		p.UserID, p.CredentialID = bob.ID, []byte("one too many")
		_, err = s.CreatePasskey(ctx, p)
		wantErr(t, "one passkey too many", err, store.ErrConflict)

		// They go with their human and host.
		noErr(t, "delete ada", s.DeleteUser(ctx, "acme", ada.ID))
		_, err = s.GetPasskey(ctx, "acme", []byte("zero"))
		wantErr(t, "passkey of a deleted human", err, store.ErrNotFound)
		noErr(t, "delete acme", s.DeleteHost(ctx, "acme"))
		_, err = s.GetPasskey(ctx, "acme", []byte("bob-0"))
		wantErr(t, "passkey of a deleted host", err, store.ErrNotFound)
	})
}
