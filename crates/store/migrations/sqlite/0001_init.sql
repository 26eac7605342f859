-- Flavorbox state, version 1.
--
-- Every table is keyed by (tenant, name): a tenant's rows are invisible to
-- every other tenant, and names may repeat across tenants.
-- Kept to types and syntax that SQLite and PostgreSQL both accept (TEXT,
-- composite keys, named constraints), so the same migrations serve a shared
-- PostgreSQL database later. Timestamps are RFC 3339 UTC strings written by
-- the host, not by the database, for the same reason.

-- Flavors registered from a .wasm component. The component itself lives in
-- the content-addressed blob store under `sha256`. Built-in flavors are not
-- rows here.
CREATE TABLE flavors (
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    CONSTRAINT flavors_pk PRIMARY KEY (tenant, name)
);

-- Registry credentials. Never handed to guests.
CREATE TABLE secrets (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT secrets_pk PRIMARY KEY (tenant, name)
);

-- Registry components: a flavor (registered or built-in, so no foreign key
-- to `flavors`), a registry URI, the flavor-validated config and optionally
-- the secret the host pushes with. The composite foreign key keeps a
-- component from naming a missing secret, or another tenant's, even if a
-- writer skipped the store's own checks.
CREATE TABLE components (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    flavor      TEXT NOT NULL,
    uri         TEXT NOT NULL,
    config_json TEXT NOT NULL,
    secret      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT components_pk PRIMARY KEY (tenant, name),
    CONSTRAINT components_secret_fk FOREIGN KEY (tenant, secret)
        REFERENCES secrets (tenant, name)
);

CREATE INDEX components_by_flavor ON components (tenant, flavor);
CREATE INDEX components_by_secret ON components (tenant, secret);
