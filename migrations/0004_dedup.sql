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

-- Intake's dedup look-up in one round trip: take the area's advisory locks (ascending), then
-- read the candidates. The function is VOLATILE, so in READ COMMITTED its query takes a fresh
-- snapshot after the locks are held and sees a twin intake's report committed meanwhile.
CREATE FUNCTION dedup_lock_and_candidates(
    lock_keys bigint[], codes text[], since timestamptz, exclude uuid, area geometry)
RETURNS TABLE (id uuid, service_code text, description text, lon double precision,
               lat double precision, requested_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k) FROM unnest(lock_keys) AS k;
    RETURN QUERY
        SELECT r.id, r.service_code, r.description, ST_X(r.location), ST_Y(r.location),
               r.requested_at
        FROM reports r
        WHERE r.status IN ('new', 'acknowledged', 'scheduled', 'in_progress') AND NOT r.hidden
          AND r.service_code = ANY(codes) AND r.requested_at >= since AND r.id <> exclude
          AND r.location && area
        LIMIT 500;
END $$;
