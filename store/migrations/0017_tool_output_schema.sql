-- trustgate's control plane, version 17: a tool's output schema.
--
-- tools.output_schema: JSON text of the outputSchema the tool declares ('' when it declares
-- none). A denied call of a tool with an output schema is answered without structuredContent,
-- which clients check against that schema. Tools stored before have '' until their server's
-- next sync.
ALTER TABLE tools ADD COLUMN output_schema TEXT NOT NULL DEFAULT '';
