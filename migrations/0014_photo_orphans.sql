-- Photo files that may have no row pointing at them. An upload notes each file here (or
-- refreshes `noted_at`) before it writes the file, so a failed transaction, an idempotent replay
-- or a process that dies between the write and the commit all leave a candidate behind. No
-- request deletes a file: the background sweep (src/photos/sweep.rs) claims candidates noted
-- longer ago than the grace period (FOR UPDATE SKIP LOCKED, any replica), removes the file only
-- when no committed `photos` row references it, and drops the candidate, all before it commits.
-- An upload refreshing a claimed candidate waits for that sweep to commit, then writes the file
-- again, so a file referenced by a commit is never the one a sweep removes.
CREATE TABLE photo_orphans (
    sha256    text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    noted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photo_orphans_noted_at ON photo_orphans (noted_at);
