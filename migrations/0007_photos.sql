-- Photos attached to reports. The files live in a content-addressed store (named by the SHA-256
-- of the re-encoded bytes); this table holds the references, written in the same transaction as
-- the report or the "photo" history event. The original upload is never stored.
CREATE TABLE photos (
    id              uuid PRIMARY KEY,
    report_id       uuid NOT NULL REFERENCES reports (id),
    -- report: sent with the report; before/after/other: added later by staff.
    kind            text NOT NULL CHECK (kind IN ('report', 'before', 'after', 'other')),
    media_type      text NOT NULL CHECK (media_type IN ('image/jpeg')),
    display_sha256  text NOT NULL CHECK (display_sha256 ~ '^[0-9a-f]{64}$'),
    display_width   integer NOT NULL CHECK (display_width > 0),
    display_height  integer NOT NULL CHECK (display_height > 0),
    thumb_sha256    text NOT NULL CHECK (thumb_sha256 ~ '^[0-9a-f]{64}$'),
    thumb_width     integer NOT NULL CHECK (thumb_width > 0),
    thumb_height    integer NOT NULL CHECK (thumb_height > 0),
    added_by_role   text NOT NULL,
    added_by_token  uuid REFERENCES api_tokens (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_report ON photos (report_id, created_at);
-- Clean-up after a failed upload asks whether any row still points at a file.
CREATE INDEX photos_display_sha256 ON photos (display_sha256);
CREATE INDEX photos_thumb_sha256 ON photos (thumb_sha256);
