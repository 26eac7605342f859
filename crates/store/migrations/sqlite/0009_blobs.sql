-- Flavorbox state, version 9: where `.wasm` blobs live.
--
-- On SQLite (the CLI and a single server) blobs stay files in the home's
-- content-addressed `blobs/sha256/` directory, collected under the write
-- lock every writer takes. Replicas on PostgreSQL keep them in the database
-- instead (a `blobs` table that every flavor row references). Nothing
-- changes here.
SELECT 1;
