-- trustgate's control plane, version 18: identifiers that may be used only once.
--
-- used_once: an identifier of a host that was used, kept until it expires so that a second use
-- is refused on every replica. kind says what it is, e.g. 'saml-assertion' (the ID of a SAML
-- assertion a sign-in accepted) or 'saml-request' (the ID of a SAML authentication request a
-- sign-in completed). A row is deleted once expired, lazily by the next use.
CREATE TABLE used_once (
    host_key   TEXT   NOT NULL REFERENCES hosts (host_key),
    kind       TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (host_key, kind, id)
);
CREATE INDEX used_once_expires ON used_once (expires_at);
