//! Spare parts and RMA shipments (SPEC.md 5, issue 8): the part catalogue,
//! warehouses and stock, and spare shipments on cases through their one
//! state machine ([`rules::ShipmentState::transition`]), with the spare
//! desk's deadlines as durable timers (owner `shipment:<id>`).
//!
//! Every shipment step writes the shipment, its stock change and a `shipment`
//! history entry on the case in one transaction (`Cases::shipment_step`).
//! Visibility: the request, shipping (carrier, tracking number), delivery,
//! the return and its reminders, receipt, repair/scrap, close and cancel are
//! public (the customer follows them); approval, refusal, picking and the
//! desk's own missed ship-by and repair deadlines are internal.
//!
//! Deadline timers are scheduled after the step commits; each handler
//! re-reads the shipment under the case lock and does nothing if the step
//! is done or the deadline already recorded (a flag on the row), so a
//! retried or stale firing writes nothing twice.

pub mod rules;
pub mod settings;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::cases::shipments::ShipmentDecision;
use crate::cases::{ActivityBody, Cases, Visibility};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::sla::calendar::Calendar;
use crate::sla::settings::SlaSettings;
use crate::store::rma::{
    PartRow, ShipmentFilter, ShipmentRow, ShipmentTarget, StockOp, StockRow, WarehouseRow,
};
use crate::store::timers::TimerRow;
use crate::validate::{ident, opt_text, text};
use rules::ShipmentState;
pub use settings::{RmaSpec, Settings};

/// The author of the spare desk's own entries (missed deadlines).
pub const AUTHOR: &str = "Outpost spare desk";

// ------------------------------------------------------------------ views

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Part {
    pub id: i64,
    pub part_number: String,
    pub vendor: String,
    pub model: String,
    pub description: String,
    /// Device models the part fits; empty: any.
    pub compatible_models: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Warehouse {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stock {
    pub part_id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// On hand and not reserved.
    pub available: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    pub id: i64,
    pub case_number: String,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse: String,
    pub quantity: i64,
    pub state: ShipmentState,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// When the hardware fault was confirmed (starts the ship-by rule).
    pub confirmed_at: DateTime<Utc>,
    pub ship_by: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub refused_at: Option<DateTime<Utc>>,
    pub refused_reason: Option<String>,
    pub picked_at: Option<DateTime<Utc>>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub spare_serial: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub return_due: Option<DateTime<Utc>>,
    pub return_reminded_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub faulty_serial: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    pub repair_due: Option<DateTime<Utc>>,
    /// `repaired` or `scrapped`.
    pub outcome: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    /// Not shipped by `ship_by`.
    pub ship_overdue: bool,
    /// Faulty part not returned by `return_due`.
    pub return_overdue: bool,
    /// Repair not finished by `repair_due`.
    pub repair_overdue: bool,
    pub updated_at: DateTime<Utc>,
}

// --------------------------------------------------------------- requests

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPart {
    pub part_number: String,
    pub vendor: String,
    pub model: String,
    #[serde(default)]
    pub description: String,
    /// Device models the part fits; empty or absent: any.
    #[serde(default)]
    pub compatible_models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWarehouse {
    pub name: String,
    pub address: String,
}

/// Units received into (positive) or taken out of (negative) a warehouse.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockChange {
    pub part_number: String,
    pub warehouse_id: i64,
    /// Not zero; taking away never goes below the reserved units.
    pub delta: i64,
    /// The units' serials, one per unit (as many as `delta` units): received
    /// units are recorded by serial; units taken away must be in stock.
    #[serde(default)]
    pub serials: Vec<String>,
}

/// One change of stock as the ledger recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse: String,
    /// receive, remove, reserve, release, ship or use (on a field visit).
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub shipment_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub serial: Option<String>,
    pub user_id: Option<i64>,
    pub at: DateTime<Utc>,
}

/// A spare unit known by its serial.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SpareUnit {
    pub id: i64,
    pub part_number: String,
    pub warehouse_id: i64,
    pub warehouse: String,
    pub serial: String,
    /// in_stock, shipped (on `shipment_id`), used (on `visit_id`), removed.
    pub state: String,
    pub shipment_id: Option<i64>,
    pub visit_id: Option<i64>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShipment {
    pub part_number: String,
    pub warehouse_id: i64,
    /// At least 1.
    pub quantity: i64,
    #[serde(default)]
    pub reason: Option<String>,
    /// When the hardware fault was confirmed; default now. Not in the
    /// future, not before the case was opened.
    #[serde(default)]
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// The fields of a shipment step; each step takes the ones it needs and
/// refuses the others.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentStepRequest {
    /// refuse (required), cancel (required), others optional.
    #[serde(default)]
    pub reason: Option<String>,
    /// ship (required).
    #[serde(default)]
    pub carrier: Option<String>,
    /// ship (required).
    #[serde(default)]
    pub tracking_number: Option<String>,
    /// ship: the spare unit's serial (optional).
    #[serde(default)]
    pub spare_serial: Option<String>,
    /// return: the faulty unit's serial (optional).
    #[serde(default)]
    pub faulty_serial: Option<String>,
    /// deliver, return, receive: when it happened (default now); not in the
    /// future and not before the step before it.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// The step words of `POST /shipments/{id}/{step}` and the state each leads to.
pub fn step_state(step: &str) -> Result<ShipmentState> {
    use ShipmentState::*;
    Ok(match step {
        "approve" => Approved,
        "refuse" => Refused,
        "pick" => Picked,
        "ship" => Shipped,
        "deliver" => Delivered,
        "return" => Returned,
        "receive" => Received,
        "repair" => Repaired,
        "scrap" => Scrapped,
        "close" => Closed,
        "cancel" => Cancelled,
        other => {
            return Err(Error::invalid(
                "step",
                format!("unknown step {other:?}; expected one of: approve, refuse, pick, ship, deliver, return, receive, repair, scrap, close, cancel"),
            ))
        }
    })
}

// ---------------------------------------------------------------- service

/// The RMA service; cheap to clone.
#[derive(Clone)]
pub struct Rma {
    cases: Cases,
    sla: Arc<SlaSettings>,
    settings: Arc<Settings>,
}

fn part_view(r: PartRow) -> Result<Part> {
    Ok(Part {
        compatible_models: serde_json::from_str(&r.compatible_models).map_err(|_| {
            Error::Corrupt(format!(
                "part {} has compatible_models {:?}",
                r.part_number, r.compatible_models
            ))
        })?,
        id: r.id,
        part_number: r.part_number,
        vendor: r.vendor,
        model: r.model,
        description: r.description,
        created_at: from_micros(r.created_at),
    })
}

fn warehouse_view(r: WarehouseRow) -> Warehouse {
    Warehouse {
        id: r.id,
        name: r.name,
        address: r.address,
        created_at: from_micros(r.created_at),
    }
}

fn stock_view(r: StockRow) -> Stock {
    Stock {
        available: r.on_hand - r.reserved,
        part_id: r.part_id,
        part_number: r.part_number,
        warehouse_id: r.warehouse_id,
        warehouse: r.warehouse_name,
        on_hand: r.on_hand,
        reserved: r.reserved,
        updated_at: from_micros(r.updated_at),
    }
}

fn shipment_view(r: ShipmentRow) -> Result<Shipment> {
    let t = |v: Option<i64>| v.map(from_micros);
    Ok(Shipment {
        state: crate::store::parse_enum("shipments.state", &r.state)?,
        id: r.id,
        case_number: r.case_number,
        part_number: r.part_number,
        warehouse_id: r.warehouse_id,
        warehouse: r.warehouse_name,
        quantity: r.quantity,
        reason: r.reason,
        requested_at: from_micros(r.requested_at),
        confirmed_at: from_micros(r.confirmed_at),
        ship_by: t(r.ship_by),
        approved_at: t(r.approved_at),
        refused_at: t(r.refused_at),
        refused_reason: r.refused_reason,
        picked_at: t(r.picked_at),
        carrier: r.carrier,
        tracking_number: r.tracking_number,
        spare_serial: r.spare_serial,
        shipped_at: t(r.shipped_at),
        delivered_at: t(r.delivered_at),
        return_due: t(r.return_due),
        return_reminded_at: t(r.return_reminded_at),
        returned_at: t(r.returned_at),
        faulty_serial: r.faulty_serial,
        received_at: t(r.received_at),
        repair_due: t(r.repair_due),
        outcome: r.outcome,
        outcome_at: t(r.outcome_at),
        closed_at: t(r.closed_at),
        cancelled_at: t(r.cancelled_at),
        cancel_reason: r.cancel_reason,
        ship_overdue: r.ship_overdue,
        return_overdue: r.return_overdue,
        repair_overdue: r.repair_overdue,
        updated_at: from_micros(r.updated_at),
    })
}

/// A `shipment` history entry for `row` in its current state.
fn body(row: &ShipmentRow, state: &str) -> ActivityBody {
    ActivityBody::Shipment {
        shipment_id: row.id,
        part_number: row.part_number.clone(),
        quantity: row.quantity,
        state: state.to_string(),
        warehouse: None,
        carrier: None,
        tracking_number: None,
        serial: None,
        reason: None,
        due_at: None,
        timer_id: None,
    }
}

/// Who reads an entry for a step into `to`.
fn visibility(to: ShipmentState) -> Visibility {
    use ShipmentState::*;
    match to {
        Approved | Refused | Picked => Visibility::Internal,
        _ => Visibility::Public,
    }
}

/// A field the step does not take.
fn refuse_field(field: &str, value: &Option<String>, step: ShipmentState) -> Result<()> {
    if value.is_some() {
        return Err(Error::invalid(
            field,
            format!("is not taken when the shipment becomes {step}"),
        ));
    }
    Ok(())
}

fn owner(id: i64) -> String {
    format!("shipment:{id}")
}

impl Rma {
    pub fn new(cases: Cases, sla: Arc<SlaSettings>, settings: Settings) -> Rma {
        Rma {
            cases,
            sla,
            settings: Arc::new(settings),
        }
    }

    /// The spare desk's calendar (`rma.calendar`), looked up now (so an
    /// API-managed calendar's new holidays apply at once).
    pub fn calendar(&self) -> Result<Calendar> {
        let reg = self.sla.current();
        let tz = self.settings.timezone.unwrap_or(reg.timezone);
        reg.named_calendar(&self.settings.calendar, tz)
            .ok_or_else(|| {
                Error::invalid(
                    "rma.calendar",
                    format!(
                        "no SLA calendar named {:?} (and it is no preset)",
                        self.settings.calendar
                    ),
                )
            })
    }

    fn store(&self) -> &crate::store::Store {
        &self.cases.store
    }

    // ------------------------------------------------- parts, warehouses

    pub async fn create_part(&self, who: &Principal, req: &NewPart) -> Result<Part> {
        who.require(Action::ManageSpares)?;
        let number = ident("part_number", &req.part_number, 100)?;
        let vendor = text("vendor", &req.vendor, 200)?;
        let model = text("model", &req.model, 200)?;
        let description =
            opt_text("description", &Some(req.description.clone()), 2000)?.unwrap_or_default();
        let mut models = Vec::with_capacity(req.compatible_models.len());
        for (i, m) in req.compatible_models.iter().enumerate() {
            let m = text(&format!("compatible_models[{i}]"), m, 200)?;
            if !models.contains(&m) {
                models.push(m);
            }
        }
        let json = serde_json::to_string(&models).map_err(|e| Error::Internal(e.to_string()))?;
        self.store()
            .insert_part(
                &number,
                &vendor,
                &model,
                &description,
                &json,
                self.cases.clock.now(),
            )
            .await?;
        self.part(&number).await
    }

    async fn part(&self, number: &str) -> Result<Part> {
        let row =
            self.store().part_by_number(number).await?.ok_or_else(|| {
                Error::invalid("part_number", format!("no part numbered {number:?}"))
            })?;
        part_view(row)
    }

    pub async fn parts(&self, who: &Principal) -> Result<Vec<Part>> {
        who.require(Action::ReadSpares)?;
        self.store()
            .parts()
            .await?
            .into_iter()
            .map(part_view)
            .collect()
    }

    pub async fn create_warehouse(&self, who: &Principal, req: &NewWarehouse) -> Result<Warehouse> {
        who.require(Action::ManageSpares)?;
        let name = text("name", &req.name, 200)?;
        let address = text("address", &req.address, 1000)?;
        let id = self
            .store()
            .insert_warehouse(&name, &address, self.cases.clock.now())
            .await?;
        self.warehouse(id, "id").await
    }

    async fn warehouse(&self, id: i64, field: &str) -> Result<Warehouse> {
        self.store()
            .warehouse(id)
            .await?
            .map(warehouse_view)
            .ok_or_else(|| Error::invalid(field, format!("no warehouse with id {id}")))
    }

    pub async fn warehouses(&self, who: &Principal) -> Result<Vec<Warehouse>> {
        who.require(Action::ReadSpares)?;
        Ok(self
            .store()
            .warehouses()
            .await?
            .into_iter()
            .map(warehouse_view)
            .collect())
    }

    // ------------------------------------------------------------- stock

    pub async fn stock(
        &self,
        who: &Principal,
        part_number: Option<&str>,
        warehouse_id: Option<i64>,
    ) -> Result<Vec<Stock>> {
        who.require(Action::ReadSpares)?;
        let part = match part_number {
            Some(n) => Some(self.part(n).await?.id),
            None => None,
        };
        Ok(self
            .store()
            .stock(part, warehouse_id)
            .await?
            .into_iter()
            .map(stock_view)
            .collect())
    }

    /// Receive units into a warehouse or take them out (never below what
    /// is reserved).
    pub async fn adjust_stock(&self, who: &Principal, req: &StockChange) -> Result<Stock> {
        who.require(Action::ManageSpares)?;
        if req.delta == 0 {
            return Err(Error::invalid("delta", "must not be zero"));
        }
        if req.delta.abs() > 1_000_000 {
            return Err(Error::invalid("delta", "is more than 1000000 units"));
        }
        let mut serials = Vec::with_capacity(req.serials.len());
        for (i, s) in req.serials.iter().enumerate() {
            let s = ident(&format!("serials[{i}]"), s, 100)?;
            if serials.contains(&s) {
                return Err(Error::invalid("serials", format!("{s:?} is given twice")));
            }
            serials.push(s);
        }
        if !serials.is_empty() && serials.len() as i64 != req.delta.abs() {
            return Err(Error::invalid(
                "serials",
                format!(
                    "{} serials for {} units; give one per unit or none",
                    serials.len(),
                    req.delta.abs()
                ),
            ));
        }
        let part = self.part(&req.part_number).await?;
        let wh = self.warehouse(req.warehouse_id, "warehouse_id").await?;
        self.store()
            .adjust_stock(
                part.id,
                wh.id,
                req.delta,
                &serials,
                Some(who.user_id),
                self.cases.clock.now(),
            )
            .await
            .map_err(|e| match e {
                Error::Conflict(m) => Error::conflict(format!(
                    "part {} at warehouse {}: {m}",
                    part.part_number, wh.name
                )),
                e => e,
            })?;
        self.store()
            .stock(Some(part.id), Some(wh.id))
            .await?
            .into_iter()
            .next()
            .map(stock_view)
            .ok_or_else(|| Error::Corrupt("stock row vanished".into()))
    }

    /// The stock ledger, newest first, of one part and/or warehouse.
    pub async fn ledger(
        &self,
        who: &Principal,
        part_number: Option<&str>,
        warehouse_id: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<LedgerEntry>> {
        who.require(Action::ReadSpares)?;
        let part = match part_number {
            Some(n) => Some(self.part(n).await?.id),
            None => None,
        };
        let rows = self
            .store()
            .stock_ledger(part, warehouse_id, limit.unwrap_or(200).clamp(1, 5000))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| LedgerEntry {
                id: r.id,
                part_number: r.part_number,
                warehouse_id: r.warehouse_id,
                warehouse: r.warehouse_name,
                kind: r.kind,
                on_hand_delta: r.on_hand_delta,
                reserved_delta: r.reserved_delta,
                shipment_id: r.shipment_id,
                visit_id: r.visit_id,
                serial: r.serial,
                user_id: r.user_id,
                at: from_micros(r.at),
            })
            .collect())
    }

    /// Spare units by serial, of one part and/or warehouse.
    pub async fn units(
        &self,
        who: &Principal,
        part_number: Option<&str>,
        warehouse_id: Option<i64>,
    ) -> Result<Vec<SpareUnit>> {
        who.require(Action::ReadSpares)?;
        let part = match part_number {
            Some(n) => Some(self.part(n).await?.id),
            None => None,
        };
        let rows = self.store().spare_units(part, warehouse_id, 5000).await?;
        Ok(rows
            .into_iter()
            .map(|r| SpareUnit {
                id: r.id,
                part_number: r.part_number,
                warehouse_id: r.warehouse_id,
                warehouse: r.warehouse_name,
                serial: r.serial,
                state: r.state,
                shipment_id: r.shipment_id,
                visit_id: r.visit_id,
                received_at: from_micros(r.received_at),
                updated_at: from_micros(r.updated_at),
            })
            .collect())
    }

    // --------------------------------------------------------- shipments

    pub async fn shipments(
        &self,
        who: &Principal,
        state: Option<ShipmentState>,
        case_number: Option<String>,
        overdue: Option<bool>,
        limit: Option<i64>,
    ) -> Result<Vec<Shipment>> {
        who.require(Action::ReadSpares)?;
        let f = ShipmentFilter {
            state: state.map(|s| s.as_str().to_string()),
            case_number,
            overdue,
            organization_id: who.organization_scope(),
            limit: limit.unwrap_or(100).clamp(1, 1000),
        };
        self.store()
            .shipments(&f)
            .await?
            .into_iter()
            .map(shipment_view)
            .collect()
    }

    pub async fn shipment(&self, who: &Principal, id: i64) -> Result<Shipment> {
        who.require(Action::ReadSpares)?;
        self.store()
            .shipment(id)
            .await?
            .filter(|r| who.sees_organization(r.organization_id))
            .ok_or_else(|| Error::not_found(format!("shipment {id}")))
            .and_then(shipment_view)
    }

    /// Ask for a spare for the case's device.
    pub async fn request(
        &self,
        who: &Principal,
        number: &str,
        req: &NewShipment,
    ) -> Result<Shipment> {
        who.require(Action::RequestSpare)?;
        if req.quantity < 1 {
            return Err(Error::invalid(
                "quantity",
                format!("{} is not a positive number of units", req.quantity),
            ));
        }
        if req.quantity > 10_000 {
            return Err(Error::invalid("quantity", "is more than 10000 units"));
        }
        let reason = opt_text("reason", &req.reason, 2000)?;
        let part = self.part(req.part_number.trim()).await?;
        let wh = self.warehouse(req.warehouse_id, "warehouse_id").await?;
        let now = self.cases.clock.now();
        let confirmed_at = req.confirmed_at.unwrap_or(now);
        if confirmed_at > now {
            return Err(Error::invalid("confirmed_at", "is in the future"));
        }
        let case = self
            .store()
            .case_by_number(number)
            .await?
            .filter(|c| who.sees_organization(c.organization_id))
            .ok_or_else(|| Error::not_found(format!("case {number}")))?;
        if confirmed_at < from_micros(case.created_at) {
            return Err(Error::invalid(
                "confirmed_at",
                format!("is before case {number} was opened"),
            ));
        }
        let device_id = case.device_id.ok_or_else(|| {
            Error::invalid(
                "case",
                format!("case {number} names no device to send a spare for"),
            )
        })?;
        let device = self
            .store()
            .device(device_id)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("device {device_id} of case {number}")))?;
        if !part.compatible_models.is_empty()
            && !part
                .compatible_models
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&device.model))
        {
            return Err(Error::invalid(
                "part_number",
                format!(
                    "part {} fits {}, not the case's device {} ({})",
                    part.part_number,
                    part.compatible_models.join(", "),
                    device.name,
                    device.model
                ),
            ));
        }
        let ship_by = rules::ship_by(&self.settings.rules, &self.calendar()?, confirmed_at)?;
        let new = ShipmentRow {
            part_id: part.id,
            part_number: part.part_number.clone(),
            warehouse_id: wh.id,
            warehouse_name: wh.name.clone(),
            quantity: req.quantity,
            state: ShipmentState::Requested.as_str().into(),
            reason: reason.clone(),
            requested_by: Some(who.user_id),
            requested_at: to_micros(now),
            confirmed_at: to_micros(confirmed_at),
            ship_by: Some(to_micros(ship_by)),
            updated_at: to_micros(now),
            ..ShipmentRow::default()
        };
        let row = self
            .cases
            .shipment_step(
                Some(who),
                "",
                number,
                ShipmentTarget::New(Box::new(new)),
                |case, row, _now| {
                    let status: crate::cases::Status =
                        crate::store::parse_enum("cases.status", &case.status)?;
                    if !status.is_open() {
                        return Err(Error::conflict(format!(
                            "case {number} is {}; reopen it to request a spare",
                            case.status
                        )));
                    }
                    let mut b = body(row, "requested");
                    if let ActivityBody::Shipment {
                        warehouse,
                        reason: r,
                        due_at,
                        ..
                    } = &mut b
                    {
                        *warehouse = Some(row.warehouse_name.clone());
                        *r = reason.clone();
                        *due_at = Some(ship_by);
                    }
                    Ok((row.clone(), StockOp::None, vec![(Visibility::Public, b)]))
                },
            )
            .await?;
        shipment_view(row)
    }

    /// Move a shipment one step (`POST /shipments/{id}/{step}`).
    pub async fn step(
        &self,
        who: &Principal,
        id: i64,
        to: ShipmentState,
        req: &ShipmentStepRequest,
    ) -> Result<Shipment> {
        who.require(Action::ManageSpares)?;
        use ShipmentState::*;
        let current = self
            .store()
            .shipment(id)
            .await?
            .filter(|r| who.sees_organization(r.organization_id))
            .ok_or_else(|| Error::not_found(format!("shipment {id}")))?;
        // Field checks first: a field this step does not take is refused.
        let reason = opt_text("reason", &req.reason, 2000)?;
        let carrier = opt_text("carrier", &req.carrier, 100)?;
        let tracking = opt_text("tracking_number", &req.tracking_number, 100)?;
        let spare_serial = opt_text("spare_serial", &req.spare_serial, 100)?;
        let faulty_serial = opt_text("faulty_serial", &req.faulty_serial, 100)?;
        if to != Shipped {
            refuse_field("carrier", &carrier, to)?;
            refuse_field("spare_serial", &spare_serial, to)?;
            if tracking.is_some() {
                let state: ShipmentState =
                    crate::store::parse_enum("shipments.state", &current.state)?;
                return Err(Error::conflict(format!(
                    "tracking_number: shipment {id} is {state}; a tracking number is given when a picked shipment ships"
                )));
            }
        }
        if to != Returned {
            refuse_field("faulty_serial", &faulty_serial, to)?;
        }
        if req.at.is_some() && !matches!(to, Delivered | Returned | Received) {
            return Err(Error::invalid(
                "at",
                format!("is not taken when the shipment becomes {to}"),
            ));
        }
        if matches!(to, Refused | Cancelled) && reason.is_none() {
            return Err(Error::invalid(
                "reason",
                format!("say why when the shipment becomes {to}"),
            ));
        }
        let cal = self.calendar()?;
        let desk = self.settings.rules.clone();
        let number = current.case_number.clone();
        let row = self
            .cases
            .shipment_step(
                Some(who),
                "",
                &number,
                ShipmentTarget::Existing(id),
                |_case, cur, now| {
                    let from: ShipmentState =
                        crate::store::parse_enum("shipments.state", &cur.state)?;
                    from.transition(to)?;
                    let at = req.at.unwrap_or(now);
                    if at > now {
                        return Err(Error::invalid("at", "is in the future"));
                    }
                    let mut r = cur.clone();
                    r.state = to.as_str().into();
                    r.updated_at = to_micros(now);
                    let mut b = body(&r, to.as_str());
                    let mut stock = StockOp::None;
                    let mut due = None;
                    let earlier = |prev: Option<i64>, what: &str| -> Result<()> {
                        match prev {
                            Some(p) if to_micros(at) < p => Err(Error::invalid(
                                "at",
                                format!(
                                    "{} is before the shipment was {what} ({})",
                                    at.to_rfc3339(),
                                    from_micros(p).to_rfc3339()
                                ),
                            )),
                            _ => Ok(()),
                        }
                    };
                    match to {
                        Approved => {
                            r.approved_at = Some(to_micros(now));
                            r.approved_by = Some(who.user_id);
                            stock = StockOp::Reserve;
                            due = r.ship_by.map(from_micros);
                        }
                        Refused => {
                            r.refused_at = Some(to_micros(now));
                            r.refused_reason = reason.clone();
                        }
                        Picked => r.picked_at = Some(to_micros(now)),
                        Shipped => {
                            let carrier = carrier
                                .clone()
                                .ok_or_else(|| Error::invalid("carrier", "is required to ship"))?;
                            let tracking = tracking.clone().ok_or_else(|| {
                                Error::invalid("tracking_number", "is required to ship")
                            })?;
                            r.carrier = Some(carrier);
                            r.tracking_number = Some(tracking);
                            r.spare_serial = spare_serial.clone();
                            r.shipped_at = Some(to_micros(now));
                            r.ship_overdue = false;
                            stock = StockOp::Ship;
                        }
                        Delivered => {
                            earlier(r.shipped_at, "shipped")?;
                            r.delivered_at = Some(to_micros(at));
                            let d = rules::return_due(&desk, &cal, at)?;
                            r.return_due = Some(to_micros(d));
                            due = Some(d);
                        }
                        Returned => {
                            earlier(r.delivered_at, "delivered")?;
                            r.returned_at = Some(to_micros(at));
                            r.faulty_serial = faulty_serial.clone();
                            r.return_overdue = false;
                        }
                        Received => {
                            earlier(r.returned_at, "returned")?;
                            r.received_at = Some(to_micros(at));
                            let d = rules::repair_due(&desk, &cal, at)?;
                            r.repair_due = Some(to_micros(d));
                            due = Some(d);
                        }
                        Repaired | Scrapped => {
                            r.outcome = Some(to.as_str().into());
                            r.outcome_at = Some(to_micros(now));
                            r.repair_overdue = false;
                        }
                        Closed => r.closed_at = Some(to_micros(now)),
                        Cancelled => {
                            r.cancelled_at = Some(to_micros(now));
                            r.cancel_reason = reason.clone();
                            r.ship_overdue = false;
                            if from.holds_reservation() {
                                stock = StockOp::Release;
                            }
                        }
                        Requested => {}
                    }
                    if let ActivityBody::Shipment {
                        warehouse,
                        carrier: c,
                        tracking_number: t,
                        serial,
                        reason: rs,
                        due_at,
                        ..
                    } = &mut b
                    {
                        *warehouse = matches!(to, Approved | Picked | Shipped)
                            .then(|| r.warehouse_name.clone());
                        *c = r.carrier.clone().filter(|_| to == Shipped);
                        *t = r.tracking_number.clone().filter(|_| to == Shipped);
                        *serial = match to {
                            Shipped => r.spare_serial.clone(),
                            Returned => r.faulty_serial.clone(),
                            _ => None,
                        };
                        *rs = reason.clone();
                        *due_at = due;
                    }
                    Ok((r, stock, vec![(visibility(to), b)]) as ShipmentDecision)
                },
            )
            .await?;
        self.after_step(&row, to).await?;
        shipment_view(row)
    }

    /// The deadline timers a step starts or ends.
    async fn after_step(&self, row: &ShipmentRow, to: ShipmentState) -> Result<()> {
        use ShipmentState::*;
        let store = self.store();
        let owner = owner(row.id);
        let now = self.cases.clock.now();
        match to {
            Approved => {
                if let Some(d) = row.ship_by {
                    store
                        .schedule_timer(&owner, "ship_by", from_micros(d), "{}", now)
                        .await?;
                }
            }
            Shipped => {
                store.cancel_timers(&owner, Some("ship_by")).await?;
            }
            Delivered => {
                if let Some(d) = row.return_due {
                    store
                        .schedule_timer(&owner, "return_due", from_micros(d), "{}", now)
                        .await?;
                }
                if let Some(delivered) = row.delivered_at {
                    let reminder = rules::return_reminder(
                        &self.settings.rules,
                        &self.calendar()?,
                        from_micros(delivered),
                    )?;
                    if let Some(r) = reminder {
                        store
                            .schedule_timer(&owner, "return_reminder", r, "{}", now)
                            .await?;
                    }
                }
            }
            Returned => {
                store.cancel_timers(&owner, Some("return_due")).await?;
                store.cancel_timers(&owner, Some("return_reminder")).await?;
            }
            Received => {
                if let Some(d) = row.repair_due {
                    store
                        .schedule_timer(&owner, "repair_due", from_micros(d), "{}", now)
                        .await?;
                }
            }
            Repaired | Scrapped => {
                store.cancel_timers(&owner, Some("repair_due")).await?;
            }
            Refused | Cancelled | Closed => {
                store.cancel_timers(&owner, None).await?;
            }
            Requested | Picked => {}
        }
        Ok(())
    }

    /// A `shipment:<id>` timer came due: record the missed deadline (or
    /// the reminder) once, if the step it guards is still not done.
    pub async fn fire(&self, t: &TimerRow) -> Result<()> {
        use ShipmentState::*;
        let Some(id) = t
            .owner
            .strip_prefix("shipment:")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return Ok(());
        };
        let Some(current) = self.store().shipment(id).await? else {
            return Ok(());
        };
        let kind = t.kind.clone();
        // Whether the deadline still applies to `r`, and is not yet recorded.
        let applies = move |r: &ShipmentRow| -> Result<bool> {
            let state: ShipmentState = crate::store::parse_enum("shipments.state", &r.state)?;
            Ok(match kind.as_str() {
                "ship_by" => matches!(state, Approved | Picked) && !r.ship_overdue,
                "return_reminder" => state == Delivered && r.return_reminded_at.is_none(),
                "return_due" => state == Delivered && !r.return_overdue,
                "repair_due" => state == Received && !r.repair_overdue,
                _ => false,
            })
        };
        if !applies(&current)? {
            return Ok(());
        }
        let due = t.due();
        let timer_id = t.id;
        let kind = t.kind.clone();
        self.cases
            .shipment_step(
                None,
                AUTHOR,
                &current.case_number,
                ShipmentTarget::Existing(id),
                |_case, cur, now| {
                    let mut r = cur.clone();
                    if !applies(cur)? {
                        return Ok((r, StockOp::None, Vec::new()));
                    }
                    let (event, vis) = match kind.as_str() {
                        "ship_by" => {
                            r.ship_overdue = true;
                            ("ship_overdue", Visibility::Internal)
                        }
                        "return_reminder" => {
                            r.return_reminded_at = Some(to_micros(now));
                            ("return_reminder", Visibility::Public)
                        }
                        "return_due" => {
                            r.return_overdue = true;
                            ("return_overdue", Visibility::Public)
                        }
                        _ => {
                            r.repair_overdue = true;
                            ("repair_overdue", Visibility::Internal)
                        }
                    };
                    r.updated_at = to_micros(now);
                    let mut b = body(&r, event);
                    if let ActivityBody::Shipment {
                        due_at,
                        timer_id: tid,
                        ..
                    } = &mut b
                    {
                        *due_at = Some(match event {
                            "return_reminder" => r.return_due.map(from_micros).unwrap_or(due),
                            _ => due,
                        });
                        *tid = Some(timer_id);
                    }
                    Ok((r, StockOp::None, vec![(vis, b)]))
                },
            )
            .await?;
        Ok(())
    }
}
