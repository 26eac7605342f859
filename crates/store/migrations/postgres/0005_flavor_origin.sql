-- Flavorbox state, version 5: where a flavor came from.
--
-- A flavor registered from an OCI registry (`flavorbox flavor register
-- oci://HOST/REPO:TAG`) records the source as given and the manifest digest
-- it resolved to, so `flavor describe` can show it and `flavor update` can
-- tell whether the tag has moved; `origin_key` is the id (SHA-256 of the
-- public key) whose signature was verified, if one was required. All NULL
-- for a flavor registered from a file. Plain TEXT columns with no default:
-- the same ALTER works on PostgreSQL.
ALTER TABLE flavors ADD COLUMN origin_reference TEXT;
ALTER TABLE flavors ADD COLUMN origin_digest TEXT;
ALTER TABLE flavors ADD COLUMN origin_key TEXT;
