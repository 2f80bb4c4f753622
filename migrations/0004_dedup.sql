-- Duplicates: one "me too" per supporter and report, and the index the intake re-check uses.
-- A supporter is known by a hash of their contact (e-mail or phone) or of the request's
-- Idempotency-Key, never by the contact itself, so this table holds no personal data.
CREATE TABLE report_supports (
    report_id   uuid NOT NULL REFERENCES reports (id),
    key_hash    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, key_hash)
);

-- Intake looks for open reports near a point inside the dedup lock: a partial GiST index over
-- the open ones keeps that look-up small however much closed history accumulates.
CREATE INDEX reports_open_location_gist ON reports USING gist (location)
    WHERE status IN ('new', 'acknowledged', 'scheduled', 'in_progress') AND NOT hidden;
