-- What the server keeps about itself, and the SLA engine's bookkeeping.
--
-- meta: small named values, e.g. the fingerprint of the SLA configuration
-- for which every open case's timers were last rebuilt (see sla::engine).
CREATE TABLE meta (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);
-- The history seq up to which the SLA engine has synced the case's timers;
-- NULL: not since it was created or its SLA inputs changed. A case behind
-- (sla_seq < last_seq) changed after its last sync, e.g. the server stopped in
-- between; the engine finds it through cases_sla_stale, never by a scan.
ALTER TABLE cases ADD COLUMN sla_seq BIGINT;
-- Existing cases count as synced: without a fingerprint in meta, the first
-- start after this migration rebuilds every open case's timers anyway.
UPDATE cases SET sla_seq = last_seq;
CREATE INDEX cases_sla_stale ON cases (id) WHERE sla_seq IS NULL OR sla_seq < last_seq;
-- Editing a contract marks its open cases for a resync.
CREATE INDEX cases_contract ON cases (contract_id);
-- Leased timers by the end of their lease: with timers_pending, the runner
-- finds the next claimable instant by two index lookups.
CREATE INDEX timers_leased ON timers (claimed_until) WHERE fired_at IS NULL AND claimed_until IS NOT NULL;
