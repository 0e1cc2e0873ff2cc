-- trustgate's control plane, version 3: the key set that signs access tokens (ES256 JWTs).
--
-- private_key holds the private key sealed with the master key (base64 TEXT); public_jwk the
-- public JWK (JSON). A key signs while it is the newest one not retired; a retired key stays
-- published in the JWKS until published_until (its last token has expired), then may be pruned.
-- Timestamps are unix milliseconds; 0 means "not yet".
CREATE TABLE signing_keys (
    kid             TEXT NOT NULL PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key     TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT NOT NULL DEFAULT 0,
    published_until BIGINT NOT NULL DEFAULT 0
);
