-- citypin schema, version 1. Never edit a landed migration: add a new one.
-- Storage SRID is 4326 (lon/lat). Ids are UUIDv7 so no global sequence is needed to create one.

CREATE EXTENSION IF NOT EXISTS postgis;

-- The service catalogue: what citizens can report, who handles it, how duplicates are judged.
CREATE TABLE services (
    service_code        text PRIMARY KEY CHECK (service_code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    service_name        text NOT NULL,
    description         text NOT NULL DEFAULT '',
    group_name          text NOT NULL,
    keywords            text[] NOT NULL DEFAULT '{}',
    agency              text NOT NULL,
    sla_hours           integer CHECK (sla_hours > 0),
    dedup_radius_m      double precision NOT NULL DEFAULT 50 CHECK (dedup_radius_m >= 0),
    dedup_window_hours  integer NOT NULL DEFAULT 168 CHECK (dedup_window_hours >= 0),
    dedup_params        jsonb NOT NULL DEFAULT '{}',
    attributes          jsonb NOT NULL DEFAULT '[]',
    active              boolean NOT NULL DEFAULT true,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Personal data lives here and only here; reports point at it. Never exported, tiled or logged.
CREATE TABLE reporters (
    id              uuid PRIMARY KEY,
    name            text,
    email           text,
    phone           text,
    consent_at      timestamptz NOT NULL,
    consent_text    text NOT NULL,
    notify          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('open311-client', 'agent', 'crew', 'analyst', 'admin')),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Every change to a report takes the next number, so an index replica can catch up by
-- asking for everything after the last number it saw.
CREATE SEQUENCE report_change_seq;

CREATE TABLE reports (
    id              uuid PRIMARY KEY,
    reference       text NOT NULL UNIQUE,
    external_id     text UNIQUE,
    jurisdiction_id text NOT NULL DEFAULT 'city',
    service_code    text NOT NULL REFERENCES services (service_code),
    status          text NOT NULL CHECK (status IN (
                        'new', 'acknowledged', 'scheduled', 'in_progress',
                        'fixed', 'duplicate', 'not_actionable', 'referred', 'cancelled')),
    status_notes    text,
    description     text NOT NULL DEFAULT '',
    address         text,
    zipcode         text,
    agency          text,
    channel         text NOT NULL CHECK (channel IN (
                        'web', 'app', 'phone', 'email', 'social', 'field', 'open311', 'import')),
    location        geometry(Point, 4326) NOT NULL,
    h3_cell         bigint NOT NULL,
    requested_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    closed_at       timestamptz,
    due_at          timestamptz,
    duplicate_of    uuid REFERENCES reports (id),
    supporters      integer NOT NULL DEFAULT 0 CHECK (supporters >= 0),
    media_url       text,
    attributes      jsonb NOT NULL DEFAULT '{}',
    reporter_id     uuid REFERENCES reporters (id),
    created_by      uuid REFERENCES api_tokens (id),
    hidden          boolean NOT NULL DEFAULT false,
    change_seq      bigint NOT NULL DEFAULT nextval('report_change_seq'),
    CONSTRAINT reports_location_valid CHECK (
        -- BETWEEN is false for NaN and infinities, which PostgreSQL orders past every number.
        ST_X(location) BETWEEN -180 AND 180 AND ST_Y(location) BETWEEN -90 AND 90
        AND ST_SRID(location) = 4326),
    CONSTRAINT reports_duplicate_has_parent CHECK (status <> 'duplicate' OR duplicate_of IS NOT NULL),
    CONSTRAINT reports_not_own_duplicate CHECK (duplicate_of IS DISTINCT FROM id)
);

CREATE INDEX reports_location_gist ON reports USING gist (location);
CREATE INDEX reports_requested_at ON reports (requested_at);
CREATE INDEX reports_updated_at ON reports (updated_at);
CREATE INDEX reports_change_seq ON reports (change_seq);
CREATE INDEX reports_service_status ON reports (service_code, status);
CREATE INDEX reports_duplicate_of ON reports (duplicate_of) WHERE duplicate_of IS NOT NULL;

-- Bump the change number on every update, and tell every listening citypin process.
CREATE FUNCTION reports_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.change_seq := nextval('report_change_seq');
    END IF;
    PERFORM pg_notify('citypin_reports', NEW.id::text || ' ' || NEW.change_seq::text);
    RETURN NEW;
END $$;

CREATE TRIGGER reports_touch BEFORE INSERT OR UPDATE ON reports
    FOR EACH ROW EXECUTE FUNCTION reports_touch();

-- The history: every state change, who and when. Append-only.
CREATE TABLE report_events (
    id          uuid PRIMARY KEY,
    report_id   uuid NOT NULL REFERENCES reports (id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (kind IN (
                    'created', 'status', 'duplicate', 'merge', 'unmerge', 'supporter', 'note', 'photo')),
    from_status text,
    to_status   text,
    note        text,
    actor_role  text NOT NULL,
    actor_token uuid REFERENCES api_tokens (id),
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX report_events_report ON report_events (report_id, at);

-- Who hears about a report's progress (its reporter, and "me too" supporters).
CREATE TABLE report_subscriptions (
    report_id   uuid NOT NULL REFERENCES reports (id),
    reporter_id uuid NOT NULL REFERENCES reporters (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, reporter_id)
);

-- Replays of POSTs with the same Idempotency-Key return the first response.
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status smallint NOT NULL,
    response_body   jsonb NOT NULL,
    report_id       uuid REFERENCES reports (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Events for the outside world (notifications, CRM sync), written in the same transaction
-- as the change they describe and delivered after commit.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    report_id    uuid NOT NULL REFERENCES reports (id),
    kind         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (created_at) WHERE delivered_at IS NULL;
