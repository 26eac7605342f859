-- Flavorbox state, version 12: a push job another replica can take over.
--
-- `upload_key` names the job's uploaded archive in the shared uploads
-- store (an S3-compatible bucket), when the server has one; `dry_run` is
-- the rest of the request a new owner needs. `attempt` counts the owners
-- the job had: a replica claims a job whose lease ran out by raising it,
-- and every write of the job is conditioned on the attempt its writer
-- holds, so the replica that lost the job (even one restarted under the
-- same name) writes nothing more to it.
ALTER TABLE jobs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN upload_key TEXT;
ALTER TABLE jobs ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_image ON jobs (tenant, image, status);
