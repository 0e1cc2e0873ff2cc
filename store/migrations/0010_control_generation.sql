-- trustgate's control plane, version 10: the control-plane generation.
--
-- control_generation holds one counter that every transaction changing hosts, humans, servers,
-- tools, grants, agents, consents or upstream tokens increments (in the same transaction). A
-- reader that saw the same number before and after knows nothing it cached from those tables
-- has changed: the proxy's cache of them (package storecache) is never stale.
CREATE TABLE control_generation (
    id INTEGER NOT NULL PRIMARY KEY,
    n  BIGINT  NOT NULL
);
INSERT INTO control_generation (id, n) VALUES (1, 0);
