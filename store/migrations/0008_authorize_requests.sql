-- trustgate's control plane, version 8: pending authorization requests.
--
-- authorize_requests: an authorization request between /authorize and the consent decision,
-- kept in the database so that any replica can continue a flow another one started. ref_hash is
-- the hex SHA-256 of the request's reference (the random state_ref of the sign-in and consent
-- pages), never the reference itself. data is the serialized request (JSON). Rows are deleted
-- when the consent decision uses them and, once expired, by the next creation (lazily).
CREATE TABLE authorize_requests (
    ref_hash   TEXT NOT NULL PRIMARY KEY,
    host_key   TEXT NOT NULL REFERENCES hosts (host_key),
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX authorize_requests_expires ON authorize_requests (expires_at);
CREATE INDEX authorize_requests_host ON authorize_requests (host_key, created_at);
