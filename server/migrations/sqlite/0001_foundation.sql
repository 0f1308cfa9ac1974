-- Outpost foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, same columns, same meaning. Instants are INTEGER microseconds since the
-- Unix epoch (UTC) on both backends, so ordering, range search and the history hash
-- see the same value everywhere.

-- Customer organisations. customer_code is the short ID a caller keys in on the phone.
CREATE TABLE organizations (
    id            INTEGER PRIMARY KEY,
    customer_code TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    phone         TEXT,
    email         TEXT,
    address       TEXT,
    notes         TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX organizations_phone ON organizations (phone);

CREATE TABLE sites (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    address         TEXT,
    timezone        TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE projects (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (organization_id, name)
);

-- People on a project, from both sides: the customer's and ours (vendor).
CREATE TABLE participants (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    side       TEXT    NOT NULL CHECK (side IN ('customer', 'vendor')),
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    phone      TEXT,
    email      TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX participants_phone ON participants (phone);

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    organization_id  INTEGER NOT NULL REFERENCES organizations (id),
    site_id          INTEGER REFERENCES sites (id),
    name             TEXT    NOT NULL,
    device_type      TEXT    NOT NULL,
    vendor           TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    serial           TEXT    NOT NULL,
    firmware_version TEXT,
    warranty_end     TEXT,   -- ISO date, inclusive
    created_at       INTEGER NOT NULL,
    UNIQUE (vendor, serial)
);
CREATE INDEX devices_serial ON devices (serial);
CREATE INDEX devices_org ON devices (organization_id);

CREATE TABLE contracts (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id),
    number          TEXT    NOT NULL UNIQUE,
    starts_on       TEXT    NOT NULL,  -- ISO date
    ends_on         TEXT    NOT NULL,  -- ISO date, inclusive
    coverage        TEXT    NOT NULL,  -- e.g. 24x7, 7x8, 5x8
    sla_policy      TEXT,              -- policy name; NULL = default policy
    calendar        TEXT,              -- business calendar name; NULL = policy default
    description     TEXT,
    created_at      INTEGER NOT NULL,
    CHECK (ends_on >= starts_on)
);

CREATE TABLE contract_devices (
    contract_id INTEGER NOT NULL REFERENCES contracts (id),
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    PRIMARY KEY (contract_id, device_id)
);
CREATE INDEX contract_devices_device ON contract_devices (device_id);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    username        TEXT    NOT NULL UNIQUE,
    display_name    TEXT    NOT NULL,
    email           TEXT,
    mobile          TEXT,
    role            TEXT    NOT NULL CHECK (role IN
                    ('admin', 'dispatcher', 'engineer', 'expert', 'rma_admin', 'manager', 'customer')),
    manager_level   INTEGER CHECK (manager_level BETWEEN 1 AND 5),
    organization_id INTEGER REFERENCES organizations (id),
    active          INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    CHECK ((role = 'manager') = (manager_level IS NOT NULL)),
    CHECK ((role = 'customer') = (organization_id IS NOT NULL))
);

-- Engineers' SSH public keys (used by the remote-login relay).
CREATE TABLE ssh_keys (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    public_key  TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL UNIQUE,
    comment     TEXT,
    created_at  INTEGER NOT NULL
);

-- API tokens: only the SHA-256 of the token is kept; the token is shown once.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- One row per year: the last case number handed out. Incremented inside the
-- transaction that creates the case, so numbers are unique and never reused.
CREATE TABLE case_counters (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE cases (
    id              INTEGER PRIMARY KEY,
    number          TEXT    NOT NULL UNIQUE,
    organization_id INTEGER REFERENCES organizations (id),
    contract_id     INTEGER REFERENCES contracts (id),
    device_id       INTEGER REFERENCES devices (id),
    caller_name     TEXT    NOT NULL,
    caller_company  TEXT,
    caller_phone    TEXT,
    caller_email    TEXT,
    caller_contract TEXT,
    summary         TEXT    NOT NULL,
    details         TEXT    NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 4),
    status          TEXT    NOT NULL,
    case_type       TEXT    NOT NULL,
    vendor          TEXT,
    channel         TEXT    NOT NULL,
    assignee_id     INTEGER REFERENCES users (id),
    created_by      INTEGER REFERENCES users (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    responded_at    INTEGER,
    resolved_at     INTEGER,
    closed_at       INTEGER,
    -- head of the history chain: seq and hash of the newest activity
    last_seq        INTEGER NOT NULL,
    head_hash       TEXT    NOT NULL
);
CREATE INDEX cases_created ON cases (created_at, id);
CREATE INDEX cases_closed ON cases (closed_at);
CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_org ON cases (organization_id, created_at);
CREATE INDEX cases_assignee ON cases (assignee_id);
CREATE INDEX cases_device ON cases (device_id);
CREATE INDEX cases_vendor ON cases (vendor);

-- The case history. Append-only: the triggers below refuse UPDATE and DELETE,
-- and each row carries the hash of the previous one (admin verify checks it).
CREATE TABLE activities (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    visibility  TEXT    NOT NULL CHECK (visibility IN ('public', 'internal')),
    author_id   INTEGER REFERENCES users (id),
    author_name TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (case_id, seq)
);

CREATE TRIGGER activities_no_update BEFORE UPDATE ON activities
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only: UPDATE of activities is refused');
END;

CREATE TRIGGER activities_no_delete BEFORE DELETE ON activities
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only: DELETE of activities is refused');
END;

CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases
BEGIN
    SELECT RAISE(ABORT, 'cases are never deleted: DELETE of cases is refused');
END;
