-- trustgate's control plane, version 25: a host's conditions on a tool's arguments.
--
-- tools.arg_conditions: the conditions as canonical JSON (schema.ArgumentConditions: prefix,
-- max, min, one_of per argument name), '' for none. An enabled tool with conditions has its
-- server_* relationship caveated with arguments_match and this context; a sync or a PutTool
-- keeps them, only SetToolConditions changes them.
ALTER TABLE tools ADD COLUMN arg_conditions TEXT NOT NULL DEFAULT '';
