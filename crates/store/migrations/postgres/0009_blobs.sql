-- Flavorbox state, version 9: where `.wasm` blobs live.
--
-- Replicas sharing this database share the components too: each blob is a
-- row, and every flavor references its blob, so removing a blob that any
-- flavor of any tenant uses fails in the database (no lock, no race), and a
-- flavor cannot point at a blob that is not there. The blob is written in
-- the same transaction as the flavor row.
CREATE TABLE blobs (
    sha256     TEXT NOT NULL,
    content    BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT blobs_pk PRIMARY KEY (sha256)
);
ALTER TABLE flavors ADD CONSTRAINT flavors_blob_fk
    FOREIGN KEY (sha256) REFERENCES blobs (sha256);
