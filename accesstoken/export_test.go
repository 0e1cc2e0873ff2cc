package accesstoken

// RememberedTokens is how many verified tokens k remembers (for tests).
func RememberedTokens(k *KeySet) int { return k.verified.len() }
