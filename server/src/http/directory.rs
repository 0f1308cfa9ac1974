//! `/api/v1` directory resources: organisations and their dossier, the
//! call-center lookup, sites, projects and participants, contracts, devices.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::AppState;
use crate::auth::Action;
use crate::directory::*;
use crate::error::Error;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrgScope {
    /// Only this organisation's records.
    pub organization_id: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// Customer ID, phone number, name, or device serial.
    pub q: String,
}

/// Narrow an optional organisation filter to what the caller may see.
fn scope(who: &crate::auth::Principal, asked: Option<i64>) -> Result<Option<i64>, Error> {
    match (who.organization_scope(), asked) {
        (Some(own), Some(a)) if a != own => Err(Error::not_found(format!("organization {a}"))),
        (Some(own), _) => Ok(Some(own)),
        (None, a) => Ok(a),
    }
}

/// Create a customer organisation.
#[utoipa::path(post, path = "/api/v1/organizations", tag = "directory", request_body = NewOrganization,
    responses((status = 201, body = Organization), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_organization(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewOrganization>,
) -> ApiResult<(StatusCode, Json<Organization>)> {
    who.require(Action::WriteDirectory)?;
    let o = s
        .store
        .insert_organization(&req.validate()?, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// List organisations (a customer sees its own).
#[utoipa::path(get, path = "/api/v1/organizations", tag = "directory",
    responses((status = 200, body = Vec<Organization>)), security(("bearer" = [])))]
pub async fn list_organizations(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<Organization>>> {
    who.require(Action::ReadDirectory)?;
    Ok(Json(
        s.store
            .organizations(who.organization_scope(), 10_000)
            .await?,
    ))
}

/// One organisation's dossier: everything SPEC.md 6 puts on the call-center screen.
#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "directory",
    params(("id" = i64, Path, description = "Organization id")),
    responses((status = 200, body = Dossier), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_organization(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Dossier>> {
    Ok(Json(dossier(&s.cases, &who, id).await?))
}

/// Call-center lookup by customer ID, phone, name or device serial.
#[utoipa::path(get, path = "/api/v1/lookup", tag = "directory", params(LookupQuery),
    responses((status = 200, body = Vec<LookupMatch>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lookup(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> ApiResult<Json<Vec<LookupMatch>>> {
    Ok(Json(crate::directory::lookup(&s.store, &who, &q.q).await?))
}

/// Create a site.
#[utoipa::path(post, path = "/api/v1/sites", tag = "directory", request_body = NewSite,
    responses((status = 201, body = Site), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_site(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewSite>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    who.require(Action::WriteDirectory)?;
    let site = s.store.insert_site(&req.validate()?, s.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

/// List sites.
#[utoipa::path(get, path = "/api/v1/sites", tag = "directory", params(OrgScope),
    responses((status = 200, body = Vec<Site>)), security(("bearer" = [])))]
pub async fn list_sites(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<OrgScope>,
) -> ApiResult<Json<Vec<Site>>> {
    who.require(Action::ReadDirectory)?;
    Ok(Json(s.store.sites(scope(&who, q.organization_id)?).await?))
}

/// Create a project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "directory", request_body = NewProject,
    responses((status = 201, body = Project), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_project(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    who.require(Action::WriteDirectory)?;
    let p = s
        .store
        .insert_project(&req.validate()?, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// List projects with their participants.
#[utoipa::path(get, path = "/api/v1/projects", tag = "directory", params(OrgScope),
    responses((status = 200, body = Vec<Project>)), security(("bearer" = [])))]
pub async fn list_projects(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<OrgScope>,
) -> ApiResult<Json<Vec<Project>>> {
    who.require(Action::ReadDirectory)?;
    Ok(Json(
        s.store
            .projects(scope(&who, q.organization_id)?, None)
            .await?,
    ))
}

/// Add a participant (customer or vendor side) to a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/participants", tag = "directory", request_body = NewParticipant,
    params(("id" = i64, Path, description = "Project id")),
    responses((status = 201, body = Participant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_participant(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewParticipant>,
) -> ApiResult<(StatusCode, Json<Participant>)> {
    who.require(Action::WriteDirectory)?;
    let valid = req.validate()?;
    if s.store.projects(None, Some(id)).await?.is_empty() {
        return Err(Error::not_found(format!("project {id}")).into());
    }
    let p = s
        .store
        .insert_participant(id, &valid, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Create a contract, with the devices it covers.
#[utoipa::path(post, path = "/api/v1/contracts", tag = "directory", request_body = NewContract,
    responses((status = 201, body = Contract), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_contract(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewContract>,
) -> ApiResult<(StatusCode, Json<Contract>)> {
    who.require(Action::WriteDirectory)?;
    let c = s
        .store
        .insert_contract(&req.validate()?, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// List contracts.
#[utoipa::path(get, path = "/api/v1/contracts", tag = "directory", params(OrgScope),
    responses((status = 200, body = Vec<Contract>)), security(("bearer" = [])))]
pub async fn list_contracts(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<OrgScope>,
) -> ApiResult<Json<Vec<Contract>>> {
    who.require(Action::ReadDirectory)?;
    Ok(Json(
        s.store
            .contracts(scope(&who, q.organization_id)?, None)
            .await?,
    ))
}

/// Register a device.
#[utoipa::path(post, path = "/api/v1/devices", tag = "directory", request_body = NewDevice,
    responses((status = 201, body = Device), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_device(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewDevice>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    who.require(Action::WriteDirectory)?;
    let d = s
        .store
        .insert_device(&req.validate()?, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// List devices.
#[utoipa::path(get, path = "/api/v1/devices", tag = "directory", params(OrgScope),
    responses((status = 200, body = Vec<Device>)), security(("bearer" = [])))]
pub async fn list_devices(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<OrgScope>,
) -> ApiResult<Json<Vec<Device>>> {
    who.require(Action::ReadDirectory)?;
    Ok(Json(
        s.store
            .devices(scope(&who, q.organization_id)?, 10_000)
            .await?,
    ))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "directory",
    params(("id" = i64, Path, description = "Device id")),
    responses((status = 200, body = Device), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_device(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Device>> {
    who.require(Action::ReadDirectory)?;
    let d = s
        .store
        .device(id)
        .await?
        .filter(|d| who.sees_organization(Some(d.organization_id)))
        .ok_or_else(|| Error::not_found(format!("device {id}")))?;
    Ok(Json(d))
}

/// Change an organisation (the customer ID stays).
#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "directory", request_body = OrganizationPatch,
    params(("id" = i64, Path, description = "Organization id")),
    responses((status = 200, body = Organization), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_organization(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<OrganizationPatch>,
) -> ApiResult<Json<Organization>> {
    who.require(Action::WriteDirectory)?;
    let current = s
        .store
        .organization(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("organization {id}")))?;
    Ok(Json(
        s.store
            .update_organization(id, &req.apply(&current)?)
            .await?,
    ))
}

/// One contract.
#[utoipa::path(get, path = "/api/v1/contracts/{id}", tag = "directory",
    params(("id" = i64, Path, description = "Contract id")),
    responses((status = 200, body = Contract), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_contract(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Contract>> {
    who.require(Action::ReadDirectory)?;
    let c = s
        .store
        .contracts(None, Some(id))
        .await?
        .pop()
        .filter(|c| who.sees_organization(Some(c.organization_id)))
        .ok_or_else(|| Error::not_found(format!("contract {id}")))?;
    Ok(Json(c))
}

/// Change a contract's terms or covered devices (the number stays).
#[utoipa::path(patch, path = "/api/v1/contracts/{id}", tag = "directory", request_body = ContractPatch,
    params(("id" = i64, Path, description = "Contract id")),
    responses((status = 200, body = Contract), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_contract(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ContractPatch>,
) -> ApiResult<Json<Contract>> {
    who.require(Action::WriteDirectory)?;
    let current = s
        .store
        .contracts(None, Some(id))
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(format!("contract {id}")))?;
    Ok(Json(
        s.store.update_contract(id, &req.apply(&current)?).await?,
    ))
}

/// Change a device (vendor and serial stay).
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "directory", request_body = DevicePatch,
    params(("id" = i64, Path, description = "Device id")),
    responses((status = 200, body = Device), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_device(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DevicePatch>,
) -> ApiResult<Json<Device>> {
    who.require(Action::WriteDirectory)?;
    let current = s
        .store
        .device(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("device {id}")))?;
    Ok(Json(
        s.store.update_device(id, &req.apply(&current)?).await?,
    ))
}

/// An incoming call, as a phone system or IVR reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingCall {
    /// The caller's number as the phone system gives it, e.g.
    /// "+49 40 5550 1042" (digits, spaces and `+-()./`).
    pub caller: String,
}

/// The recorded call and who is calling.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CallAnswer {
    pub call_id: i64,
    pub caller: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// Every organisation the number matches (customer phone or a
    /// participant's).
    pub matches: Vec<LookupMatch>,
    /// The dossier, when exactly one organisation matches.
    pub dossier: Option<Dossier>,
}

fn caller_number(text: &str) -> Result<String, Error> {
    let t = text.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if t.chars().count() > 40 {
        return Err(Error::invalid("caller", "is longer than 40 characters"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_digit() || " +-()./".contains(*c)))
    {
        return Err(Error::invalid(
            "caller",
            format!("{c:?} is not part of a phone number (digits, spaces and +-()./)"),
        ));
    }
    if digits < 3 {
        return Err(Error::invalid("caller", "needs at least 3 digits"));
    }
    Ok(t.to_string())
}

/// An incoming call (for a phone system or IVR): recorded, and answered with
/// the caller's matches and, when exactly one organisation matches, its
/// dossier, for the dispatcher's caller pop-up.
#[utoipa::path(post, path = "/api/v1/calls", tag = "directory", request_body = IncomingCall,
    responses((status = 201, body = CallAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn incoming_call(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<IncomingCall>,
) -> ApiResult<(StatusCode, Json<CallAnswer>)> {
    who.require(Action::ReadDirectory)?;
    if !who.role.is_staff() {
        return Err(
            Error::forbidden("incoming calls are for call-center staff and phone systems").into(),
        );
    }
    let caller = caller_number(&req.caller)?;
    let matches = s.store.lookup(&caller, 50).await?;
    let one = match matches.as_slice() {
        [m] => Some(m.organization.id),
        _ => None,
    };
    let received_at = s.clock.now();
    let call_id = s
        .store
        .insert_call(&caller, received_at, who.user_id, one)
        .await?;
    let dossier = match one {
        Some(id) => Some(dossier(&s.cases, &who, id).await?),
        None => None,
    };
    tracing::info!(call = call_id, caller = %caller, matches = matches.len(), "incoming call");
    Ok((
        StatusCode::CREATED,
        Json(CallAnswer {
            call_id,
            caller,
            received_at,
            matches,
            dossier,
        }),
    ))
}
