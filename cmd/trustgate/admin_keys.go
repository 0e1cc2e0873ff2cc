package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// masterKeyFile is the key file secrets.LoadOrCreate keeps in the data directory.

// signingKeyDoc is one signing key as `admin keys` prints it with -o json.
type signingKeyDoc struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// State is "signing" (signs new tokens), "active" (not retired, but a newer key signs),
	// "retired" (published until PublishedUntil) or "expired" (no longer published; pruned
	// at the next rotation).
	State          string     `json:"state"`
	CreatedAt      time.Time  `json:"created_at"`
	RetiredAt      *time.Time `json:"retired_at,omitempty"`
	PublishedUntil *time.Time `json:"published_until,omitempty"`
}

func newAdminKeysCommand(o *adminOptions) *cobra.Command {
	return groupCommand("keys", "Manage the keys that sign access tokens (directly in the store)",
		newKeysRotateCommand(o), newKeysListCommand(o))
}

func newKeysRotateCommand(o *adminOptions) *cobra.Command {
	var (
		stores    storeFlags
		masterKey string
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new access-token signing key and retire the others",
		Long: `rotate makes a new ES256 key that signs access tokens from now on, and retires every
other key. A retired key stays published in the JWKS for the longest access-token lifetime
(24h) plus a grace period, so every token it signed keeps verifying until it expires; a
later rotation then deletes it.

It does not use the API: it writes to the store directly, so run it on a machine that
reaches the gateway's database, with the --data-dir or --database that serve uses, and the
master key the gateways use (--master-key or TRUSTGATE_MASTER_KEY; by default the key file
in --data-dir, which must exist: a new master key would seal the new signing key with a key
the gateways do not hold).

Running gateways (every replica) switch to the new key when they next reload their keys,
within their reload interval; until then they keep signing with the previous key, which
stays published.

On a store that has no key yet, rotate creates the first one.`,
		Args: argsNamed(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := o.jsonOutput()
			if err != nil {
				return err
			}
			st, err := openExistingStore(cmd, stores)
			if err != nil {
				return err
			}
			defer st.Close()
			ring, err := existingMasterKey(masterKey, stores.dataDir)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			before, err := st.ListSigningKeys(ctx)
			if err != nil {
				return err
			}
			// Open unseals the current signing key: a wrong master key fails here, before
			// anything is written.
			ks, err := accesstoken.Open(ctx, st, ring, accesstoken.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			kid := ks.SigningKID()
			rotated := len(before) > 0
			if rotated {
				if kid, err = ks.Rotate(ctx); err != nil {
					return err
				}
			}
			keys, err := st.ListSigningKeys(ctx)
			if err != nil {
				return err
			}
			docs := signingKeyDocs(keys, time.Now())
			if isJSON {
				for _, d := range docs {
					if d.KID == kid {
						return writeJSON(cmd.OutOrStdout(), d)
					}
				}
				return fmt.Errorf("the new key %s is not in the store", kid)
			}
			out := cmd.OutOrStdout()
			if !rotated {
				return printf(out, "Created the first signing key %s.\n", kid)
			}
			if err := printf(out, "New signing key %s. Running gateways switch to it within their reload interval.\n", kid); err != nil {
				return err
			}
			for _, d := range docs {
				if d.State == "retired" && d.PublishedUntil != nil {
					if err := printf(out, "Retired %s: still published until %s.\n", d.KID, formatTime(*d.PublishedUntil)); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	stores.register(f)
	f.StringVar(&masterKey, "master-key", "", "the gateways' master key: 32 bytes in base64 or hex (default: the key file in --data-dir, which must exist); extra comma-separated keys only decrypt")
	bindEnv(f, "master-key", "TRUSTGATE_MASTER_KEY")
	return cmd
}

func newKeysListCommand(o *adminOptions) *cobra.Command {
	var stores storeFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the access-token signing keys",
		Long: `list prints the keys that sign and verify access tokens, newest first: the one that
signs, and the retired ones still published in the JWKS. It reads the store directly (the
--data-dir or --database that serve uses) and needs no master key.`,
		Args: argsNamed(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := o.jsonOutput()
			if err != nil {
				return err
			}
			st, err := openExistingStore(cmd, stores)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListSigningKeys(cmd.Context())
			if err != nil {
				return err
			}
			docs := signingKeyDocs(keys, time.Now())
			if isJSON {
				return writeJSON(cmd.OutOrStdout(), docs)
			}
			return writeSigningKeyTable(cmd.OutOrStdout(), docs)
		},
	}
	stores.register(cmd.Flags())
	return cmd
}

// existingMasterKey is the keyring of --master-key, or of the key file in the data directory.
// Unlike serve it never creates a key file: a new master key would seal the signing key with a
// key the gateways do not hold.
func existingMasterKey(masterKey, dataDir string) (*secrets.Keyring, error) {
	ring, err := secrets.Load(strings.TrimSpace(masterKey), dataDir)
	if errors.Is(err, secrets.ErrNoKey) {
		return nil, fmt.Errorf("%w: give the one the gateways use with --master-key or TRUSTGATE_MASTER_KEY", err)
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return ring, nil
}

// openExistingStore opens the store serve uses. Without --database, the data directory must
// exist: opening would otherwise create an empty database there.
func openExistingStore(cmd *cobra.Command, stores storeFlags) (store.Store, error) {
	timeout, err := parseDuration("database-connect-timeout", stores.connectTimeout)
	if err != nil {
		return nil, err
	}
	if stores.database == "" {
		if fi, err := os.Stat(stores.dataDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("no data directory %q: run this on the gateway's machine with the --data-dir (or --database) that trustgate serve uses", stores.dataDir)
		}
	}
	return store.Open(cmd.Context(), store.Config{URL: stores.database, DataDir: stores.dataDir, ConnectTimeout: timeout})
}

// signingKeyDocs describes the keys (newest first) at now.
func signingKeyDocs(keys []store.SigningKey, now time.Time) []signingKeyDoc {
	docs := make([]signingKeyDoc, 0, len(keys))
	signer := false
	for _, k := range keys {
		d := signingKeyDoc{KID: k.KID, Alg: k.Alg, CreatedAt: k.CreatedAt}
		switch {
		case k.RetiredAt.IsZero() && k.Alg == accesstoken.Alg && !signer:
			d.State, signer = "signing", true
		case k.RetiredAt.IsZero():
			d.State = "active"
		case now.Before(k.PublishedUntil):
			d.State = "retired"
		default:
			d.State = "expired"
		}
		if !k.RetiredAt.IsZero() {
			retired, until := k.RetiredAt, k.PublishedUntil
			d.RetiredAt, d.PublishedUntil = &retired, &until
		}
		docs = append(docs, d)
	}
	return docs
}

func writeSigningKeyTable(w io.Writer, docs []signingKeyDoc) error {
	rows := make([][]string, 0, len(docs))
	for _, d := range docs {
		until := "-"
		if d.PublishedUntil != nil {
			until = formatTime(*d.PublishedUntil)
		}
		retired := "-"
		if d.RetiredAt != nil {
			retired = formatTime(*d.RetiredAt)
		}
		rows = append(rows, []string{d.KID, d.Alg, d.State, formatTime(d.CreatedAt), retired, until})
	}
	return writeTable(w, []string{"kid", "alg", "state", "created", "retired", "published until"}, rows)
}
