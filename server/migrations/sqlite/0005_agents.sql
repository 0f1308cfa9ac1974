-- Agents: enrolment tokens, enrolled agents, processed agent messages, the
-- LLDP topology, and the link from a fault to the case that tracks it.

-- One-time enrolment tokens, created by an admin or dispatcher for a
-- customer (and optionally a site). Only the SHA-256 of the token is kept.
CREATE TABLE enrollment_tokens (
    id              INTEGER PRIMARY KEY,
    token_hash      TEXT    NOT NULL UNIQUE,
    organization_id INTEGER NOT NULL REFERENCES organizations (id),
    site_id         INTEGER REFERENCES sites (id),
    note            TEXT,
    created_by      INTEGER REFERENCES users (id),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    agent_id        INTEGER
);

CREATE TABLE agents (
    id                 INTEGER PRIMARY KEY,
    uuid               TEXT    NOT NULL UNIQUE,
    organization_id    INTEGER NOT NULL REFERENCES organizations (id),
    site_id            INTEGER REFERENCES sites (id),
    -- OpenSSH public key (ssh-ed25519 ...) and its SHA256 fingerprint
    public_key         TEXT    NOT NULL,
    fingerprint        TEXT    NOT NULL UNIQUE,
    hostname           TEXT    NOT NULL,
    agent_version      TEXT    NOT NULL,
    os                 TEXT    NOT NULL,
    arch               TEXT    NOT NULL,
    heartbeat_secs     INTEGER NOT NULL,
    enrolled_at        INTEGER NOT NULL,
    last_seen_at       INTEGER,
    spool_depth        INTEGER,
    -- set while the agent is considered lost (no heartbeat for 3 intervals)
    lost_at            INTEGER,
    revoked_at         INTEGER
);
CREATE INDEX agents_org ON agents (organization_id);

-- Idempotency keys of agent messages already applied.
CREATE TABLE agent_events (
    idempotency_key TEXT    PRIMARY KEY,
    agent_id        INTEGER NOT NULL REFERENCES agents (id),
    received_at     INTEGER NOT NULL,
    case_id         INTEGER REFERENCES cases (id)
);

-- The latest LLDP report of each agent (replaced as a whole).
CREATE TABLE topology_links (
    id                INTEGER PRIMARY KEY,
    agent_id          INTEGER NOT NULL REFERENCES agents (id),
    device            TEXT    NOT NULL,
    local_port        TEXT    NOT NULL,
    remote_chassis_id TEXT,
    remote_sys_name   TEXT,
    remote_port       TEXT    NOT NULL,
    remote_port_descr TEXT,
    collected_at      INTEGER NOT NULL
);
CREATE INDEX topology_agent ON topology_links (agent_id);

-- Devices an agent looks after: which agent, under which target name, and
-- what it last reported.
ALTER TABLE devices ADD COLUMN agent_id INTEGER REFERENCES agents (id);
ALTER TABLE devices ADD COLUMN agent_target TEXT;
ALTER TABLE devices ADD COLUMN software_version TEXT;
ALTER TABLE devices ADD COLUMN sys_object_id TEXT;
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
CREATE INDEX devices_agent ON devices (agent_id);

-- A case opened by an agent for a fault: at most one open case per fault key
-- and agent, enforced here so two replicas cannot open two.
ALTER TABLE cases ADD COLUMN agent_id INTEGER REFERENCES agents (id);
ALTER TABLE cases ADD COLUMN fault_key TEXT;
CREATE UNIQUE INDEX cases_open_fault ON cases (agent_id, fault_key)
    WHERE fault_key IS NOT NULL AND status NOT IN ('resolved', 'closed');
