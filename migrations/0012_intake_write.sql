-- Intake's write in one round trip: everything one report's intake stores, in one call (the
-- statement before it, 0011's, claimed the key and read the candidates under the area lock).
--
-- The report goes in already in its final state: `new`, or `duplicate` of the parent the
-- service chose. A reference already taken writes nothing and returns no row (the caller draws
-- another). Otherwise: the `created` event and outbox row; the reporter's subscription (and to
-- the parent); for a duplicate, the `duplicate` events on both reports, the `report.duplicate`
-- outbox row and the parent's supporters raised; the claimed key's stored response. Returns
-- one row: the new report's change_seq, and the parent as it now is (the columns of
-- `reports::store::REPORT_COLUMNS`, NULL without a parent).
--
-- The ids of the rows it adds come from the caller (UUIDv7, in this order: created event,
-- created outbox row, the child's and the parent's duplicate events, duplicate outbox row), so
-- a history read by (at, id) lists them in the order they were written.
CREATE FUNCTION intake_write(
    new_id uuid, new_reference text, new_service_code text, new_status text,
    new_status_notes text, new_description text, new_address text, new_zipcode text,
    new_agency text, new_channel text, new_lon double precision, new_lat double precision,
    new_h3_cell bigint, new_requested_at timestamptz, new_updated_at timestamptz,
    new_closed_at timestamptz, new_due_at timestamptz, new_duplicate_of uuid,
    new_supporters integer, new_media_url text, new_attributes jsonb,
    reporter uuid, by_role text, by_token uuid, row_ids uuid[],
    link_parent uuid, link_parent_note text, link_data jsonb,
    claim_scope text, claim_key text, claim_response jsonb)
RETURNS TABLE (new_change_seq bigint, id uuid, reference text, external_id text,
               service_code text, status text, status_notes text, description text,
               address text, zipcode text, agency text, channel text, lon double precision,
               lat double precision, h3_cell bigint, requested_at timestamptz,
               updated_at timestamptz, closed_at timestamptz, due_at timestamptz,
               duplicate_of uuid, duplicate_of_reference text, supporters integer,
               media_url text, attributes jsonb, hidden boolean, change_seq bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    INSERT INTO reports (id, reference, service_code, status, status_notes, description,
        address, zipcode, agency, channel, location, h3_cell, requested_at, updated_at,
        closed_at, due_at, duplicate_of, supporters, media_url, attributes, reporter_id,
        created_by)
    VALUES (new_id, new_reference, new_service_code, new_status, new_status_notes,
        new_description, new_address, new_zipcode, new_agency, new_channel,
        ST_SetSRID(ST_MakePoint(new_lon, new_lat), 4326), new_h3_cell, new_requested_at,
        new_updated_at, new_closed_at, new_due_at, new_duplicate_of, new_supporters,
        new_media_url, new_attributes, reporter, by_token)
    ON CONFLICT (reference) DO NOTHING
    RETURNING change_seq INTO new_change_seq;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    INSERT INTO report_events
        (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
    VALUES (row_ids[1], new_id, 'created', NULL, 'new', NULL, by_role, by_token, '{}');
    INSERT INTO outbox (id, report_id, kind, payload)
    VALUES (row_ids[2], new_id, 'report.created', '{}');
    IF reporter IS NOT NULL THEN
        INSERT INTO report_subscriptions (report_id, reporter_id)
        SELECT new_id, reporter
        UNION ALL SELECT link_parent, reporter WHERE link_parent IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    IF claim_key IS NOT NULL THEN
        UPDATE idempotency_keys k
        SET response_status = 201, response_body = claim_response, report_id = new_id
        WHERE k.scope = claim_scope AND k.key = claim_key;
    END IF;
    IF link_parent IS NULL THEN
        RETURN NEXT; -- new_change_seq alone
        RETURN;
    END IF;

    INSERT INTO report_events
        (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
    VALUES (row_ids[3], new_id, 'duplicate', 'new', 'duplicate', new_status_notes, by_role,
                by_token, link_data),
           (row_ids[4], link_parent, 'duplicate', NULL, NULL, link_parent_note, by_role,
                by_token, link_data);
    INSERT INTO outbox (id, report_id, kind, payload)
    VALUES (row_ids[5], new_id, 'report.duplicate', link_data);
    RETURN QUERY
        UPDATE reports r SET supporters = GREATEST(r.supporters + 1, 0), updated_at = now()
        WHERE r.id = link_parent
        RETURNING new_change_seq, r.id, r.reference, r.external_id, r.service_code, r.status,
            r.status_notes, r.description, r.address, r.zipcode, r.agency, r.channel,
            ST_X(r.location), ST_Y(r.location), r.h3_cell, r.requested_at, r.updated_at,
            r.closed_at, r.due_at, r.duplicate_of,
            (SELECT p.reference FROM reports p WHERE p.id = r.duplicate_of), r.supporters,
            r.media_url, r.attributes, r.hidden, r.change_seq;
END $$;
