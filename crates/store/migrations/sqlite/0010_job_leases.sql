-- Flavorbox state, version 10: push jobs have an owner and a lease.
--
-- `owner` names the server (replica) running the job; `lease_until` (the
-- database's clock, RFC 3339 UTC) is how long it may go on without
-- renewing. The owner renews its jobs' leases while it lives; any replica
-- marks a job whose lease ran out `interrupted`, and every write of a job
-- is conditioned on its owner and on the job still being active, so a
-- replica that lost its job (paused past its lease) writes nothing more
-- to it. A restart marks only its own jobs, never another replica's.
-- Rows from before have neither: their lease counts as run out.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
CREATE INDEX jobs_by_owner ON jobs (owner, status);
