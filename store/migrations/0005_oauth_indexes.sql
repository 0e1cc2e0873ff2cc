-- trustgate's control plane, version 5: indexes the OAuth store's housekeeping needs.
--
-- Deleting a client revokes every code and token issued to it (so that a client registered
-- again under the same id, as a CIMD URL is, gets none of them back): by (host_key, client_id).
-- PruneOAuthRequests deletes expired rows: by expires_at.
CREATE INDEX oauth_requests_client ON oauth_requests (host_key, client_id);
CREATE INDEX oauth_requests_expires ON oauth_requests (expires_at);
