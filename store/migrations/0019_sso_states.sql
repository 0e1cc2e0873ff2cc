-- trustgate's control plane, version 19: sign-ins at identity providers in progress.
--
-- sso_states: a sign-in with an SSO method (OIDC, Google, Microsoft, GitHub) between the
-- redirect to the provider and its callback, keyed by the hex SHA-256 of the state parameter.
-- sealed holds the PKCE verifier, the nonce and the hash of the browser's binding; pending_ref
-- is the pending authorization request the sign-in continues. A row is taken (deleted) by the
-- callback, so a state is used at most once; in the store, so that any replica can finish it.
CREATE TABLE sso_states (
    state_hash  TEXT   NOT NULL PRIMARY KEY,
    host_key    TEXT   NOT NULL,
    method      TEXT   NOT NULL,
    pending_ref TEXT   NOT NULL,
    sealed      TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sso_states_expiry ON sso_states (expires_at);
