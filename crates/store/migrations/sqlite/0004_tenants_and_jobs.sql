-- Flavorbox state, version 4: what the multi-tenant server adds.
--
-- Tenants the server's operator created, each with the SHA-256 of its bearer
-- token (the token itself is shown once and never stored). The local CLI's
-- tenant, `default`, has no row: it needs no token.
CREATE TABLE tenants (
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    CONSTRAINT tenants_pk PRIMARY KEY (name),
    CONSTRAINT tenants_token_uq UNIQUE (token_sha256)
);

-- Push jobs: an uploaded `docker save` tarball pushed in the background.
-- Kept in the database, not in a server's memory, so any replica can answer
-- `GET /v1/jobs/{id}` and a restart can tell what it interrupted.
-- `detail_json` holds progress, digest, warnings and the error.
CREATE TABLE jobs (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    component   TEXT NOT NULL,
    image       TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail_json TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT jobs_pk PRIMARY KEY (tenant, id)
);

-- Blob garbage collection asks whether any tenant still uses a digest.
CREATE INDEX flavors_by_sha256 ON flavors (sha256);
