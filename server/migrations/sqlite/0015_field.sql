-- Field service (SPEC.md 4 and 9, issue 8): scheduled on-site visits on a
-- case and the contract's on-site and repair promises as clocks; per-unit
-- spare serials and an append-only stock ledger; preventive inspection
-- schedules per contract and the inspections done under them.

-- The contract's promises, in seconds on the case's business calendar:
-- an engineer on site within, and the repair finished within (else backup
-- equipment), counted from the case's opening. NULL: no such promise.
ALTER TABLE contracts ADD COLUMN onsite_within_secs INTEGER CHECK (onsite_within_secs > 0);
ALTER TABLE contracts ADD COLUMN repair_within_secs INTEGER CHECK (repair_within_secs > 0);

CREATE TABLE field_visits (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases (id),
    engineer_id      INTEGER NOT NULL REFERENCES users (id),
    scheduled_at     INTEGER NOT NULL,
    address          TEXT    NOT NULL,
    notes            TEXT,
    -- scheduled | checked_in | checked_out | signed_off | cancelled
    state            TEXT    NOT NULL,
    checked_in_at    INTEGER,
    checked_out_at   INTEGER,
    work_done        TEXT,
    -- The fault is repaired (ends the repair promise's clock).
    repaired         INTEGER NOT NULL DEFAULT 0,
    backup_equipment TEXT,
    -- JSON array of {part_number, warehouse_id, quantity, serial}.
    parts_used       TEXT    NOT NULL DEFAULT '[]',
    signed_off_at    INTEGER,
    signoff_name     TEXT,
    cancelled_at     INTEGER,
    cancel_reason    TEXT,
    created_by       INTEGER REFERENCES users (id),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK (checked_out_at IS NULL OR (checked_in_at IS NOT NULL AND checked_out_at >= checked_in_at)),
    CHECK (signed_off_at IS NULL OR checked_out_at IS NOT NULL)
);
CREATE INDEX field_visits_case ON field_visits (case_id);
CREATE INDEX field_visits_engineer ON field_visits (engineer_id, scheduled_at);

-- One row per case with a visit: the promise deadlines (from the contract
-- when the first visit was scheduled), when each was met, and whether its
-- warning and its breach are recorded (the timers' idempotency).
CREATE TABLE field_promises (
    case_id        INTEGER PRIMARY KEY REFERENCES cases (id),
    onsite_due     INTEGER,
    onsite_warn    INTEGER,
    onsite_met_at  INTEGER,
    onsite_warned  INTEGER NOT NULL DEFAULT 0,
    onsite_missed  INTEGER NOT NULL DEFAULT 0,
    repair_due     INTEGER,
    repair_warn    INTEGER,
    repair_met_at  INTEGER,
    repair_warned  INTEGER NOT NULL DEFAULT 0,
    repair_missed  INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL
);

-- Every change of stock, appended in the transaction that makes it:
-- receive, remove, reserve, release, ship, use (on a visit).
CREATE TABLE stock_ledger (
    id             INTEGER PRIMARY KEY,
    part_id        INTEGER NOT NULL REFERENCES parts (id),
    warehouse_id   INTEGER NOT NULL REFERENCES warehouses (id),
    kind           TEXT    NOT NULL,
    on_hand_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    shipment_id    INTEGER REFERENCES shipments (id),
    visit_id       INTEGER REFERENCES field_visits (id),
    serial         TEXT,
    user_id        INTEGER REFERENCES users (id),
    at             INTEGER NOT NULL
);
CREATE INDEX stock_ledger_part ON stock_ledger (part_id, warehouse_id, id);
CREATE TRIGGER stock_ledger_no_update BEFORE UPDATE ON stock_ledger
BEGIN
    SELECT RAISE(ABORT, 'the stock ledger is append-only: UPDATE is refused');
END;
CREATE TRIGGER stock_ledger_no_delete BEFORE DELETE ON stock_ledger
BEGIN
    SELECT RAISE(ABORT, 'the stock ledger is append-only: DELETE is refused');
END;

-- Spare units by serial: where each is and what took it.
CREATE TABLE spare_units (
    id           INTEGER PRIMARY KEY,
    part_id      INTEGER NOT NULL REFERENCES parts (id),
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (id),
    serial       TEXT    NOT NULL,
    -- in_stock | shipped | used | removed
    state        TEXT    NOT NULL,
    shipment_id  INTEGER REFERENCES shipments (id),
    visit_id     INTEGER REFERENCES field_visits (id),
    received_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (part_id, serial)
);
CREATE INDEX spare_units_place ON spare_units (part_id, warehouse_id, state);

-- Preventive inspections: a schedule per contract (optionally one site),
-- every interval_days from first_due; next_due moves on when one is done.
CREATE TABLE inspection_schedules (
    id            INTEGER PRIMARY KEY,
    contract_id   INTEGER NOT NULL REFERENCES contracts (id),
    site_id       INTEGER REFERENCES sites (id),
    name          TEXT    NOT NULL,
    interval_days INTEGER NOT NULL CHECK (interval_days BETWEEN 1 AND 3660),
    first_due     TEXT    NOT NULL, -- ISO date
    next_due      TEXT    NOT NULL, -- ISO date
    -- JSON array of checklist item texts.
    checklist     TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    CHECK (next_due >= first_due)
);
CREATE INDEX inspection_schedules_due ON inspection_schedules (next_due);

CREATE TABLE inspections (
    id             INTEGER PRIMARY KEY,
    schedule_id    INTEGER NOT NULL REFERENCES inspection_schedules (id),
    due_on         TEXT    NOT NULL, -- ISO date
    performed_at   INTEGER NOT NULL,
    engineer_id    INTEGER NOT NULL REFERENCES users (id),
    -- JSON array of {item, result: ok|finding|n_a, note, follow_up_case}.
    items          TEXT    NOT NULL,
    findings       TEXT,
    created_at     INTEGER NOT NULL,
    UNIQUE (schedule_id, due_on)
);
