-- The release catalog (SPEC.md 8, issue 7): signed artifacts of the agent
-- itself (per target triple) and of device firmware and software (per
-- vendor/model). The signature is checked against the trusted keys when a
-- release is created; the artifact is uploaded afterwards and the release
-- is published only once its bytes match the signed SHA-256 and size.
--
-- Artifacts are kept in the database, in chunks of 1 MiB, not on disk: every
-- replica sharing one PostgreSQL serves them, and backups (VACUUM INTO,
-- pg_dump) hold them with the catalog that describes them. A chunk is read
-- by (release, seq), so a Range request reads only the chunks it covers.

CREATE TABLE releases (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('agent', 'firmware')),
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL CHECK (size > 0),
    notes           TEXT    NOT NULL DEFAULT '',
    signature       TEXT    NOT NULL,
    public_key      TEXT    NOT NULL,
    -- Offered to agents running a newer version too (a deliberate downgrade).
    allow_downgrade INTEGER NOT NULL DEFAULT 0,
    created_by      INTEGER REFERENCES users (id),
    created_at      INTEGER NOT NULL,
    -- Set when the uploaded artifact matched; only then is it served.
    published_at    INTEGER,
    UNIQUE (kind, target, version)
);

CREATE INDEX releases_target ON releases (kind, target, published_at);

CREATE TABLE release_chunks (
    release_id INTEGER NOT NULL REFERENCES releases (id),
    seq        INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (release_id, seq)
);

-- Every self-update outcome an agent reported (idempotent by its key).
CREATE TABLE agent_updates (
    id              INTEGER PRIMARY KEY,
    agent_id        INTEGER NOT NULL REFERENCES agents (id),
    release_id      INTEGER REFERENCES releases (id),
    idempotency_key TEXT    NOT NULL UNIQUE,
    from_version    TEXT    NOT NULL,
    to_version      TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT '',
    reported_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL
);

CREATE INDEX agent_updates_agent ON agent_updates (agent_id, id);

-- The agent's clock minus the server's at its last heartbeat, in seconds.
ALTER TABLE agents ADD COLUMN clock_skew_secs INTEGER;
