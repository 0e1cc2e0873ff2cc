package accesstoken

// RememberedTokens is how many verified tokens k remembers (for tests).
func RememberedTokens(k *KeySet) int { return k.verified.len() }

// SignPayload signs payload as it stands with k's signing key (for tests of the wire format).
func SignPayload(k *KeySet, payload []byte) (string, error) {
	jws, err := k.cur.Load().signer.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
