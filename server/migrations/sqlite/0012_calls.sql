-- Incoming calls reported by a phone system or IVR (POST /api/v1/calls):
-- the caller's number, when, and the organisation it matched, if one did.
CREATE TABLE calls (
    id              INTEGER PRIMARY KEY,
    caller          TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    recorded_by     INTEGER NOT NULL REFERENCES users (id),
    organization_id INTEGER REFERENCES organizations (id)
);
CREATE INDEX calls_received ON calls (received_at);
