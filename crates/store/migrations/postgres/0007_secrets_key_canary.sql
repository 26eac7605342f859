-- What the operator's secrets key sealed when it first served this
-- database: a start (of any server sharing the database) opens it with its
-- own key and refuses to start when it cannot, instead of failing later,
-- secret by secret, at push time.
CREATE TABLE secrets_key_canary (
    singleton  INTEGER NOT NULL,
    sealed     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT secrets_key_canary_pk PRIMARY KEY (singleton),
    CONSTRAINT secrets_key_canary_one CHECK (singleton = 1)
);
