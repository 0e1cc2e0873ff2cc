-- trustgate's control plane, version 24: one-time codes sent by email.
--
-- email_codes: one row per code sent to an address of a host (an email sign-in, an account
-- claim or sign-up, a password reset). id is random and travels in the page's form; the code
-- itself is never stored, only code_hash, an HMAC of the id and the code keyed by the
-- gateway's secret. failures counts the wrong codes tried; closed_at is set when the code was
-- used, replaced by a newer one for the same address and purpose, or tried too often (0: live).
-- Rows stay for an hour after they were sent, so that the codes sent to an address and the
-- wrong codes tried against it are counted on every replica; then they are pruned.
CREATE TABLE email_codes (
    id          TEXT    NOT NULL PRIMARY KEY,
    host_key    TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    code_hash   TEXT    NOT NULL,
    pending_ref TEXT    NOT NULL DEFAULT '',
    failures    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    closed_at   BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX email_codes_address ON email_codes (host_key, email, created_at);
CREATE INDEX email_codes_created ON email_codes (created_at);
