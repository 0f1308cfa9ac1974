-- Spare parts and RMA shipments (SPEC.md 5): the part catalogue, warehouses,
-- stock per part and warehouse, and one row per spare shipment on a case,
-- with every instant its states need. Stock is only changed by conditional
-- updates (store::rma), so on_hand and reserved never go negative and
-- reserved never passes on_hand; the CHECKs are the last line.

CREATE TABLE parts (
    id                INTEGER PRIMARY KEY,
    part_number       TEXT    NOT NULL UNIQUE,
    vendor            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    description       TEXT    NOT NULL,
    -- JSON array of device models the part fits; empty: any.
    compatible_models TEXT    NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL
);

CREATE TABLE warehouses (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    address    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE stock (
    part_id      INTEGER NOT NULL REFERENCES parts (id),
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (id),
    on_hand      INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved     INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   INTEGER NOT NULL,
    CHECK (reserved <= on_hand),
    PRIMARY KEY (part_id, warehouse_id)
);

CREATE TABLE shipments (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases (id),
    part_id          INTEGER NOT NULL REFERENCES parts (id),
    warehouse_id     INTEGER NOT NULL REFERENCES warehouses (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    state            TEXT    NOT NULL,
    reason           TEXT,            -- why it is requested
    requested_by     INTEGER REFERENCES users (id),
    requested_at     INTEGER NOT NULL,
    confirmed_at     INTEGER NOT NULL, -- when the hardware fault was confirmed
    ship_by          INTEGER,
    approved_at      INTEGER,
    approved_by      INTEGER REFERENCES users (id),
    refused_at       INTEGER,
    refused_reason   TEXT,
    picked_at        INTEGER,
    carrier          TEXT,
    tracking_number  TEXT,
    spare_serial     TEXT,
    shipped_at       INTEGER,
    delivered_at     INTEGER,
    return_due       INTEGER,
    return_reminded_at INTEGER,
    returned_at      INTEGER,
    faulty_serial    TEXT,
    received_at      INTEGER,
    repair_due       INTEGER,
    outcome          TEXT,            -- repaired | scrapped
    outcome_at       INTEGER,
    closed_at        INTEGER,
    cancelled_at     INTEGER,
    cancel_reason    TEXT,
    -- Deadlines missed (set by their timers, cleared when the step is done).
    ship_overdue     INTEGER NOT NULL DEFAULT 0,
    return_overdue   INTEGER NOT NULL DEFAULT 0,
    repair_overdue   INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX shipments_case ON shipments (case_id);
CREATE INDEX shipments_state ON shipments (state);
