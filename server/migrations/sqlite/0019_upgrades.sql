-- Firmware and software upgrade campaigns (SPEC.md 8, issue 7): a signed
-- firmware release rolled out to selected devices in waves, within a
-- maintenance window, each device's job through the states of
-- `outpost_protocol::JobState`, every step recorded in `upgrade_events`.

CREATE TABLE campaigns (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL,
    release_id           INTEGER NOT NULL REFERENCES releases (id),
    state                TEXT    NOT NULL CHECK (state IN
                             ('draft', 'running', 'paused', 'stopped', 'aborted', 'completed')),
    -- The selection and the wave plan as given, for the record.
    selection            TEXT    NOT NULL,
    wave_plan            TEXT    NOT NULL,
    wave_count           INTEGER NOT NULL CHECK (wave_count > 0),
    -- 0 before the start; then the wave being rolled out (1-based).
    current_wave         INTEGER NOT NULL DEFAULT 0,
    -- A wave below its success threshold that an operator resumed past.
    accepted_wave        INTEGER NOT NULL DEFAULT 0,
    success_threshold    INTEGER NOT NULL CHECK (success_threshold BETWEEN 0 AND 100),
    error_threshold      INTEGER NOT NULL CHECK (error_threshold BETWEEN 0 AND 100),
    install_timeout_secs INTEGER NOT NULL CHECK (install_timeout_secs > 0),
    reboot_timeout_secs  INTEGER NOT NULL CHECK (reboot_timeout_secs > 0),
    -- Maintenance window: opens at each cron instant in the time zone, for
    -- the duration. No cron: always open.
    window_cron          TEXT,
    window_secs          INTEGER,
    window_tz            TEXT,
    -- Why it paused, stopped or was aborted.
    reason               TEXT,
    created_by           INTEGER REFERENCES users (id),
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    finished_at          INTEGER,
    updated_at           INTEGER NOT NULL
);

-- One device in one campaign: the job the agent looking after it runs.
CREATE TABLE upgrade_jobs (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    agent_id     INTEGER REFERENCES agents (id),
    wave         INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('scheduled', 'downloading', 'downloaded',
                     'installing', 'rebooting', 'verifying', 'succeeded', 'failed',
                     'rolled_back', 'skipped')),
    -- Handed to the agent (its wave and window are open).
    offered      BOOLEAN NOT NULL DEFAULT FALSE,
    step         TEXT,
    detail       TEXT    NOT NULL DEFAULT '',
    failure      TEXT,
    from_version TEXT,
    -- The version the device was last seen running during the job.
    version      TEXT,
    -- When the current state times out (no job stays in progress for ever).
    deadline     INTEGER,
    -- When the device was reloaded (the reboot timeout counts from here).
    reloaded_at  INTEGER,
    started_at   INTEGER,
    finished_at  INTEGER,
    case_id      INTEGER REFERENCES cases (id),
    updated_at   INTEGER NOT NULL,
    UNIQUE (campaign_id, device_id)
);
CREATE INDEX upgrade_jobs_agent ON upgrade_jobs (agent_id, state, offered);
CREATE INDEX upgrade_jobs_device ON upgrade_jobs (device_id, id);
CREATE INDEX upgrade_jobs_deadline ON upgrade_jobs (campaign_id, deadline);

-- Every step of every job and every campaign action, in order.
CREATE TABLE upgrade_events (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    job_id          INTEGER REFERENCES upgrade_jobs (id),
    -- agent, server or user.
    source          TEXT    NOT NULL,
    user_id         INTEGER REFERENCES users (id),
    state           TEXT,
    step            TEXT,
    detail          TEXT    NOT NULL DEFAULT '',
    failure         TEXT,
    version         TEXT,
    -- An agent report's key: each counts once.
    idempotency_key TEXT    UNIQUE,
    -- The agent's clock for its reports; ours otherwise.
    reported_at     INTEGER NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX upgrade_events_campaign ON upgrade_events (campaign_id, id);
CREATE INDEX upgrade_events_job ON upgrade_events (job_id, id);
CREATE TRIGGER upgrade_events_no_update BEFORE UPDATE ON upgrade_events
BEGIN
    SELECT RAISE(ABORT, 'upgrade events are append-only: UPDATE is refused');
END;
CREATE TRIGGER upgrade_events_no_delete BEFORE DELETE ON upgrade_events
BEGIN
    SELECT RAISE(ABORT, 'upgrade events are append-only: DELETE is refused');
END;
