-- Server replicas sharing this database, and which replica holds each
-- agent's remote-login tunnel, so that an engineer on one replica is
-- relayed to an agent whose tunnel lives on another.

-- One row per running `serve` process, refreshed every heartbeat; a row
-- not seen for `relay.replica_timeout` belongs to a dead replica and is
-- swept by the others (its live sessions ended, its tunnels forgotten).
CREATE TABLE replicas (
    id          TEXT    PRIMARY KEY,
    -- Where other replicas reach this one's SSH relay; NULL when it
    -- listens on an unspecified address and no relay.advertise is set.
    ssh_address TEXT,
    version     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);

-- One row per agent tunnel a replica holds.
CREATE TABLE relay_tunnels (
    replica      TEXT    NOT NULL,
    conn         INTEGER NOT NULL,
    agent_id     INTEGER NOT NULL REFERENCES agents (id),
    connected_at INTEGER NOT NULL,
    PRIMARY KEY (replica, conn)
);
CREATE INDEX relay_tunnels_agent ON relay_tunnels (agent_id);
