-- Notifications. Three steps, each durable:
-- 1. `outbox`: a row per history entry that may notify someone, written in the
--    same transaction as the entry, so no event is ever lost.
-- 2. The notifier claims outbox rows (lease, like timers), works out who is to
--    hear of it, and writes one `deliveries` row per recipient and channel
--    (and `alerts` for escalations) in one transaction with marking the
--    outbox row done. The unique keys make a repeated expansion a no-op.
-- 3. Deliveries are claimed when due (quiet hours put `not_before` later),
--    sent, and marked sent; a failure is retried with back-off until the last
--    attempt, then marked failed and recorded on the case.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES cases (id),
    seq           INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    claimed_until INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    done_at       INTEGER,
    UNIQUE (case_id, seq)
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;

CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES cases (id),
    -- the history entry that caused it
    seq           INTEGER NOT NULL,
    -- which rule: assigned, reminder, reassign_prompt, escalation:3, survey, ...
    reason        TEXT    NOT NULL,
    channel       TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    recipient_id  INTEGER REFERENCES users (id),
    recipient     TEXT    NOT NULL,
    -- e-mail address, phone number or URL
    address       TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    not_before    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    claimed_until INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent_at       INTEGER,
    UNIQUE (case_id, seq, reason, channel, address)
);
CREATE INDEX deliveries_due ON deliveries (not_before) WHERE status = 'pending';
CREATE INDEX deliveries_case ON deliveries (case_id);

-- Escalation alerts: shown to the manager until acknowledged.
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases (id),
    seq             INTEGER NOT NULL,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    level           INTEGER,
    message         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    UNIQUE (case_id, seq, user_id)
);
CREATE INDEX alerts_user ON alerts (user_id, acknowledged_at);

-- Satisfaction surveys: one per closed case; the link's token is kept only
-- as a SHA-256 hash.
CREATE TABLE surveys (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    -- the closing entry; a reopened and closed again case gets a new survey
    seq         INTEGER NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    email       TEXT    NOT NULL,
    engineer_id INTEGER REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    reminded_at INTEGER,
    answered_at INTEGER,
    rating      INTEGER CHECK (rating BETWEEN 1 AND 5),
    comment     TEXT,
    UNIQUE (case_id, seq)
);

-- Per-recipient quiet hours ("22:00-07:00" in the user's time zone); P1
-- notifications ignore them.
ALTER TABLE users ADD COLUMN quiet_hours TEXT;
ALTER TABLE users ADD COLUMN timezone TEXT;
