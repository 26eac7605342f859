-- The identity of a state directory's database: one row, made on first
-- open and mirrored in the directory's `state-id` file. A start that finds
-- the file (or blobs) but no database, or a database with another identity,
-- refuses instead of silently starting empty.
CREATE TABLE state_identity (
    singleton  INTEGER NOT NULL,
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT state_identity_pk PRIMARY KEY (singleton),
    CONSTRAINT state_identity_one CHECK (singleton = 1)
);
