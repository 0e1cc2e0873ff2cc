-- trustgate's control plane, version 15: clients found by their id alone.
--
-- The origin-level token, revocation and authorization endpoints serve a client of any host:
-- they find the host that registered a client id in one indexed read (see
-- RegisteredOAuthClientHost).
CREATE INDEX oauth_clients_id ON oauth_clients (id);
