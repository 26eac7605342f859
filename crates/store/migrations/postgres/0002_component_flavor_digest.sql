-- Flavorbox state, version 2.
--
-- A component remembers which registered flavor content validated its
-- config (NULL for built-in flavors, which change only with the host), so a
-- flavor deleted and registered again under the same name does not silently
-- take over a config it never saw.
ALTER TABLE components ADD COLUMN flavor_sha256 TEXT;
