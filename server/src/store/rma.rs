//! SQL for spare parts and RMA shipments.
//!
//! Stock is changed only here, and only by conditional updates: a
//! reservation is `reserved = reserved + q WHERE on_hand - reserved >= q`,
//! so concurrent approvals can never oversell, on either backend. A shipment
//! step (request, approve, ship, ...) writes the shipment row, its stock
//! change and the case history entries in one transaction that holds the
//! case row (PostgreSQL `FOR UPDATE`; SQLite has one writer), the same way
//! [`Store::change_case`] does.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::cases::{append_entries, CaseRow, PendingEntry, CASE_SELECT};
use super::field::ledger;
use super::{map_db_err, read, write, Dialect, Store};
use crate::clock::to_micros;
use crate::error::{Error, Result};

#[derive(Debug, Clone, FromRow)]
pub struct PartRow {
    pub id: i64,
    pub part_number: String,
    pub vendor: String,
    pub model: String,
    pub description: String,
    /// JSON array of device models.
    pub compatible_models: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct WarehouseRow {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct StockRow {
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub updated_at: i64,
}

/// A shipment with the names of what it refers to. Instants are microseconds.
#[derive(Debug, Clone, Default, FromRow)]
pub struct ShipmentRow {
    pub id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub organization_id: Option<i64>,
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub quantity: i64,
    pub state: String,
    pub reason: Option<String>,
    pub requested_by: Option<i64>,
    pub requested_at: i64,
    pub confirmed_at: i64,
    pub ship_by: Option<i64>,
    pub approved_at: Option<i64>,
    pub approved_by: Option<i64>,
    pub refused_at: Option<i64>,
    pub refused_reason: Option<String>,
    pub picked_at: Option<i64>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub spare_serial: Option<String>,
    pub shipped_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub return_due: Option<i64>,
    pub return_reminded_at: Option<i64>,
    pub returned_at: Option<i64>,
    pub faulty_serial: Option<String>,
    pub received_at: Option<i64>,
    pub repair_due: Option<i64>,
    pub outcome: Option<String>,
    pub outcome_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub cancel_reason: Option<String>,
    pub ship_overdue: bool,
    pub return_overdue: bool,
    pub repair_overdue: bool,
    pub updated_at: i64,
}

const SHIPMENT_SELECT: &str = "SELECT s.id, s.case_id, c.number AS case_number, c.organization_id,
    s.part_id, p.part_number, s.warehouse_id, w.name AS warehouse_name, s.quantity, s.state,
    s.reason, s.requested_by, s.requested_at, s.confirmed_at, s.ship_by, s.approved_at,
    s.approved_by, s.refused_at, s.refused_reason, s.picked_at, s.carrier, s.tracking_number,
    s.spare_serial, s.shipped_at, s.delivered_at, s.return_due, s.return_reminded_at,
    s.returned_at, s.faulty_serial, s.received_at, s.repair_due, s.outcome, s.outcome_at,
    s.closed_at, s.cancelled_at, s.cancel_reason, s.ship_overdue, s.return_overdue,
    s.repair_overdue, s.updated_at
    FROM shipments s JOIN cases c ON c.id = s.case_id JOIN parts p ON p.id = s.part_id
    JOIN warehouses w ON w.id = s.warehouse_id";

/// What a shipment step does to stock (the shipment's part, warehouse and
/// quantity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockOp {
    None,
    /// Reserve: refused with a conflict when fewer are available.
    Reserve,
    /// Give a reservation back (cancelled before shipping).
    Release,
    /// The reserved units leave the warehouse.
    Ship,
}

/// Which shipment a step works on.
#[derive(Debug, Clone)]
pub enum ShipmentTarget {
    Existing(i64),
    /// Insert this row (its id, names and case are filled in) first.
    New(Box<ShipmentRow>),
}

/// The outcome a step's `decide` computes: the new row, the stock change,
/// and the history entries for the case.
pub struct ShipmentStep {
    pub row: ShipmentRow,
    pub stock: StockOp,
    pub entries: Vec<PendingEntry>,
}

/// Shipment filters for [`Store::shipments`].
#[derive(Debug, Clone, Default)]
pub struct ShipmentFilter {
    pub state: Option<String>,
    pub case_number: Option<String>,
    pub overdue: Option<bool>,
    pub organization_id: Option<i64>,
    pub limit: i64,
}

/// Bind the mutable shipment columns, in the order of [`MUTABLE`].
macro_rules! bind_mutable {
    ($q:expr, $r:expr) => {{
        let r: &ShipmentRow = $r;
        $q.bind(&r.state)
            .bind(&r.reason)
            .bind(r.ship_by)
            .bind(r.approved_at)
            .bind(r.approved_by)
            .bind(r.refused_at)
            .bind(&r.refused_reason)
            .bind(r.picked_at)
            .bind(&r.carrier)
            .bind(&r.tracking_number)
            .bind(&r.spare_serial)
            .bind(r.shipped_at)
            .bind(r.delivered_at)
            .bind(r.return_due)
            .bind(r.return_reminded_at)
            .bind(r.returned_at)
            .bind(&r.faulty_serial)
            .bind(r.received_at)
            .bind(r.repair_due)
            .bind(&r.outcome)
            .bind(r.outcome_at)
            .bind(r.closed_at)
            .bind(r.cancelled_at)
            .bind(&r.cancel_reason)
            .bind(r.ship_overdue)
            .bind(r.return_overdue)
            .bind(r.repair_overdue)
            .bind(r.updated_at)
    }};
}

const MUTABLE: [&str; 28] = [
    "state",
    "reason",
    "ship_by",
    "approved_at",
    "approved_by",
    "refused_at",
    "refused_reason",
    "picked_at",
    "carrier",
    "tracking_number",
    "spare_serial",
    "shipped_at",
    "delivered_at",
    "return_due",
    "return_reminded_at",
    "returned_at",
    "faulty_serial",
    "received_at",
    "repair_due",
    "outcome",
    "outcome_at",
    "closed_at",
    "cancelled_at",
    "cancel_reason",
    "ship_overdue",
    "return_overdue",
    "repair_overdue",
    "updated_at",
];

fn update_sql() -> String {
    let sets: Vec<String> = MUTABLE
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    format!(
        "UPDATE shipments SET {} WHERE id = ${}",
        sets.join(", "),
        MUTABLE.len() + 1
    )
}

fn insert_sql() -> String {
    let fixed = [
        "case_id",
        "part_id",
        "warehouse_id",
        "quantity",
        "requested_by",
        "requested_at",
        "confirmed_at",
    ];
    let cols: Vec<&str> = fixed.iter().chain(MUTABLE.iter()).copied().collect();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO shipments ({}) VALUES ({}) RETURNING id",
        cols.join(", "),
        params.join(", ")
    )
}

impl Store {
    pub async fn insert_part(
        &self,
        part_number: &str,
        vendor: &str,
        model: &str,
        description: &str,
        compatible_models: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        write!(self, |p, _d| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO parts (part_number, vendor, model, description, compatible_models, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(part_number)
            .bind(vendor)
            .bind(model)
            .bind(description)
            .bind(compatible_models)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, &format!("part_number {part_number:?}")))?;
            Ok(id)
        })
    }

    pub async fn parts(&self) -> Result<Vec<PartRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT * FROM parts ORDER BY part_number")
                .fetch_all(p)
                .await?
        }))
    }

    pub async fn part_by_number(&self, part_number: &str) -> Result<Option<PartRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT * FROM parts WHERE part_number = $1")
                .bind(part_number)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn insert_warehouse(
        &self,
        name: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        write!(self, |p, _d| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO warehouses (name, address, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(name)
            .bind(address)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, &format!("warehouse {name:?}")))?;
            Ok(id)
        })
    }

    pub async fn warehouses(&self) -> Result<Vec<WarehouseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT * FROM warehouses ORDER BY name")
                .fetch_all(p)
                .await?
        }))
    }

    pub async fn warehouse(&self, id: i64) -> Result<Option<WarehouseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT * FROM warehouses WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Stock rows, optionally of one part or one warehouse.
    pub async fn stock(
        &self,
        part_id: Option<i64>,
        warehouse_id: Option<i64>,
    ) -> Result<Vec<StockRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT s.part_id, p.part_number, s.warehouse_id, w.name AS warehouse_name,
                        s.on_hand, s.reserved, s.updated_at
                 FROM stock s JOIN parts p ON p.id = s.part_id JOIN warehouses w ON w.id = s.warehouse_id
                 WHERE ($1 IS NULL OR s.part_id = $1) AND ($2 IS NULL OR s.warehouse_id = $2)
                 ORDER BY p.part_number, w.name",
            )
            .bind(part_id)
            .bind(warehouse_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Add `delta` units on hand (negative: take away), with its ledger row
    /// (`receive` or `remove`) and, when received with `serials`, one spare
    /// unit per serial (taking away with serials marks those units
    /// removed). Taking away never goes below the reserved units: a
    /// conflict naming what is left.
    pub async fn adjust_stock(
        &self,
        part_id: i64,
        warehouse_id: i64,
        delta: i64,
        serials: &[String],
        user_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let done = if delta >= 0 {
                sqlx::query(
                    "INSERT INTO stock (part_id, warehouse_id, on_hand, reserved, updated_at)
                     VALUES ($1, $2, $3, 0, $4)
                     ON CONFLICT (part_id, warehouse_id)
                     DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand, updated_at = excluded.updated_at",
                )
                .bind(part_id)
                .bind(warehouse_id)
                .bind(delta)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "quantity"))?
                .rows_affected()
            } else {
                sqlx::query(
                    "UPDATE stock SET on_hand = on_hand + $1, updated_at = $2
                     WHERE part_id = $3 AND warehouse_id = $4 AND on_hand + $1 >= reserved",
                )
                .bind(delta)
                .bind(to_micros(now))
                .bind(part_id)
                .bind(warehouse_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "quantity"))?
                .rows_affected()
            };
            if done == 0 {
                return Err(Error::conflict(format!(
                    "cannot take {} away: fewer unreserved units on hand",
                    -delta
                )));
            }
            let kind = if delta >= 0 { "receive" } else { "remove" };
            if serials.is_empty() {
                ledger!(
                    tx,
                    part_id,
                    warehouse_id,
                    kind,
                    delta,
                    0i64,
                    None::<i64>,
                    None::<i64>,
                    None::<String>,
                    user_id,
                    to_micros(now)
                );
            }
            for serial in serials {
                let step = delta.signum();
                ledger!(
                    tx,
                    part_id,
                    warehouse_id,
                    kind,
                    step,
                    0i64,
                    None::<i64>,
                    None::<i64>,
                    Some(serial),
                    user_id,
                    to_micros(now)
                );
                if delta > 0 {
                    sqlx::query(
                        "INSERT INTO spare_units (part_id, warehouse_id, serial, state, received_at, updated_at)
                         VALUES ($1, $2, $3, 'in_stock', $4, $4)",
                    )
                    .bind(part_id)
                    .bind(warehouse_id)
                    .bind(serial)
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, &format!("serials: unit {serial:?}")))?;
                } else {
                    let n = sqlx::query(
                        "UPDATE spare_units SET state = 'removed', updated_at = $1
                         WHERE part_id = $2 AND warehouse_id = $3 AND serial = $4 AND state = 'in_stock'",
                    )
                    .bind(to_micros(now))
                    .bind(part_id)
                    .bind(warehouse_id)
                    .bind(serial)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(Error::invalid(
                            "serials",
                            format!("no unit {serial:?} of this part in stock at this warehouse"),
                        ));
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn shipment(&self, id: i64) -> Result<Option<ShipmentRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{SHIPMENT_SELECT} WHERE s.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn shipments(&self, f: &ShipmentFilter) -> Result<Vec<ShipmentRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{SHIPMENT_SELECT}
                 WHERE ($1 IS NULL OR s.state = $1) AND ($2 IS NULL OR c.number = $2)
                   AND ($3 IS NULL OR c.organization_id = $3)
                   AND ($4 IS NULL OR (s.ship_overdue OR s.return_overdue OR s.repair_overdue) = $4)
                 ORDER BY s.id DESC LIMIT $5"
            ))
            .bind(&f.state)
            .bind(&f.case_number)
            .bind(f.organization_id)
            .bind(f.overdue)
            .bind(f.limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// One shipment step in one transaction holding the case: insert the
    /// shipment (for [`ShipmentTarget::New`]) or lock it, let `decide`
    /// compute the new row, stock change and history entries, apply the
    /// stock change conditionally, write the row, and chain the entries onto
    /// the case's history. `decide` may refuse; nothing is written then.
    pub async fn shipment_step<F>(
        &self,
        number: &str,
        target: ShipmentTarget,
        decide: F,
    ) -> Result<(CaseRow, ShipmentRow)>
    where
        F: FnOnce(&CaseRow, &ShipmentRow) -> Result<ShipmentStep>,
    {
        write!(self, |p, d| {
            let mut tx = p.begin().await?;
            let (lock_case, lock_shipment) = match d {
                Dialect::Postgres => (" FOR UPDATE OF c", " FOR UPDATE OF s"),
                Dialect::Sqlite => ("", ""),
            };
            let case: Option<CaseRow> =
                sqlx::query_as(&format!("{CASE_SELECT} WHERE c.number = $1{lock_case}"))
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            let case = case.ok_or_else(|| Error::not_found(format!("case {number}")))?;
            let id = match &target {
                ShipmentTarget::Existing(id) => *id,
                ShipmentTarget::New(r) => {
                    let sql = insert_sql();
                    let q = sqlx::query_scalar(&sql)
                        .bind(case.id)
                        .bind(r.part_id)
                        .bind(r.warehouse_id)
                        .bind(r.quantity)
                        .bind(r.requested_by)
                        .bind(r.requested_at)
                        .bind(r.confirmed_at);
                    let id: i64 = bind_mutable!(q, r)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| map_db_err(e, "shipment"))?;
                    id
                }
            };
            let current: Option<ShipmentRow> = sqlx::query_as(&format!(
                "{SHIPMENT_SELECT} WHERE s.id = $1 AND s.case_id = $2{lock_shipment}"
            ))
            .bind(id)
            .bind(case.id)
            .fetch_optional(&mut *tx)
            .await?;
            let current = current
                .ok_or_else(|| Error::not_found(format!("shipment {id} on case {number}")))?;
            let step = decide(&case, &current)?;
            let r = &step.row;
            let q = match step.stock {
                StockOp::None => None,
                StockOp::Reserve => Some(
                    "UPDATE stock SET reserved = reserved + $1, updated_at = $2
                     WHERE part_id = $3 AND warehouse_id = $4 AND on_hand - reserved >= $1",
                ),
                StockOp::Release => Some(
                    "UPDATE stock SET reserved = reserved - $1, updated_at = $2
                     WHERE part_id = $3 AND warehouse_id = $4 AND reserved >= $1",
                ),
                StockOp::Ship => Some(
                    "UPDATE stock SET reserved = reserved - $1, on_hand = on_hand - $1, updated_at = $2
                     WHERE part_id = $3 AND warehouse_id = $4 AND reserved >= $1 AND on_hand >= $1",
                ),
            };
            if let Some(sql) = q {
                let n = sqlx::query(sql)
                    .bind(r.quantity)
                    .bind(r.updated_at)
                    .bind(r.part_id)
                    .bind(r.warehouse_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, "quantity"))?
                    .rows_affected();
                if n == 0 {
                    return Err(match step.stock {
                        StockOp::Reserve => Error::conflict(format!(
                            "out of stock: fewer than {} of part {} available at warehouse {}",
                            r.quantity, r.part_number, r.warehouse_name
                        )),
                        _ => Error::Corrupt(format!(
                            "shipment {id}: the reservation of {} x {} at {} is missing",
                            r.quantity, r.part_number, r.warehouse_name
                        )),
                    });
                }
                let (kind, on_hand, reserved) = match step.stock {
                    StockOp::Reserve => ("reserve", 0, r.quantity),
                    StockOp::Release => ("release", 0, -r.quantity),
                    _ => ("ship", -r.quantity, -r.quantity),
                };
                let serial = r
                    .spare_serial
                    .clone()
                    .filter(|_| step.stock == StockOp::Ship);
                let author = step.entries.first().and_then(|e| e.author_id);
                ledger!(
                    tx,
                    r.part_id,
                    r.warehouse_id,
                    kind,
                    on_hand,
                    reserved,
                    Some(id),
                    None::<i64>,
                    &serial,
                    author,
                    r.updated_at
                );
                if let Some(serial) = &serial {
                    sqlx::query(
                        "UPDATE spare_units SET state = 'shipped', shipment_id = $1, updated_at = $2
                         WHERE part_id = $3 AND warehouse_id = $4 AND serial = $5 AND state = 'in_stock'",
                    )
                    .bind(id)
                    .bind(r.updated_at)
                    .bind(r.part_id)
                    .bind(r.warehouse_id)
                    .bind(serial)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let sql = update_sql();
            let q = sqlx::query(&sql);
            bind_mutable!(q, r)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "shipment"))?;
            let queued = append_entries!(tx, &case, &step.entries, r.updated_at);
            let row: Option<ShipmentRow> =
                sqlx::query_as(&format!("{SHIPMENT_SELECT} WHERE s.id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let row = row.ok_or_else(|| Error::Corrupt(format!("shipment {id} vanished")))?;
            tx.commit().await?;
            if queued {
                self.outbox_signal.notify_one();
            }
            Ok((case, row))
        })
    }
}
