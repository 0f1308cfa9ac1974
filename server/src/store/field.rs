//! SQL for field service: scheduled visits and the contract's field
//! promises on a case, the stock ledger and spare units, and preventive
//! inspection schedules and inspections.
//!
//! A visit step writes the visit row, the parts it takes from stock (each a
//! conditional update, `on_hand = on_hand - q WHERE on_hand - reserved >= q`,
//! plus its ledger row), the case's promise row and the case history
//! entries in one transaction that holds the case, as
//! [`Store::shipment_step`] does for shipments.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::cases::{append_entries, CaseRow, PendingEntry, CASE_SELECT};
use super::{map_db_err, read, write, Dialect, Store};
use crate::clock::to_micros;
use crate::error::{Error, Result};

/// Append one row to the stock ledger inside the transaction `$tx`.
macro_rules! ledger {
    ($tx:expr, $part:expr, $wh:expr, $kind:expr, $on_hand:expr, $reserved:expr,
     $shipment:expr, $visit:expr, $serial:expr, $user:expr, $at:expr) => {{
        sqlx::query(
            "INSERT INTO stock_ledger (part_id, warehouse_id, kind, on_hand_delta, reserved_delta,
                                       shipment_id, visit_id, serial, user_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($part)
        .bind($wh)
        .bind($kind)
        .bind($on_hand)
        .bind($reserved)
        .bind($shipment)
        .bind($visit)
        .bind($serial)
        .bind($user)
        .bind($at)
        .execute(&mut *$tx)
        .await
        .map_err(|e| map_db_err(e, "stock ledger"))?;
    }};
}
pub(crate) use ledger;

/// A visit with the names of what it refers to. Instants are microseconds.
#[derive(Debug, Clone, Default, FromRow)]
pub struct VisitRow {
    pub id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub organization_id: Option<i64>,
    pub engineer_id: i64,
    pub engineer_name: String,
    pub scheduled_at: i64,
    pub address: String,
    pub notes: Option<String>,
    pub state: String,
    pub checked_in_at: Option<i64>,
    pub checked_out_at: Option<i64>,
    pub work_done: Option<String>,
    pub repaired: bool,
    pub backup_equipment: Option<String>,
    /// JSON array of `PartUsed`.
    pub parts_used: String,
    pub signed_off_at: Option<i64>,
    pub signoff_name: Option<String>,
    pub cancelled_at: Option<i64>,
    pub cancel_reason: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const VISIT_SELECT: &str = "SELECT v.id, v.case_id, c.number AS case_number, c.organization_id,
    v.engineer_id, u.display_name AS engineer_name, v.scheduled_at, v.address, v.notes, v.state,
    v.checked_in_at, v.checked_out_at, v.work_done, v.repaired, v.backup_equipment, v.parts_used,
    v.signed_off_at, v.signoff_name, v.cancelled_at, v.cancel_reason, v.created_by, v.created_at,
    v.updated_at
    FROM field_visits v JOIN cases c ON c.id = v.case_id JOIN users u ON u.id = v.engineer_id";

/// The field promises of one case (microseconds).
#[derive(Debug, Clone, Default, FromRow)]
pub struct PromiseRow {
    pub case_id: i64,
    pub onsite_due: Option<i64>,
    pub onsite_warn: Option<i64>,
    pub onsite_met_at: Option<i64>,
    pub onsite_warned: bool,
    pub onsite_missed: bool,
    pub repair_due: Option<i64>,
    pub repair_warn: Option<i64>,
    pub repair_met_at: Option<i64>,
    pub repair_warned: bool,
    pub repair_missed: bool,
    pub updated_at: i64,
}

/// Units of a part taken from a warehouse's unreserved stock on a visit.
#[derive(Debug, Clone)]
pub struct StockUse {
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub quantity: i64,
    pub serial: Option<String>,
}

/// Which visit a step works on.
#[derive(Debug, Clone)]
pub enum VisitTarget {
    /// None: the step is about the case's promises only.
    None,
    Existing(i64),
    /// Insert this row (id, names and case filled in) first.
    New(Box<VisitRow>),
}

/// What a field step's `decide` computes.
pub struct FieldStep {
    pub visit: Option<VisitRow>,
    /// Written (inserted or replaced) when given.
    pub promise: Option<PromiseRow>,
    pub uses: Vec<StockUse>,
    pub entries: Vec<PendingEntry>,
}

/// Visit filters for [`Store::visits`].
#[derive(Debug, Clone, Default)]
pub struct VisitFilter {
    pub case_id: Option<i64>,
    pub engineer_id: Option<i64>,
    pub state: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub organization_id: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub shipment_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub serial: Option<String>,
    pub user_id: Option<i64>,
    pub at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct UnitRow {
    pub id: i64,
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub serial: String,
    pub state: String,
    pub shipment_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub received_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ScheduleRow {
    pub id: i64,
    pub contract_id: i64,
    pub contract_number: String,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    pub name: String,
    pub interval_days: i64,
    pub first_due: String,
    pub next_due: String,
    pub checklist: String,
    pub created_at: i64,
}

const SCHEDULE_SELECT: &str = "SELECT s.id, s.contract_id, k.number AS contract_number,
    k.organization_id, s.site_id, t.name AS site_name, s.name, s.interval_days, s.first_due,
    s.next_due, s.checklist, s.created_at
    FROM inspection_schedules s JOIN contracts k ON k.id = s.contract_id
    LEFT JOIN sites t ON t.id = s.site_id";

#[derive(Debug, Clone, FromRow)]
pub struct InspectionRow {
    pub id: i64,
    pub schedule_id: i64,
    pub schedule_name: String,
    pub contract_number: String,
    pub organization_id: i64,
    pub due_on: String,
    pub performed_at: i64,
    pub engineer_id: i64,
    pub engineer_name: String,
    pub items: String,
    pub findings: Option<String>,
    pub created_at: i64,
}

const INSPECTION_SELECT: &str = "SELECT i.id, i.schedule_id, s.name AS schedule_name,
    k.number AS contract_number, k.organization_id, i.due_on, i.performed_at, i.engineer_id,
    u.display_name AS engineer_name, i.items, i.findings, i.created_at
    FROM inspections i JOIN inspection_schedules s ON s.id = i.schedule_id
    JOIN contracts k ON k.id = s.contract_id JOIN users u ON u.id = i.engineer_id";

impl Store {
    pub async fn visit(&self, id: i64) -> Result<Option<VisitRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{VISIT_SELECT} WHERE v.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn visits(&self, f: &VisitFilter) -> Result<Vec<VisitRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{VISIT_SELECT}
                 WHERE ($1 IS NULL OR v.case_id = $1) AND ($2 IS NULL OR v.engineer_id = $2)
                   AND ($3 IS NULL OR v.state = $3) AND ($4 IS NULL OR v.scheduled_at >= $4)
                   AND ($5 IS NULL OR v.scheduled_at < $5)
                   AND ($6 IS NULL OR c.organization_id = $6)
                 ORDER BY v.scheduled_at, v.id LIMIT $7"
            ))
            .bind(f.case_id)
            .bind(f.engineer_id)
            .bind(&f.state)
            .bind(f.from)
            .bind(f.to)
            .bind(f.organization_id)
            .bind(f.limit)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn field_promise(&self, case_id: i64) -> Result<Option<PromiseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT * FROM field_promises WHERE case_id = $1")
                .bind(case_id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// One field step in one transaction holding the case: insert or lock
    /// the visit, read the case's promises, let `decide` compute the new
    /// rows, take the parts used from stock (conditionally, with their
    /// ledger rows and units), write the rows, and chain the entries onto
    /// the case's history. `decide` may refuse; nothing is written then.
    pub async fn field_step<F>(
        &self,
        number: &str,
        target: VisitTarget,
        decide: F,
    ) -> Result<(CaseRow, Option<VisitRow>)>
    where
        F: FnOnce(&CaseRow, Option<&VisitRow>, Option<&PromiseRow>) -> Result<FieldStep>,
    {
        write!(self, |p, d| {
            let mut tx = p.begin().await?;
            let (lock_case, lock_visit) = match d {
                Dialect::Postgres => (" FOR UPDATE OF c", " FOR UPDATE OF v"),
                Dialect::Sqlite => ("", ""),
            };
            let case: Option<CaseRow> =
                sqlx::query_as(&format!("{CASE_SELECT} WHERE c.number = $1{lock_case}"))
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            let case = case.ok_or_else(|| Error::not_found(format!("case {number}")))?;
            let id = match &target {
                VisitTarget::None => None,
                VisitTarget::Existing(id) => Some(*id),
                VisitTarget::New(r) => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO field_visits (case_id, engineer_id, scheduled_at, address, notes,
                             state, created_by, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    )
                    .bind(case.id)
                    .bind(r.engineer_id)
                    .bind(r.scheduled_at)
                    .bind(&r.address)
                    .bind(&r.notes)
                    .bind(&r.state)
                    .bind(r.created_by)
                    .bind(r.created_at)
                    .bind(r.updated_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, "visit"))?;
                    Some(id)
                }
            };
            let current: Option<VisitRow> = match id {
                Some(id) => {
                    let v: Option<VisitRow> = sqlx::query_as(&format!(
                        "{VISIT_SELECT} WHERE v.id = $1 AND v.case_id = $2{lock_visit}"
                    ))
                    .bind(id)
                    .bind(case.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    Some(v.ok_or_else(|| Error::not_found(format!("visit {id} on case {number}")))?)
                }
                None => None,
            };
            let promise: Option<PromiseRow> =
                sqlx::query_as("SELECT * FROM field_promises WHERE case_id = $1")
                    .bind(case.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let step = decide(&case, current.as_ref(), promise.as_ref())?;
            let now = step
                .entries
                .first()
                .map(|e| to_micros(e.at))
                .unwrap_or(case.updated_at);
            let author = step.entries.first().and_then(|e| e.author_id);
            for u in &step.uses {
                let n = sqlx::query(
                    "UPDATE stock SET on_hand = on_hand - $1, updated_at = $2
                     WHERE part_id = $3 AND warehouse_id = $4 AND on_hand - reserved >= $1",
                )
                .bind(u.quantity)
                .bind(now)
                .bind(u.part_id)
                .bind(u.warehouse_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "parts_used"))?
                .rows_affected();
                if n == 0 {
                    return Err(Error::conflict(format!(
                        "parts_used: fewer than {} unreserved units of part {} at warehouse {}",
                        u.quantity, u.part_number, u.warehouse_id
                    )));
                }
                ledger!(
                    tx,
                    u.part_id,
                    u.warehouse_id,
                    "use",
                    -u.quantity,
                    0i64,
                    None::<i64>,
                    id,
                    &u.serial,
                    author,
                    now
                );
                if let Some(serial) = &u.serial {
                    sqlx::query(
                        "UPDATE spare_units SET state = 'used', visit_id = $1, updated_at = $2
                         WHERE part_id = $3 AND warehouse_id = $4 AND serial = $5 AND state = 'in_stock'",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(u.part_id)
                    .bind(u.warehouse_id)
                    .bind(serial)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if let (Some(id), Some(v)) = (id, &step.visit) {
                sqlx::query(
                    "UPDATE field_visits SET state = $1, checked_in_at = $2, checked_out_at = $3,
                        work_done = $4, repaired = $5, backup_equipment = $6, parts_used = $7,
                        signed_off_at = $8, signoff_name = $9, cancelled_at = $10,
                        cancel_reason = $11, updated_at = $12
                     WHERE id = $13",
                )
                .bind(&v.state)
                .bind(v.checked_in_at)
                .bind(v.checked_out_at)
                .bind(&v.work_done)
                .bind(v.repaired)
                .bind(&v.backup_equipment)
                .bind(&v.parts_used)
                .bind(v.signed_off_at)
                .bind(&v.signoff_name)
                .bind(v.cancelled_at)
                .bind(&v.cancel_reason)
                .bind(v.updated_at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "visit"))?;
            }
            if let Some(r) = &step.promise {
                sqlx::query(
                    "INSERT INTO field_promises (case_id, onsite_due, onsite_warn, onsite_met_at,
                        onsite_warned, onsite_missed, repair_due, repair_warn, repair_met_at,
                        repair_warned, repair_missed, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (case_id) DO UPDATE SET onsite_due = excluded.onsite_due,
                        onsite_warn = excluded.onsite_warn, onsite_met_at = excluded.onsite_met_at,
                        onsite_warned = excluded.onsite_warned, onsite_missed = excluded.onsite_missed,
                        repair_due = excluded.repair_due, repair_warn = excluded.repair_warn,
                        repair_met_at = excluded.repair_met_at, repair_warned = excluded.repair_warned,
                        repair_missed = excluded.repair_missed, updated_at = excluded.updated_at",
                )
                .bind(case.id)
                .bind(r.onsite_due)
                .bind(r.onsite_warn)
                .bind(r.onsite_met_at)
                .bind(r.onsite_warned)
                .bind(r.onsite_missed)
                .bind(r.repair_due)
                .bind(r.repair_warn)
                .bind(r.repair_met_at)
                .bind(r.repair_warned)
                .bind(r.repair_missed)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_db_err(e, "field promises"))?;
            }
            let queued = append_entries!(tx, &case, &step.entries, now);
            let row: Option<VisitRow> = match id {
                Some(id) => {
                    sqlx::query_as(&format!("{VISIT_SELECT} WHERE v.id = $1"))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                None => None,
            };
            tx.commit().await?;
            if queued {
                self.outbox_signal.notify_one();
            }
            Ok((case, row))
        })
    }

    // ------------------------------------------------------ ledger, units

    /// Ledger rows, newest first, optionally of one part and/or warehouse.
    pub async fn stock_ledger(
        &self,
        part_id: Option<i64>,
        warehouse_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LedgerRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT l.id, l.part_id, p.part_number, l.warehouse_id, w.name AS warehouse_name,
                        l.kind, l.on_hand_delta, l.reserved_delta, l.shipment_id, l.visit_id,
                        l.serial, l.user_id, l.at
                 FROM stock_ledger l JOIN parts p ON p.id = l.part_id
                 JOIN warehouses w ON w.id = l.warehouse_id
                 WHERE ($1 IS NULL OR l.part_id = $1) AND ($2 IS NULL OR l.warehouse_id = $2)
                 ORDER BY l.id DESC LIMIT $3",
            )
            .bind(part_id)
            .bind(warehouse_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn spare_units(
        &self,
        part_id: Option<i64>,
        warehouse_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<UnitRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT u.id, u.part_id, p.part_number, u.warehouse_id, w.name AS warehouse_name,
                        u.serial, u.state, u.shipment_id, u.visit_id, u.received_at, u.updated_at
                 FROM spare_units u JOIN parts p ON p.id = u.part_id
                 JOIN warehouses w ON w.id = u.warehouse_id
                 WHERE ($1 IS NULL OR u.part_id = $1) AND ($2 IS NULL OR u.warehouse_id = $2)
                 ORDER BY p.part_number, u.serial LIMIT $3",
            )
            .bind(part_id)
            .bind(warehouse_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    // ------------------------------------------------------- inspections

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_schedule(
        &self,
        contract_id: i64,
        site_id: Option<i64>,
        name: &str,
        interval_days: i64,
        first_due: &str,
        checklist: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        write!(self, |p, _d| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO inspection_schedules (contract_id, site_id, name, interval_days,
                     first_due, next_due, checklist, created_at)
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING id",
            )
            .bind(contract_id)
            .bind(site_id)
            .bind(name)
            .bind(interval_days)
            .bind(first_due)
            .bind(checklist)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "schedule"))?;
            Ok(id)
        })
    }

    pub async fn schedule(&self, id: i64) -> Result<Option<ScheduleRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{SCHEDULE_SELECT} WHERE s.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Schedules, optionally only those due on or before `due_by` (ISO
    /// date), of one organisation, earliest due first.
    pub async fn schedules(
        &self,
        due_by: Option<&str>,
        organization_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ScheduleRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{SCHEDULE_SELECT} WHERE ($1 IS NULL OR s.next_due <= $1)
                   AND ($2 IS NULL OR k.organization_id = $2)
                 ORDER BY s.next_due, s.id LIMIT $3"
            ))
            .bind(due_by)
            .bind(organization_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Record an inspection for the schedule's due date `due_on` and move
    /// the schedule's next due date on, only if it is still `due_on` (a
    /// concurrent record of the same inspection gets a conflict).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_inspection(
        &self,
        schedule_id: i64,
        due_on: &str,
        next_due: &str,
        performed_at: DateTime<Utc>,
        engineer_id: i64,
        items: &str,
        findings: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE inspection_schedules SET next_due = $1 WHERE id = $2 AND next_due = $3",
            )
            .bind(next_due)
            .bind(schedule_id)
            .bind(due_on)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::conflict(format!(
                    "the inspection of schedule {schedule_id} due {due_on} is already recorded"
                )));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO inspections (schedule_id, due_on, performed_at, engineer_id, items,
                     findings, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(schedule_id)
            .bind(due_on)
            .bind(to_micros(performed_at))
            .bind(engineer_id)
            .bind(items)
            .bind(findings)
            .bind(to_micros(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "inspection"))?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Replace an inspection's items (to link the follow-up cases opened
    /// from its findings).
    pub async fn set_inspection_items(&self, id: i64, items: &str) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query("UPDATE inspections SET items = $1 WHERE id = $2")
                .bind(items)
                .bind(id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    pub async fn inspection(&self, id: i64) -> Result<Option<InspectionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{INSPECTION_SELECT} WHERE i.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// The inspections of an organisation performed in `[from, to)`
    /// (microseconds), in order.
    pub async fn inspections_performed(
        &self,
        organization_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<InspectionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{INSPECTION_SELECT} WHERE k.organization_id = $1
                   AND i.performed_at >= $2 AND i.performed_at < $3
                 ORDER BY i.performed_at, i.id LIMIT 1000"
            ))
            .bind(organization_id)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn inspections(
        &self,
        schedule_id: Option<i64>,
        organization_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<InspectionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{INSPECTION_SELECT} WHERE ($1 IS NULL OR i.schedule_id = $1)
                   AND ($2 IS NULL OR k.organization_id = $2)
                 ORDER BY i.performed_at DESC, i.id DESC LIMIT $3"
            ))
            .bind(schedule_id)
            .bind(organization_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }
}
