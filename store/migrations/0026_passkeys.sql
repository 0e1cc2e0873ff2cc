-- trustgate's control plane, version 25: passkeys (WebAuthn credentials) of humans.
--
-- passkeys: one row per passkey a human registered on a host. credential_id is the
-- credential's id (base64url, unpadded), unique within the host: signing in with a passkey
-- looks it up there. public_key is the COSE public key (base64); sign_count is the
-- authenticator's last signature counter (a later sign-in must show a larger one unless both
-- are 0); transports is a JSON array; aaguid is the authenticator model (hex, '' when none);
-- backup_eligible is the credential's BE flag (it never changes). The ceremonies in progress
-- are sign-ins in progress (sso_states, method "passkey" or "passkey_register"). A human's or
-- host's rows go with them.
CREATE TABLE passkeys (
    host_key         TEXT    NOT NULL,
    credential_id    TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    name             TEXT    NOT NULL DEFAULT '',
    public_key       TEXT    NOT NULL,
    attestation_type TEXT    NOT NULL DEFAULT '',
    sign_count       BIGINT  NOT NULL DEFAULT 0,
    transports       TEXT    NOT NULL DEFAULT '[]',
    aaguid           TEXT    NOT NULL DEFAULT '',
    backup_eligible  BOOLEAN NOT NULL DEFAULT FALSE,
    backup_state     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT  NOT NULL,
    last_used_at     BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (host_key, credential_id)
);
CREATE INDEX passkeys_user ON passkeys (host_key, user_id);
