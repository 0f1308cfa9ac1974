-- Durable timers (SLA deadlines, ship-by dates, ...). Each row is one deadline:
-- due_at says when it fires. A runner claims a due row with a lease
-- (claimed_until), runs its handler, then records fired_at. A claim whose lease
-- ran out (the runner died) is taken again, so every timer fires at least
-- once; handlers are idempotent by timer id, so its effect happens once.
CREATE TABLE timers (
    id            INTEGER PRIMARY KEY,
    -- what the timer belongs to, e.g. "case:42", and which deadline of it
    owner         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    due_at        INTEGER NOT NULL,
    payload       TEXT    NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    claimed_until INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    fired_at      INTEGER,
    late          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner, kind)
);
CREATE INDEX timers_pending ON timers (due_at) WHERE fired_at IS NULL;
