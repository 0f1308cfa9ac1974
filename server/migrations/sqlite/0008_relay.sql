-- The remote-login relay: experts escalated onto a case, every session
-- through the relay, and every connection attempt, allowed or refused.

-- Experts an engineer escalated the case to: they may reach the case's
-- device through the relay like the assignee.
CREATE TABLE case_experts (
    case_id    INTEGER NOT NULL REFERENCES cases (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    added_by   INTEGER REFERENCES users (id),
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (case_id, user_id)
);

-- One row per relayed connection; ended_at NULL while it is live. The
-- replica column names the server process holding it.
CREATE TABLE remote_sessions (
    id                INTEGER PRIMARY KEY,
    case_id           INTEGER NOT NULL REFERENCES cases (id),
    device_id         INTEGER NOT NULL REFERENCES devices (id),
    user_id           INTEGER NOT NULL REFERENCES users (id),
    agent_id          INTEGER NOT NULL REFERENCES agents (id),
    source            TEXT    NOT NULL,
    target            TEXT    NOT NULL,
    port              INTEGER NOT NULL,
    replica           TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    bytes_to_device   INTEGER NOT NULL DEFAULT 0,
    bytes_from_device INTEGER NOT NULL DEFAULT 0,
    end_reason        TEXT,
    kill_requested_at INTEGER,
    kill_requested_by INTEGER REFERENCES users (id)
);
CREATE INDEX remote_sessions_live ON remote_sessions (replica) WHERE ended_at IS NULL;
CREATE INDEX remote_sessions_case ON remote_sessions (case_id);

-- Every attempt to reach a device through the relay.
CREATE TABLE remote_attempts (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    username   TEXT    NOT NULL,
    user_id    INTEGER REFERENCES users (id),
    source     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    port       INTEGER NOT NULL,
    allowed    INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    case_id    INTEGER REFERENCES cases (id),
    session_id INTEGER REFERENCES remote_sessions (id)
);
CREATE INDEX remote_attempts_at ON remote_attempts (at);
