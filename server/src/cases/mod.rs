//! Cases: opening, the status machine, assignment and take-over, notes and
//! other activities, and search. Every change is validated here, recorded as
//! history entries and written atomically by the store, so two people
//! changing one case at once never lose an update or fork the history.

pub mod approvals;
pub mod experts;
pub mod feedback;
pub mod history;
pub mod model;
pub mod shipments;
pub mod status;
pub mod visits;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub use model::{
    ActivityBody, CallDirection, Caller, CaseType, Channel, FaultChange, FaultEvidence, Priority,
    SlaEventKind, UserRef, Visibility,
};
pub use status::Status;

use crate::auth::{Action, Principal, Role};
use crate::clock::{from_micros, Clock};
use crate::error::{Error, Result};
use crate::store::cases::{CaseInsert, CaseState, PendingEntry};
use crate::store::{CaseFilter, CaseRow, Cursor, Store};
use crate::validate::{opt_email, opt_phone, opt_text, text};

/// The domain service for cases.
#[derive(Clone)]
pub struct Cases {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Told the id of every case that changed (the SLA engine listens).
    changes: Option<tokio::sync::mpsc::UnboundedSender<i64>>,
}

// ------------------------------------------------------------------ views

/// A case as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CaseView {
    /// Human-friendly, unique, never reused, e.g. C-2026-000042.
    pub number: String,
    pub summary: String,
    pub details: String,
    pub priority: Priority,
    pub status: Status,
    pub case_type: CaseType,
    pub vendor: Option<String>,
    pub channel: Channel,
    pub caller: Caller,
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
    pub contract_id: Option<i64>,
    pub contract_number: Option<String>,
    pub device_id: Option<i64>,
    pub device_name: Option<String>,
    pub assignee: Option<UserRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Number of history entries.
    pub history_length: i64,
}

/// One history entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ActivityView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub author: Option<UserRef>,
    pub author_name: String,
    pub visibility: Visibility,
    #[serde(flatten)]
    pub body: ActivityBody,
    /// SHA-256 chaining this entry to the previous one.
    pub hash: String,
    pub prev_hash: String,
}

/// One page of search results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("{what} holds unknown value {s:?}")))
}

impl CaseRow {
    fn to_case(&self) -> Result<model::Case> {
        Ok(model::Case {
            id: self.id,
            number: self.number.clone(),
            organization_id: self.organization_id,
            contract_id: self.contract_id,
            device_id: self.device_id,
            caller: self.caller(),
            summary: self.summary.clone(),
            details: self.details.clone(),
            priority: Priority::from_level(self.priority)?,
            status: parse("cases.status", &self.status)?,
            case_type: parse("cases.case_type", &self.case_type)?,
            vendor: self.vendor.clone(),
            channel: parse("cases.channel", &self.channel)?,
            assignee_id: self.assignee_id,
            created_by: self.created_by,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
            responded_at: self.responded_at.map(from_micros),
            resolved_at: self.resolved_at.map(from_micros),
            closed_at: self.closed_at.map(from_micros),
            last_seq: self.last_seq,
            head_hash: self.head_hash.clone(),
        })
    }

    fn caller(&self) -> Caller {
        Caller {
            name: self.caller_name.clone(),
            company: self.caller_company.clone(),
            phone: self.caller_phone.clone(),
            email: self.caller_email.clone(),
            contract: self.caller_contract.clone(),
        }
    }

    pub fn to_view(&self) -> Result<CaseView> {
        let c = self.to_case()?;
        Ok(CaseView {
            number: c.number,
            summary: c.summary,
            details: c.details,
            priority: c.priority,
            status: c.status,
            case_type: c.case_type,
            vendor: c.vendor,
            channel: c.channel,
            caller: c.caller,
            organization_id: c.organization_id,
            organization_name: self.organization_name.clone(),
            contract_id: c.contract_id,
            contract_number: self.contract_number.clone(),
            device_id: c.device_id,
            device_name: self.device_name.clone(),
            assignee: c.assignee_id.map(|id| UserRef {
                id,
                name: self.assignee_name.clone().unwrap_or_default(),
            }),
            created_at: c.created_at,
            updated_at: c.updated_at,
            responded_at: c.responded_at,
            resolved_at: c.resolved_at,
            closed_at: c.closed_at,
            history_length: c.last_seq,
        })
    }
}

// ------------------------------------------------------------------ requests

/// Open a case.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub caller: Caller,
    /// One line, at most 200 characters.
    pub summary: String,
    /// Full description, at most 20000 characters.
    #[serde(default)]
    pub details: String,
    pub priority: Priority,
    #[serde(default)]
    pub case_type: Option<CaseType>,
    /// Manufacturer; defaults to the device's vendor.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Defaults to phone for staff, web for customers.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Required for staff unless a device or a known contract implies it.
    #[serde(default)]
    pub organization_id: Option<i64>,
    #[serde(default)]
    pub device_id: Option<i64>,
    /// Contract number; defaults to the caller's quoted contract, then to an
    /// active contract covering the device.
    #[serde(default)]
    pub contract: Option<String>,
    /// Assign an engineer right away (dispatchers, managers, admins).
    #[serde(default)]
    pub assignee_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
    /// Required when resolving (the resolution) and reopening (why).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityChange {
    pub priority: Priority,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// An active engineer or expert.
    pub assignee_id: i64,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    #[serde(default)]
    pub case_type: Option<CaseType>,
    #[serde(default)]
    pub vendor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    pub text: String,
    /// Default: internal for staff; customers' notes are always public.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Seq of an earlier entry this note corrects.
    #[serde(default)]
    pub corrects: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCall {
    pub direction: CallDirection,
    /// Who was on the other end.
    pub party: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub duration_secs: Option<i64>,
    pub summary: String,
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFieldVisit {
    pub engineer: String,
    pub arrived_at: DateTime<Utc>,
    #[serde(default)]
    pub left_at: Option<DateTime<Utc>>,
    pub work_done: String,
    #[serde(default)]
    pub customer_signoff: Option<String>,
}

/// Search parameters (query string).
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// Comma-separated statuses, e.g. `new,assigned`.
    pub status: Option<String>,
    /// Comma-separated priorities, e.g. `P1,P2`.
    pub priority: Option<String>,
    /// Comma-separated case types.
    pub case_type: Option<String>,
    /// Comma-separated channels.
    pub channel: Option<String>,
    /// Manufacturer (case-insensitive).
    pub vendor: Option<String>,
    pub organization_id: Option<i64>,
    pub device_id: Option<i64>,
    pub contract_id: Option<i64>,
    pub assignee_id: Option<i64>,
    /// Only cases with nobody assigned.
    pub unassigned: Option<bool>,
    /// Only cases not resolved or closed.
    pub open: Option<bool>,
    /// Text in number, summary, details, caller, company or vendor.
    pub q: Option<String>,
    /// RFC 3339; created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// RFC 3339; created before.
    pub created_to: Option<DateTime<Utc>>,
    /// RFC 3339; closed at or after.
    pub closed_from: Option<DateTime<Utc>>,
    /// RFC 3339; closed before.
    pub closed_to: Option<DateTime<Utc>>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1..=200, default 50.
    pub limit: Option<i64>,
}

fn list<T: std::str::FromStr<Err = Error>>(s: &Option<String>) -> Result<Vec<T>> {
    match s {
        None => Ok(Vec::new()),
        Some(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect(),
    }
}

// ------------------------------------------------------------------ service

/// The history entry the caller wants to add, before it is chained.
fn entry(
    who: &Principal,
    at: DateTime<Utc>,
    visibility: Visibility,
    body: &ActivityBody,
) -> Result<PendingEntry> {
    entry_by(Some(who.user_id), &who.display_name, at, visibility, body)
}

/// A history entry by any author; `author_id` is `None` for the server itself.
fn entry_by(
    author_id: Option<i64>,
    author_name: &str,
    at: DateTime<Utc>,
    visibility: Visibility,
    body: &ActivityBody,
) -> Result<PendingEntry> {
    Ok(PendingEntry {
        kind: body.kind(),
        visibility: visibility.as_str(),
        author_id,
        author_name: author_name.to_string(),
        at,
        body: serde_json::to_string(body).map_err(|e| Error::Corrupt(e.to_string()))?,
        notify: crate::notify::wants(body, visibility),
    })
}

fn state_of(c: &model::Case) -> CaseState {
    CaseState {
        status: c.status.as_str().into(),
        priority: c.priority.level(),
        case_type: c.case_type.as_str().into(),
        vendor: c.vendor.clone(),
        assignee_id: c.assignee_id,
        updated_at: c.updated_at,
        responded_at: c.responded_at,
        resolved_at: c.resolved_at,
        closed_at: c.closed_at,
    }
}

/// What a customer may do to the status of their own case.
fn customer_may_set(from: Status, to: Status) -> bool {
    matches!(
        (from, to),
        (Status::Resolved, Status::Closed) | (Status::Resolved | Status::Closed, Status::Reopened)
    )
}

impl Cases {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Cases {
        Cases {
            store,
            clock,
            changes: None,
        }
    }

    /// Report every changed case's id on `tx`.
    pub fn with_change_feed(mut self, tx: tokio::sync::mpsc::UnboundedSender<i64>) -> Cases {
        self.changes = Some(tx);
        self
    }

    fn changed(&self, case_id: i64) {
        if let Some(tx) = &self.changes {
            let _ = tx.send(case_id);
        }
    }

    /// Append an entry written by the server itself (no author).
    pub async fn record_system(
        &self,
        number: &str,
        author: &str,
        visibility: Visibility,
        body: &ActivityBody,
    ) -> Result<()> {
        self.record_as(number, None, author, visibility, body).await
    }

    /// Append an entry on the server's authority in someone's name (a
    /// person the server identified, e.g. the sender of an e-mail).
    pub async fn record_as(
        &self,
        number: &str,
        author_id: Option<i64>,
        author: &str,
        visibility: Visibility,
        body: &ActivityBody,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut id = 0;
        self.store
            .change_case(number, |row| {
                let mut case = row.to_case()?;
                id = case.id;
                case.updated_at = now;
                let entry = entry_by(author_id, author, now, visibility, body)?;
                Ok((state_of(&case), vec![entry]))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("case {number}")))?;
        self.changed(id);
        Ok(())
    }

    /// Reassign a case on the server's own authority (the SLA engine), with
    /// the entries that say why, in one transaction. Nothing happens if the
    /// case is no longer open or already has that assignee.
    pub async fn reassign_system(
        &self,
        number: &str,
        author: &str,
        to: UserRef,
        reason: &str,
        event: &ActivityBody,
    ) -> Result<bool> {
        let now = self.clock.now();
        let from = match self.store.case_by_number(number).await? {
            Some(r) => self.user_ref(r.assignee_id).await?,
            None => return Err(Error::not_found(format!("case {number}"))),
        };
        let mut id = 0;
        let mut done = false;
        self.store
            .change_case(number, |row| {
                let mut case = row.to_case()?;
                id = case.id;
                if !case.status.is_open() || case.assignee_id == Some(to.id) {
                    return Ok((state_of(&case), Vec::new()));
                }
                let from = from.clone().filter(|f| Some(f.id) == case.assignee_id);
                case.assignee_id = Some(to.id);
                case.updated_at = now;
                let system =
                    |body: &ActivityBody| entry_by(None, author, now, Visibility::Internal, body);
                let assigned = ActivityBody::Assigned {
                    from,
                    to: to.clone(),
                    reason: Some(reason.to_string()),
                };
                let mut entries = vec![system(&assigned)?, system(event)?];
                if matches!(case.status, Status::New | Status::Reopened) {
                    let prev = case.status;
                    case.status = prev.transition(Status::Assigned, true)?;
                    entries.push(system(&ActivityBody::StatusChanged {
                        from: prev,
                        to: case.status,
                        reason: None,
                    })?);
                }
                done = true;
                Ok((state_of(&case), entries))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("case {number}")))?;
        if done {
            self.changed(id);
        }
        Ok(done)
    }

    /// Open a case on the server's own authority (an agent's fault), with
    /// its first entries, in one transaction.
    pub async fn open_system(
        &self,
        author: &str,
        insert: &CaseInsert,
        bodies: &[(Visibility, ActivityBody)],
    ) -> Result<(i64, String)> {
        self.open_as(None, author, insert, bodies).await
    }

    /// Open a case on the server's authority in someone's name (the sender
    /// of an e-mail), with its first entries, in one transaction.
    pub async fn open_as(
        &self,
        author_id: Option<i64>,
        author: &str,
        insert: &CaseInsert,
        bodies: &[(Visibility, ActivityBody)],
    ) -> Result<(i64, String)> {
        let entries = bodies
            .iter()
            .map(|(v, b)| entry_by(author_id, author, insert.created_at, *v, b))
            .collect::<Result<Vec<_>>>()?;
        let (id, number) = self.store.insert_case(insert, &entries).await?;
        self.changed(id);
        Ok((id, number))
    }

    /// Resolve a case on the server's own authority; false if it is not open.
    pub async fn resolve_system(&self, number: &str, author: &str, reason: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut id = 0;
        let mut done = false;
        self.store
            .change_case(number, |row| {
                let mut case = row.to_case()?;
                id = case.id;
                if !case.status.is_open() {
                    return Ok((state_of(&case), Vec::new()));
                }
                let from = case.status;
                case.status = from.transition(Status::Resolved, false)?;
                case.resolved_at = Some(now);
                case.updated_at = now;
                let body = ActivityBody::StatusChanged {
                    from,
                    to: Status::Resolved,
                    reason: Some(reason.to_string()),
                };
                done = true;
                Ok((
                    state_of(&case),
                    vec![entry_by(None, author, now, Visibility::Public, &body)?],
                ))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("case {number}")))?;
        if done {
            self.changed(id);
        }
        Ok(done)
    }

    /// The next engineer in round-robin order after `current` (by user id,
    /// active engineers only, never `current` itself).
    pub async fn next_engineer(&self, current: Option<i64>) -> Result<Option<UserRef>> {
        let mut engineers: Vec<_> = self
            .store
            .users(Some(Role::Engineer.as_str()), None)
            .await?
            .into_iter()
            .filter(|u| u.active && Some(u.id) != current)
            .collect();
        engineers.sort_by_key(|u| u.id);
        let pick = match current {
            Some(c) => engineers.iter().find(|u| u.id > c).or(engineers.first()),
            None => engineers.first(),
        };
        Ok(pick.map(|u| UserRef {
            id: u.id,
            name: u.display_name.clone(),
        }))
    }

    /// Load a case the caller may see; other organisations' cases are "not found".
    pub async fn get(&self, who: &Principal, number: &str) -> Result<CaseRow> {
        who.require(Action::ReadCase)?;
        let row = self
            .store
            .case_by_number(number)
            .await?
            .filter(|r| who.sees_organization(r.organization_id))
            .ok_or_else(|| Error::not_found(format!("case {number}")))?;
        Ok(row)
    }

    pub async fn open(&self, who: &Principal, req: &NewCase) -> Result<CaseView> {
        who.require(Action::CreateCase)?;
        let now = self.clock.now();
        let caller = Caller {
            name: text("caller.name", &req.caller.name, 200)?,
            company: opt_text("caller.company", &req.caller.company, 200)?,
            phone: opt_phone("caller.phone", &req.caller.phone)?,
            email: opt_email("caller.email", &req.caller.email)?,
            contract: opt_text("caller.contract", &req.caller.contract, 64)?,
        };
        let summary = text("summary", &req.summary, 200)?;
        let details = opt_text("details", &Some(req.details.clone()), 20_000)?.unwrap_or_default();
        let mut vendor = opt_text("vendor", &req.vendor, 100)?;
        let customer = who.role == Role::Customer;
        if customer && req.assignee_id.is_some() {
            return Err(Error::forbidden("customers cannot assign engineers"));
        }
        let channel = match (customer, req.channel) {
            (true, Some(c)) if c != Channel::Web => {
                return Err(Error::invalid(
                    "channel",
                    "customers open cases through the web channel",
                ))
            }
            (true, _) => Channel::Web,
            (false, Some(Channel::Agent)) => {
                return Err(Error::invalid(
                    "channel",
                    "the agent channel is for enrolled agents",
                ))
            }
            (false, c) => c.unwrap_or(Channel::Phone),
        };
        let mut org = if customer {
            who.organization_scope()
        } else {
            req.organization_id
        };
        if customer && req.organization_id.is_some_and(|o| Some(o) != org) {
            return Err(Error::invalid(
                "organization_id",
                "customers open cases for their own organization only",
            ));
        }
        if let Some(o) = org.filter(|_| req.device_id.is_none()) {
            // (with a device, the device's organisation is checked instead)
            if self.store.organization(o).await?.is_none() {
                return Err(Error::invalid(
                    "organization_id",
                    format!("organization {o} does not exist"),
                ));
            }
        }
        let mut device_row = None;
        if let Some(d) = req.device_id {
            let dev = self
                .store
                .device(d)
                .await?
                .filter(|dv| !customer || Some(dv.organization_id) == org)
                .ok_or_else(|| Error::invalid("device_id", format!("device {d} does not exist")))?;
            match org {
                Some(o) if o != dev.organization_id => {
                    return Err(Error::invalid(
                        "device_id",
                        format!("device {d} belongs to another organization"),
                    ))
                }
                None => org = Some(dev.organization_id),
                _ => {}
            }
            if vendor.is_none() {
                vendor = Some(dev.vendor.clone());
            }
            device_row = Some(dev);
        }
        // The contract: as named, else as the caller quoted it, else one that
        // covers the device today.
        let mut contract_id = None;
        let named = opt_text("contract", &req.contract, 64)?;
        for (field, number) in [
            ("contract", named.as_ref()),
            ("caller.contract", caller.contract.as_ref()),
        ] {
            let Some(number) = number else { continue };
            match self.store.contract_by_number(number).await? {
                Some(k)
                    if org.is_none_or(|o| o == k.organization_id)
                        && (!customer || org == Some(k.organization_id)) =>
                {
                    org = Some(k.organization_id);
                    contract_id = Some(k.id);
                    break;
                }
                // Customers are not told that another customer's contract exists.
                Some(_) if field == "contract" && !customer => {
                    return Err(Error::invalid(
                        field,
                        format!("contract {number} belongs to another organization"),
                    ))
                }
                Some(_) if field == "contract" => {
                    return Err(Error::invalid(
                        field,
                        format!("contract {number} does not exist"),
                    ))
                }
                None if field == "contract" => {
                    return Err(Error::invalid(
                        field,
                        format!("contract {number} does not exist"),
                    ))
                }
                _ => {}
            }
        }
        if contract_id.is_none() {
            if let Some(dev) = &device_row {
                contract_id = self
                    .store
                    .active_contract_for_device(dev.id, now.date_naive())
                    .await?;
            }
        }
        if org.is_none() && !customer {
            return Err(Error::invalid(
                "organization_id",
                "name the customer: organization_id, a device or a contract",
            ));
        }
        let assignee = match req.assignee_id {
            Some(a) => {
                who.require(Action::Assign)?;
                Some(self.assignable(a, "assignee_id").await?)
            }
            None => None,
        };
        let case_type = req.case_type.unwrap_or(CaseType::Other);
        let mut entries = vec![entry(
            who,
            now,
            Visibility::Public,
            &ActivityBody::Opened {
                summary: summary.clone(),
                priority: req.priority,
                channel,
                case_type,
            },
        )?];
        if let Some(body) = self
            .entitlement(device_row.as_ref(), contract_id, now.date_naive())
            .await?
        {
            entries.push(entry(who, now, Visibility::Internal, &body)?);
        }
        let mut status = Status::New;
        if let Some(a) = &assignee {
            status = status.transition(Status::Assigned, true)?;
            entries.push(entry(
                who,
                now,
                Visibility::Public,
                &ActivityBody::Assigned {
                    from: None,
                    to: a.clone(),
                    reason: None,
                },
            )?);
            entries.push(entry(
                who,
                now,
                Visibility::Public,
                &ActivityBody::StatusChanged {
                    from: Status::New,
                    to: Status::Assigned,
                    reason: None,
                },
            )?);
        }
        let insert = CaseInsert {
            organization_id: org,
            contract_id,
            device_id: req.device_id,
            caller_name: caller.name,
            caller_company: caller.company,
            caller_phone: caller.phone,
            caller_email: caller.email,
            caller_contract: caller.contract,
            summary,
            details,
            priority: req.priority.level(),
            status: status.as_str().into(),
            case_type: case_type.as_str().into(),
            vendor,
            channel: channel.as_str().into(),
            assignee_id: assignee.as_ref().map(|a| a.id),
            created_by: Some(who.user_id),
            created_at: now,
            agent_id: None,
            fault_key: None,
        };
        let (id, number) = self.store.insert_case(&insert, &entries).await?;
        self.changed(id);
        self.get(who, &number).await?.to_view()
    }

    /// What covers the case's device today: its contract (active, listing
    /// the device) and its warranty. None without a device or a contract.
    async fn entitlement(
        &self,
        device: Option<&crate::directory::Device>,
        contract_id: Option<i64>,
        today: chrono::NaiveDate,
    ) -> Result<Option<ActivityBody>> {
        if device.is_none() && contract_id.is_none() {
            return Ok(None);
        }
        let contract = match contract_id {
            Some(id) => self
                .store
                .contracts(None, Some(id))
                .await?
                .into_iter()
                .next(),
            None => None,
        };
        let mut reasons = Vec::new();
        let mut by_contract = false;
        match (&contract, device) {
            (None, Some(d)) => reasons.push(format!("no active contract covers {}", d.name)),
            (None, None) => {}
            (Some(k), _) if today < k.starts_on => {
                reasons.push(format!("contract {} starts on {}", k.number, k.starts_on))
            }
            (Some(k), _) if today > k.ends_on => {
                reasons.push(format!("contract {} ended on {}", k.number, k.ends_on))
            }
            (Some(k), Some(d)) if !k.device_ids.contains(&d.id) => {
                reasons.push(format!("{} is not listed on contract {}", d.name, k.number))
            }
            (Some(_), _) => by_contract = true,
        }
        let in_warranty = device.map(|d| d.in_warranty(today));
        match device {
            Some(d) if !d.in_warranty(today) => reasons.push(match d.warranty_end {
                Some(end) => format!("the warranty of {} ended on {end}", d.name),
                None => format!("no warranty is recorded for {}", d.name),
            }),
            _ => {}
        }
        let covered = by_contract || in_warranty == Some(true);
        Ok(Some(ActivityBody::Entitlement {
            covered,
            contract: contract.map(|k| k.number),
            in_warranty,
            warranty_end: device.and_then(|d| d.warranty_end),
            reasons: if covered { Vec::new() } else { reasons },
        }))
    }

    /// An active engineer or expert who can take cases.
    async fn assignable(&self, id: i64, field: &str) -> Result<UserRef> {
        let u = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("user {id} does not exist")))?;
        if !u.active {
            return Err(Error::invalid(
                field,
                format!("user {} is deactivated", u.username),
            ));
        }
        if !matches!(u.role, Role::Engineer | Role::Expert) {
            return Err(Error::invalid(
                field,
                format!(
                    "user {} is a {}, not an engineer or expert",
                    u.username, u.role
                ),
            ));
        }
        Ok(UserRef {
            id: u.id,
            name: u.display_name,
        })
    }

    /// Apply `decide` to the current case and commit the entries it returns,
    /// atomically (see `Store::change_case`).
    async fn change<F>(&self, who: &Principal, number: &str, decide: F) -> Result<CaseView>
    where
        F: FnOnce(&mut model::Case, DateTime<Utc>) -> Result<Vec<(Visibility, ActivityBody)>>,
    {
        who.require(Action::ReadCase)?;
        let now = self.clock.now();
        let not_found = || Error::not_found(format!("case {number}"));
        let mut id = 0;
        let done = self
            .store
            .change_case(number, |row| {
                if !who.sees_organization(row.organization_id) {
                    return Err(not_found());
                }
                id = row.id;
                let mut case = row.to_case()?;
                let bodies = decide(&mut case, now)?;
                case.updated_at = now;
                let entries = bodies
                    .iter()
                    .map(|(v, b)| entry(who, now, *v, b))
                    .collect::<Result<Vec<_>>>()?;
                Ok((state_of(&case), entries))
            })
            .await?;
        done.ok_or_else(not_found)?;
        self.changed(id);
        self.get(who, number).await?.to_view()
    }

    pub async fn set_status(
        &self,
        who: &Principal,
        number: &str,
        req: &StatusChange,
    ) -> Result<CaseView> {
        who.require(Action::ChangeStatus)?;
        let reason = opt_text("reason", &req.reason, 4000)?;
        if matches!(req.status, Status::Resolved | Status::Reopened) && reason.is_none() {
            return Err(Error::invalid(
                "reason",
                format!("say why when setting {}", req.status),
            ));
        }
        let customer = who.role == Role::Customer;
        let has_report = match req.status {
            Status::Closed => {
                let row = self.get(who, number).await?;
                self.has_fault_report(row.id).await?
            }
            _ => true,
        };
        self.change(who, number, |c, now| {
            if customer && !customer_may_set(c.status, req.status) {
                return Err(Error::forbidden(
                    "customers may close a resolved case or reopen it, nothing else",
                ));
            }
            let from = c.status;
            c.status = from.transition(req.status, false)?;
            if c.status == Status::Closed && feedback::needs_report(c.priority, has_report) {
                return Err(Error::conflict(format!(
                    "case {} is {}: it needs a fault analysis report before it closes \
                     (POST /api/v1/cases/{}/fault-report)",
                    c.number, c.priority, c.number
                )));
            }
            match c.status {
                Status::Responded => {
                    c.responded_at.get_or_insert(now);
                }
                Status::Resolved => c.resolved_at = Some(now),
                Status::Closed => c.closed_at = Some(now),
                Status::Reopened => {
                    c.resolved_at = None;
                    c.closed_at = None;
                }
                _ => {}
            }
            Ok(vec![(
                Visibility::Public,
                ActivityBody::StatusChanged {
                    from,
                    to: c.status,
                    reason: reason.clone(),
                },
            )])
        })
        .await
    }

    pub async fn set_priority(
        &self,
        who: &Principal,
        number: &str,
        req: &PriorityChange,
    ) -> Result<CaseView> {
        who.require(Action::ChangePriority)?;
        let reason = text("reason", &req.reason, 4000)?;
        self.change(who, number, |c, _| {
            if !c.status.is_open() {
                return Err(Error::conflict(format!(
                    "case {} is {}; reopen it first",
                    c.number, c.status
                )));
            }
            if c.priority == req.priority {
                return Err(Error::conflict(format!(
                    "case {} already has priority {}",
                    c.number, c.priority
                )));
            }
            let from = c.priority;
            c.priority = req.priority;
            Ok(vec![(
                Visibility::Public,
                ActivityBody::PriorityChanged {
                    from,
                    to: req.priority,
                    reason: reason.clone(),
                },
            )])
        })
        .await
    }

    pub async fn assign(
        &self,
        who: &Principal,
        number: &str,
        req: &Assignment,
    ) -> Result<CaseView> {
        who.require(Action::Assign)?;
        let reason = opt_text("reason", &req.reason, 4000)?;
        let to = self.assignable(req.assignee_id, "assignee_id").await?;
        let current = self.get(who, number).await?;
        let from = self.user_ref(current.assignee_id).await?;
        self.change(who, number, |c, _| {
            if c.assignee_id == Some(to.id) {
                return Err(Error::conflict(format!(
                    "case {} is already assigned to {}",
                    c.number, to.name
                )));
            }
            self.hand_over(
                c,
                to.clone(),
                from.clone().filter(|f| Some(f.id) == c.assignee_id),
                |from, to| ActivityBody::Assigned {
                    from,
                    to,
                    reason: reason.clone(),
                },
            )
        })
        .await
    }

    /// Any engineer (or expert) takes the case over (SPEC.md 2.12).
    pub async fn take_over(&self, who: &Principal, number: &str) -> Result<CaseView> {
        who.require(Action::TakeOver)?;
        let me = UserRef {
            id: who.user_id,
            name: who.display_name.clone(),
        };
        let current = self.get(who, number).await?;
        let from = self.user_ref(current.assignee_id).await?;
        self.change(who, number, |c, _| {
            if c.assignee_id == Some(me.id) {
                return Err(Error::conflict(format!(
                    "you already have case {}",
                    c.number
                )));
            }
            self.hand_over(
                c,
                me.clone(),
                from.clone().filter(|f| Some(f.id) == c.assignee_id),
                |from, to| ActivityBody::TakenOver { from, to },
            )
        })
        .await
    }

    fn hand_over(
        &self,
        c: &mut model::Case,
        to: UserRef,
        from: Option<UserRef>,
        body: impl Fn(Option<UserRef>, UserRef) -> ActivityBody,
    ) -> Result<Vec<(Visibility, ActivityBody)>> {
        if !c.status.is_open() {
            return Err(Error::conflict(format!(
                "case {} is {}; reopen it first",
                c.number, c.status
            )));
        }
        // A stale `from` (assignee changed since we looked) falls back to the id.
        let from = from.or_else(|| {
            c.assignee_id.map(|id| UserRef {
                id,
                name: String::new(),
            })
        });
        c.assignee_id = Some(to.id);
        let mut out = vec![(Visibility::Public, body(from, to))];
        if matches!(c.status, Status::New | Status::Reopened) {
            let prev = c.status;
            c.status = prev.transition(Status::Assigned, true)?;
            out.push((
                Visibility::Public,
                ActivityBody::StatusChanged {
                    from: prev,
                    to: c.status,
                    reason: None,
                },
            ));
        }
        Ok(out)
    }

    async fn user_ref(&self, id: Option<i64>) -> Result<Option<UserRef>> {
        match id {
            None => Ok(None),
            Some(id) => Ok(self.store.user(id).await?.map(|u| UserRef {
                id: u.id,
                name: u.display_name,
            })),
        }
    }

    pub async fn classify(
        &self,
        who: &Principal,
        number: &str,
        req: &Classification,
    ) -> Result<CaseView> {
        who.require(Action::Classify)?;
        let vendor = opt_text("vendor", &req.vendor, 100)?;
        if req.case_type.is_none() && vendor.is_none() {
            return Err(Error::invalid(
                "case_type",
                "give case_type, vendor or both",
            ));
        }
        self.change(who, number, |c, _| {
            let previous_case_type = c.case_type;
            let previous_vendor = c.vendor.clone();
            if let Some(t) = req.case_type {
                c.case_type = t;
            }
            if vendor.is_some() {
                c.vendor = vendor.clone();
            }
            if c.case_type == previous_case_type && c.vendor == previous_vendor {
                return Err(Error::conflict("the case already has this classification"));
            }
            Ok(vec![(
                Visibility::Internal,
                ActivityBody::Classified {
                    case_type: c.case_type,
                    vendor: c.vendor.clone(),
                    previous_case_type: Some(previous_case_type),
                    previous_vendor,
                },
            )])
        })
        .await
    }

    pub async fn add_note(&self, who: &Principal, number: &str, req: &NewNote) -> Result<CaseView> {
        let text_ = text("text", &req.text, 20_000)?;
        let visibility = if who.role == Role::Customer {
            if req.visibility == Some(Visibility::Internal) {
                return Err(Error::forbidden("customers add public notes only"));
            }
            Visibility::Public
        } else {
            req.visibility.unwrap_or(Visibility::Internal)
        };
        who.require(match visibility {
            Visibility::Public => Action::AddPublicNote,
            Visibility::Internal => Action::AddInternalNote,
        })?;
        self.change(who, number, |c, _| {
            if let Some(s) = req.corrects {
                if s < 1 || s > c.last_seq {
                    return Err(Error::invalid(
                        "corrects",
                        format!("case {} has no entry #{s}", c.number),
                    ));
                }
            }
            Ok(vec![(
                visibility,
                ActivityBody::Note {
                    text: text_.clone(),
                    corrects: req.corrects,
                },
            )])
        })
        .await
    }

    pub async fn record_call(
        &self,
        who: &Principal,
        number: &str,
        req: &NewCall,
    ) -> Result<CaseView> {
        who.require(Action::RecordCall)?;
        let party = text("party", &req.party, 200)?;
        let phone = opt_phone("phone", &req.phone)?;
        let summary = text("summary", &req.summary, 4000)?;
        if req
            .duration_secs
            .is_some_and(|d| !(0..=86_400).contains(&d))
        {
            return Err(Error::invalid(
                "duration_secs",
                "must be between 0 and 86400",
            ));
        }
        let visibility = req.visibility.unwrap_or(Visibility::Internal);
        self.change(who, number, |_, _| {
            Ok(vec![(
                visibility,
                ActivityBody::Call {
                    direction: req.direction,
                    party: party.clone(),
                    phone: phone.clone(),
                    duration_secs: req.duration_secs,
                    summary: summary.clone(),
                },
            )])
        })
        .await
    }

    pub async fn record_field_visit(
        &self,
        who: &Principal,
        number: &str,
        req: &NewFieldVisit,
    ) -> Result<CaseView> {
        who.require(Action::RecordFieldVisit)?;
        let engineer = text("engineer", &req.engineer, 200)?;
        let work_done = text("work_done", &req.work_done, 20_000)?;
        let signoff = opt_text("customer_signoff", &req.customer_signoff, 200)?;
        if req.left_at.is_some_and(|l| l < req.arrived_at) {
            return Err(Error::invalid("left_at", "is before arrived_at"));
        }
        if req.arrived_at > self.clock.now() + chrono::Duration::minutes(5) {
            return Err(Error::invalid("arrived_at", "is in the future"));
        }
        self.change(who, number, |_, _| {
            Ok(vec![(
                Visibility::Public,
                ActivityBody::FieldVisit {
                    engineer: engineer.clone(),
                    arrived_at: req.arrived_at,
                    left_at: req.left_at,
                    work_done: work_done.clone(),
                    customer_signoff: signoff.clone(),
                },
            )])
        })
        .await
    }

    /// The history the caller may read: customers see public entries only.
    pub async fn history(&self, who: &Principal, number: &str) -> Result<Vec<ActivityView>> {
        let row = self.get(who, number).await?;
        let internal = who.may(Action::ReadInternal);
        let mut out = Vec::new();
        for e in self.store.entries(row.id).await? {
            let visibility: Visibility = parse("activities.visibility", &e.visibility)?;
            if visibility == Visibility::Internal && !internal {
                continue;
            }
            let body: ActivityBody = serde_json::from_str(&e.body)
                .map_err(|err| Error::Corrupt(format!("case {number} entry #{}: {err}", e.seq)))?;
            out.push(ActivityView {
                seq: e.seq,
                at: from_micros(e.at),
                author: e.author_id.map(|id| UserRef {
                    id,
                    name: e.author_name.clone(),
                }),
                author_name: e.author_name,
                visibility,
                body,
                hash: e.hash,
                prev_hash: e.prev_hash,
            });
        }
        Ok(out)
    }

    pub async fn search(&self, who: &Principal, q: &CaseQuery) -> Result<CasePage> {
        who.require(Action::ReadCase)?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 200"));
        }
        if let Some(org) = who.organization_scope() {
            if q.organization_id.is_some_and(|o| o != org) {
                return Err(Error::not_found(format!(
                    "organization {}",
                    q.organization_id.unwrap_or_default()
                )));
            }
        }
        let text_ = opt_text("q", &q.q, 200)?;
        let filter = CaseFilter {
            organization_id: who.organization_scope().or(q.organization_id),
            statuses: list::<Status>(&q.status)?
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            priorities: list::<Priority>(&q.priority)?
                .into_iter()
                .map(Priority::level)
                .collect(),
            case_types: list::<CaseType>(&q.case_type)?
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            channels: list::<Channel>(&q.channel)?
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            vendor: opt_text("vendor", &q.vendor, 100)?,
            device_id: q.device_id,
            contract_id: q.contract_id,
            assignee_id: q.assignee_id,
            unassigned: q.unassigned.unwrap_or(false),
            open_only: q.open.unwrap_or(false),
            text: text_,
            created_from: q.created_from.map(crate::clock::to_micros),
            created_to: q.created_to.map(crate::clock::to_micros),
            closed_from: q.closed_from.map(crate::clock::to_micros),
            closed_to: q.closed_to.map(crate::clock::to_micros),
            after: q.cursor.as_deref().map(Cursor::decode).transpose()?,
            limit: limit + 1,
        };
        let mut rows = self.store.search_cases(&filter).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| {
                Cursor {
                    created_at: r.created_at,
                    id: r.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(CasePage {
            items: rows.iter().map(CaseRow::to_view).collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Walk every case's history chain; returns every problem found.
    pub async fn verify_all(&self) -> Result<(u64, Vec<history::Finding>)> {
        let mut after = 0;
        let mut checked = 0;
        let mut findings = Vec::new();
        loop {
            let batch = self.store.cases_after(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            for row in &batch {
                checked += 1;
                let entries: Vec<history::StoredEntry> = self
                    .store
                    .entries(row.id)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                match row.to_case() {
                    Ok(case) => findings.extend(history::verify_chain(&case, &entries)),
                    Err(e) => findings.push(history::Finding {
                        case_number: row.number.clone(),
                        seq: None,
                        problem: e.to_string(),
                    }),
                }
            }
        }
        Ok((checked, findings))
    }
}
