-- Intake's first statement in one round trip: claim the Idempotency-Key, then (for services
-- with dedup) take the area's advisory locks and read the candidates, with their references so
-- the duplicate's response can name its parent without reading it back.
--
-- The claim comes before the locks, as it did when they were two statements: a twin retry of
-- the same key waits on the key's row lock while holding no area lock, so the two cannot
-- deadlock. A key seen before returns one row with claimed = false and takes no lock. Otherwise
-- the candidates come back with claimed = true, followed by one marker row (claimed = true,
-- id NULL) so the claim is known even when there are no candidates.
--
-- VOLATILE, so in READ COMMITTED the candidate query takes a fresh snapshot after the locks are
-- held and sees a twin intake's report committed meanwhile (as 0004's function did).
CREATE FUNCTION intake_claim_and_candidates(
    claim_scope text, claim_key text, claim_hash bytea,
    lock_keys bigint[], codes text[], since timestamptz, exclude uuid, area geometry)
RETURNS TABLE (claimed boolean, id uuid, reference text, service_code text, description text,
               lon double precision, lat double precision, requested_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF claim_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
        VALUES (claim_scope, claim_key, claim_hash, 0, 'null')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT false, NULL::uuid, NULL::text, NULL::text, NULL::text,
                NULL::double precision, NULL::double precision, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;
    IF area IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(k) FROM unnest(lock_keys) AS k;
        RETURN QUERY
            SELECT true, r.id, r.reference, r.service_code, r.description, ST_X(r.location),
                   ST_Y(r.location), r.requested_at
            FROM reports r
            WHERE r.status IN ('new', 'acknowledged', 'scheduled', 'in_progress') AND NOT r.hidden
              AND r.service_code = ANY(codes) AND r.requested_at >= since AND r.id <> exclude
              AND r.location && area
            LIMIT 500;
    END IF;
    RETURN QUERY SELECT true, NULL::uuid, NULL::text, NULL::text, NULL::text,
        NULL::double precision, NULL::double precision, NULL::timestamptz;
END $$;

-- Replaced by the function above (the same locks and candidate query).
DROP FUNCTION dedup_lock_and_candidates(bigint[], text[], timestamptz, uuid, geometry);
