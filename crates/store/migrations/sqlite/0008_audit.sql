-- The audit trail: one row per decision (a check, a push, its outcome) and
-- per change of a flavor or registry component. Rows are only ever added,
-- and removed by the retention sweep or with their tenant; `at` is the
-- database's clock (fixed-width RFC 3339 UTC, so text order is time order).
-- `id` orders rows for keyset paging (SQLite's rowid; a PostgreSQL backend
-- declares it an identity column).
CREATE TABLE audit (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    action        TEXT NOT NULL,
    verdict       TEXT NOT NULL,
    image         TEXT,
    component     TEXT,
    flavor        TEXT,
    flavor_sha256 TEXT,
    reason        TEXT,
    digest        TEXT,
    token_id      TEXT,
    request_id    TEXT,
    replica       TEXT NOT NULL
);
CREATE INDEX audit_tenant_id ON audit (tenant, id);
CREATE INDEX audit_tenant_image_id ON audit (tenant, image, id);
CREATE INDEX audit_at ON audit (at);
