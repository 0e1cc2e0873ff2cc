-- trustgate's control plane, version 6: password sign-in.
--
-- users.password_hash is the argon2id PHC string of the human's password ('' when the human has
-- none yet: pre-authorized by an admin, who claims the account by choosing one at first sign-in).
-- It is never part of store.User: only SetUserPassword and GetUserPasswordHash touch it.
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
