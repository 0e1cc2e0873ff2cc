package store

import (
	"context"
	"errors"
	"fmt"
)

// Password hashes of humans (password sign-in). The hash is a PHC string made by the caller
// (package oauthserver/consentui); the store keeps it opaque, never logs it and never returns
// it in a User.

// maxPasswordHashLen bounds a stored PHC string.
const maxPasswordHashLen = 1024

// SetUserPassword stores phc as the human's password hash ("" removes the password). It is
// ErrNotFound when the human does not exist.
func (s *sqlStore) SetUserPassword(ctx context.Context, host, id, phc string) error {
	if len(phc) > maxPasswordHashLen {
		return fmt.Errorf("set password of %s/%s: %w", host, id, invalid("password hash longer than %d bytes", maxPasswordHashLen))
	}
	n, err := s.db.q().exec(ctx, "UPDATE users SET password_hash = ? WHERE host_key = ? AND id = ?", phc, host, id)
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", host, id, err)
	}
	if n == 0 {
		return fmt.Errorf("set password of %s/%s: %w", host, id, ErrNotFound)
	}
	return nil
}

// GetUserPasswordHash returns the human's password hash, "" when the human has no password
// yet. It is ErrNotFound when the human does not exist.
func (s *sqlStore) GetUserPasswordHash(ctx context.Context, host, id string) (string, error) {
	var phc string
	err := s.db.q().queryRow(ctx, "SELECT password_hash FROM users WHERE host_key = ? AND id = ?", host, id).Scan(&phc)
	if errors.Is(err, errNoRows) {
		return "", fmt.Errorf("get password of %s/%s: %w", host, id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get password of %s/%s: %w", host, id, err)
	}
	return phc, nil
}
