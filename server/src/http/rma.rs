//! Spare parts and RMA over HTTP: parts, warehouses, stock, and spare
//! shipments on cases with one endpoint per step.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::rma::rules::ShipmentState;
use crate::rma::{
    step_state, LedgerEntry, NewPart, NewShipment, NewWarehouse, Part, Shipment,
    ShipmentStepRequest, SpareUnit, Stock, StockChange, Warehouse,
};

/// Add a part to the catalogue (RMA admins, admins).
#[utoipa::path(post, path = "/api/v1/parts", tag = "spares", request_body = NewPart,
    responses((status = 201, body = Part), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_part(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewPart>,
) -> ApiResult<(StatusCode, Json<Part>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.rma.create_part(&who, &req).await?),
    ))
}

/// The part catalogue (staff).
#[utoipa::path(get, path = "/api/v1/parts", tag = "spares",
    responses((status = 200, body = Vec<Part>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_parts(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Vec<Part>>> {
    Ok(Json(s.rma.parts(&who).await?))
}

/// Add a warehouse (RMA admins, admins).
#[utoipa::path(post, path = "/api/v1/warehouses", tag = "spares", request_body = NewWarehouse,
    responses((status = 201, body = Warehouse), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_warehouse(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewWarehouse>,
) -> ApiResult<(StatusCode, Json<Warehouse>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.rma.create_warehouse(&who, &req).await?),
    ))
}

/// The warehouses (staff).
#[utoipa::path(get, path = "/api/v1/warehouses", tag = "spares",
    responses((status = 200, body = Vec<Warehouse>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_warehouses(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<Warehouse>>> {
    Ok(Json(s.rma.warehouses(&who).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    pub part_number: Option<String>,
    pub warehouse_id: Option<i64>,
}

/// Stock per part and warehouse: on hand, reserved, available (staff).
#[utoipa::path(get, path = "/api/v1/stock", tag = "spares", params(StockQuery),
    responses((status = 200, body = Vec<Stock>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_stock(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<StockQuery>,
) -> ApiResult<Json<Vec<Stock>>> {
    Ok(Json(
        s.rma
            .stock(&who, q.part_number.as_deref(), q.warehouse_id)
            .await?,
    ))
}

/// Receive units (positive delta) or take them out (negative; never below
/// the reserved units) (RMA admins, admins).
#[utoipa::path(post, path = "/api/v1/stock", tag = "spares", request_body = StockChange,
    responses((status = 200, body = Stock), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn adjust_stock(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<StockChange>,
) -> ApiResult<Json<Stock>> {
    Ok(Json(s.rma.adjust_stock(&who, &req).await?))
}

/// Request a spare for the case's device (engineers, dispatchers, experts,
/// managers, RMA admins, admins). The ship-by deadline follows from
/// `confirmed_at` on the spare-desk calendar.
#[utoipa::path(post, path = "/api/v1/cases/{number}/shipments", tag = "spares", request_body = NewShipment,
    params(("number" = String, Path, description = "Case number")),
    responses((status = 201, body = Shipment), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request_shipment(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(number): ApiPath<String>,
    ApiJson(req): ApiJson<NewShipment>,
) -> ApiResult<(StatusCode, Json<Shipment>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.rma.request(&who, &number, &req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShipmentQuery {
    pub state: Option<ShipmentState>,
    /// Case number.
    pub case: Option<String>,
    /// Only shipments with (true) or without (false) a missed deadline
    /// (ship-by, return or repair).
    pub overdue: Option<bool>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Spare shipments, newest first (staff).
#[utoipa::path(get, path = "/api/v1/shipments", tag = "spares", params(ShipmentQuery),
    responses((status = 200, body = Vec<Shipment>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_shipments(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<ShipmentQuery>,
) -> ApiResult<Json<Vec<Shipment>>> {
    Ok(Json(
        s.rma
            .shipments(&who, q.state, q.case, q.overdue, q.limit)
            .await?,
    ))
}

/// One shipment (staff).
#[utoipa::path(get, path = "/api/v1/shipments/{id}", tag = "spares",
    params(("id" = i64, Path, description = "Shipment id")),
    responses((status = 200, body = Shipment), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_shipment(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Shipment>> {
    Ok(Json(s.rma.shipment(&who, id).await?))
}

/// Move a shipment one step (RMA admins, admins): `approve` (reserves
/// stock; 409 when out of stock), `refuse` (reason), `pick`, `ship`
/// (carrier, tracking_number, optional spare_serial), `deliver` (at),
/// `return` (at, faulty_serial), `receive` (at), `repair`, `scrap`, `close`,
/// `cancel` (reason; releases the reservation). Illegal moves are 409.
#[utoipa::path(post, path = "/api/v1/shipments/{id}/{step}", tag = "spares", request_body = ShipmentStepRequest,
    params(("id" = i64, Path, description = "Shipment id"),
           ("step" = String, Path, description = "approve, refuse, pick, ship, deliver, return, receive, repair, scrap, close or cancel")),
    responses((status = 200, body = Shipment), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn shipment_step(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, step)): ApiPath<(i64, String)>,
    ApiJson(req): ApiJson<ShipmentStepRequest>,
) -> ApiResult<Json<Shipment>> {
    let to = step_state(&step)?;
    Ok(Json(s.rma.step(&who, id, to, &req).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub part_number: Option<String>,
    pub warehouse_id: Option<i64>,
    /// At most this many (default 200, at most 5000).
    pub limit: Option<i64>,
}

/// The stock ledger, newest first: every receive, remove, reserve,
/// release, ship and use on a field visit (staff).
#[utoipa::path(get, path = "/api/v1/stock/ledger", tag = "spares", params(LedgerQuery),
    responses((status = 200, body = Vec<LedgerEntry>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stock_ledger(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<Vec<LedgerEntry>>> {
    Ok(Json(
        s.rma
            .ledger(&who, q.part_number.as_deref(), q.warehouse_id, q.limit)
            .await?,
    ))
}

/// Spare units by serial: in stock, shipped on which shipment, used on
/// which visit (staff).
#[utoipa::path(get, path = "/api/v1/stock/units", tag = "spares", params(StockQuery),
    responses((status = 200, body = Vec<SpareUnit>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stock_units(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<StockQuery>,
) -> ApiResult<Json<Vec<SpareUnit>>> {
    Ok(Json(
        s.rma
            .units(&who, q.part_number.as_deref(), q.warehouse_id)
            .await?,
    ))
}
