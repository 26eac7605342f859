-- Flavorbox state, version 11: the CPU time each replica spent for each
-- tenant, per minute of the database's clock (minutes since the Unix
-- epoch), so that a tenant's CPU budget is one budget across replicas.
-- Each replica adds what it used at most every second and reads what the
-- others used; minutes past are removed.
CREATE TABLE cpu_usage (
    tenant  TEXT NOT NULL,
    replica TEXT NOT NULL,
    minute  BIGINT NOT NULL,
    micros  BIGINT NOT NULL,
    CONSTRAINT cpu_usage_pk PRIMARY KEY (tenant, replica, minute)
);
