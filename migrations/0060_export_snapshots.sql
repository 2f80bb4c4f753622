-- The export snapshots' schedule (src/exports/snapshots/): one row. A replica that finds the
-- last generation older than CITYPIN_SNAPSHOT_INTERVAL_SECS (or its files missing) claims the
-- row with FOR UPDATE SKIP LOCKED and holds it while it writes the files, renames them into
-- place and records the generation here, all before it commits; every other replica skips the
-- locked row, so one generation is written by one replica. A replica that dies while writing
-- drops its connection, the lock goes with it, and the next tick of any replica starts again.
CREATE TABLE export_snapshots (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation  bigint NOT NULL DEFAULT 0,
    finished_at timestamptz,
    features    bigint NOT NULL DEFAULT 0
);
INSERT INTO export_snapshots DEFAULT VALUES;
