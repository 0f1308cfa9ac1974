-- SLA policies and business calendars managed through the API (the config
-- file's own stay in the file). `spec` is the JSON a person sent, validated.
CREATE TABLE sla_settings (
    kind       TEXT    NOT NULL CHECK (kind IN ('policy', 'calendar')),
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER REFERENCES users (id),
    PRIMARY KEY (kind, name)
);
