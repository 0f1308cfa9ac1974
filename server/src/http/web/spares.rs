//! Spare parts on the case workspace: the case's shipments with their
//! deadlines, the request form (staff who may request spares), and each
//! shipment's next steps (the spare desk). Every form calls the same `Rma`
//! method as its REST endpoint.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::cases::opt;
use super::layout::{countdown, table_wrap, time, time_opt, WebForm, WebResult};
use super::WebAuth;
use crate::auth::Action;
use crate::cases::CaseView;
use crate::error::Error;
use crate::http::AppState;
use crate::rma::rules::ShipmentState;
use crate::rma::{NewShipment, Part, Shipment, ShipmentStepRequest, Warehouse};

/// What the panel needs, loaded by the workspace for staff who may see spares.
pub struct Panel {
    shipments: Vec<Shipment>,
    /// Parts that fit the case's device, and warehouses (when the caller may
    /// request a spare on this case).
    parts: Vec<Part>,
    warehouses: Vec<Warehouse>,
}

pub async fn load(s: &AppState, who: &WebAuth, case: &CaseView) -> Result<Option<Panel>, Error> {
    let p = &who.principal;
    if !p.may(Action::ReadSpares) {
        return Ok(None);
    }
    let shipments = s
        .rma
        .shipments(p, None, Some(case.number.clone()), None, Some(100))
        .await?;
    let (mut parts, mut warehouses) = (Vec::new(), Vec::new());
    if p.may(Action::RequestSpare) && case.status.is_open() {
        if let Some(device) = match case.device_id {
            Some(id) => s.store.device(id).await?,
            None => None,
        } {
            parts = s
                .rma
                .parts(p)
                .await?
                .into_iter()
                .filter(|part| {
                    part.compatible_models.is_empty()
                        || part
                            .compatible_models
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(&device.model))
                })
                .collect();
            warehouses = s.rma.warehouses(p).await?;
        }
    }
    Ok(Some(Panel {
        shipments,
        parts,
        warehouses,
    }))
}

fn step_word(to: ShipmentState) -> &'static str {
    use ShipmentState::*;
    match to {
        Approved => "approve",
        Refused => "refuse",
        Picked => "pick",
        Shipped => "ship",
        Delivered => "deliver",
        Returned => "return",
        Received => "receive",
        Repaired => "repair",
        Scrapped => "scrap",
        Closed => "close",
        Cancelled => "cancel",
        Requested => "request",
    }
}

fn deadline(
    label: &str,
    due: Option<DateTime<Utc>>,
    live: bool,
    overdue: bool,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        @if let Some(due) = due {
            div.small {
                (label) " " (time(due))
                @if live { " " (countdown(due, now)) }
                @if overdue { " " span.tag.bad { "overdue" } }
            }
        }
    }
}

pub fn render(who: &WebAuth, case: &CaseView, panel: &Panel, now: DateTime<Utc>) -> Markup {
    use ShipmentState::*;
    let p = &who.principal;
    let manage = p.may(Action::ManageSpares);
    let base = format!("/cases/{}/shipments", case.number);
    html! {
        section.card aria-labelledby="spares" {
            h2 #spares { "Spare parts" }
            @if panel.shipments.is_empty() {
                p.muted { "No spare requested on this case." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Shipment" } th scope="col" { "Part" } th scope="col" { "State" }
                            th scope="col" { "Deadlines" } th scope="col" { "Carrier" }
                            @if manage { th scope="col" { "Next step" } }
                        } }
                        tbody {
                            @for sh in &panel.shipments {
                                tr {
                                    td { "#" (sh.id) br; span.small { "requested " (time(sh.requested_at)) } }
                                    td { (sh.quantity) " x " (sh.part_number) br; span.small { "from " (sh.warehouse) } }
                                    td { span.status { (sh.state.as_str()) } }
                                    td {
                                        (deadline("ship by", sh.ship_by, matches!(sh.state, Requested | Approved | Picked), sh.ship_overdue, now))
                                        (deadline("return by", sh.return_due, sh.state == Delivered, sh.return_overdue, now))
                                        (deadline("repair by", sh.repair_due, sh.state == Received, sh.repair_overdue, now))
                                    }
                                    td {
                                        @if let Some(c) = &sh.carrier { (c) }
                                        @if let Some(t) = &sh.tracking_number { br; span.small { (t) } }
                                        @if let Some(at) = sh.shipped_at { br; span.small { "shipped " (time_opt(Some(at))) } }
                                    }
                                    @if manage {
                                        td {
                                            @for to in sh.state.next() {
                                                @let word = step_word(*to);
                                                form.row method="post" action={(base) "/" (sh.id) "/" (word)} {
                                                    input type="hidden" name="csrf" value=(who.csrf);
                                                    @if *to == Shipped {
                                                        label for={"carrier-" (sh.id)} { "Carrier" }
                                                        input id={"carrier-" (sh.id)} name="carrier" required size="8";
                                                        label for={"tracking-" (sh.id)} { "Tracking number" }
                                                        input id={"tracking-" (sh.id)} name="tracking_number" required size="12";
                                                    }
                                                    @if matches!(*to, Refused | Cancelled) {
                                                        label for={(word) "-why-" (sh.id)} { "Reason" }
                                                        input id={(word) "-why-" (sh.id)} name="reason" required size="12";
                                                    }
                                                    button type="submit" class=[matches!(*to, Refused | Cancelled).then_some("secondary")] { (word) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
            @if !panel.parts.is_empty() && !panel.warehouses.is_empty() {
                details.action {
                    summary { "Request a spare" }
                    form method="post" action={"/cases/" (case.number) "/spare"} {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label for="spare-part" { "Part (fits " (case.device_name.as_deref().unwrap_or("the device")) ")" }
                        select #spare-part name="part_number" required {
                            @for part in &panel.parts { option value=(part.part_number) { (part.part_number) " - " (part.description) } }
                        }
                        label for="spare-wh" { "From warehouse" }
                        select #spare-wh name="warehouse_id" required {
                            @for w in &panel.warehouses { option value=(w.id) { (w.name) } }
                        }
                        label for="spare-qty" { "Quantity" }
                        input #spare-qty name="quantity" type="number" min="1" max="10000" value="1" required;
                        label for="spare-why" { "Why (the confirmed fault)" }
                        input #spare-why name="reason";
                        p.small { "The fault counts as confirmed now: before 14:00 on a working day the spare ships today, otherwise by the next working day's morning." }
                        button type="submit" { "Request" }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SpareForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    part_number: Option<String>,
    #[serde(default)]
    warehouse_id: Option<String>,
    #[serde(default)]
    quantity: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
}

fn number(field: &str, s: &Option<String>) -> Result<i64, Error> {
    let v = opt(s).ok_or_else(|| Error::invalid(field, "must not be empty"))?;
    v.parse()
        .map_err(|_| Error::invalid(field, format!("{v:?} is not a number")))
}

/// `POST /cases/{number}/spare`: request a spare for the case's device.
pub async fn request(
    State(s): State<AppState>,
    who: WebAuth,
    Path(case): Path<String>,
    WebForm(f): WebForm<SpareForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let result = async {
        let req = NewShipment {
            part_number: opt(&f.part_number)
                .ok_or_else(|| Error::invalid("part_number", "choose a part"))?,
            warehouse_id: number("warehouse_id", &f.warehouse_id)?,
            quantity: number("quantity", &f.quantity)?,
            reason: opt(&f.reason),
            confirmed_at: None,
        };
        s.rma.request(&who.principal, &case, &req).await
    }
    .await;
    super::cases::after_action(&s, &who, &case, "spare", result.map(|_| ())).await
}

/// `POST /cases/{number}/shipments/{id}/{step}`: the spare desk moves a
/// shipment on.
pub async fn step(
    State(s): State<AppState>,
    who: WebAuth,
    Path((case, id, step)): Path<(String, i64, String)>,
    WebForm(f): WebForm<SpareForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let result = async {
        let to = crate::rma::step_state(&step)?;
        let req = ShipmentStepRequest {
            reason: opt(&f.reason),
            carrier: opt(&f.carrier),
            tracking_number: opt(&f.tracking_number),
            ..Default::default()
        };
        let sh = s.rma.shipment(&who.principal, id).await?;
        if sh.case_number != case {
            return Err(Error::not_found(format!("shipment {id} on case {case}")));
        }
        s.rma.step(&who.principal, id, to, &req).await
    }
    .await;
    super::cases::after_action(&s, &who, &case, "shipment", result.map(|_| ())).await
}
