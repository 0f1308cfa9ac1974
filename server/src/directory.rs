//! The customer directory: organisations, sites, projects and their
//! participants, contracts with the devices they cover, devices, users and
//! their SSH keys. Request types validate themselves into the records the
//! store writes; view types are what the API returns.

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::cases::model::text_enum;
use crate::error::{Error, Result};
use crate::sla::policy::Span;
use crate::validate::{date, ident, opt_date, opt_email, opt_phone, opt_text, text};

// ---------------------------------------------------------------- organisations

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Organization {
    pub id: i64,
    /// The short customer ID a caller keys in on the phone menu.
    pub customer_code: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    pub customer_code: String,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

impl NewOrganization {
    pub fn validate(&self) -> Result<NewOrganization> {
        Ok(NewOrganization {
            customer_code: ident("customer_code", &self.customer_code, 32)?,
            name: text("name", &self.name, 200)?,
            phone: opt_phone("phone", &self.phone)?,
            email: opt_email("email", &self.email)?,
            address: opt_text("address", &self.address, 500)?,
            notes: opt_text("notes", &self.notes, 4000)?,
        })
    }
}

// ---------------------------------------------------------------- sites

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Site {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    pub address: Option<String>,
    /// IANA time zone name, e.g. Europe/Berlin.
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub organization_id: i64,
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
}

impl NewSite {
    pub fn validate(&self) -> Result<NewSite> {
        let timezone = opt_text("timezone", &self.timezone, 64)?;
        if let Some(tz) = &timezone {
            let plausible = tz == "UTC"
                || (tz.contains('/')
                    && tz
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)));
            if !plausible {
                return Err(Error::invalid(
                    "timezone",
                    format!("{tz:?} is not an IANA time zone name like Europe/Berlin"),
                ));
            }
        }
        Ok(NewSite {
            organization_id: self.organization_id,
            name: text("name", &self.name, 200)?,
            address: opt_text("address", &self.address, 500)?,
            timezone,
        })
    }
}

// ---------------------------------------------------------------- projects

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Project {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub organization_id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl NewProject {
    pub fn validate(&self) -> Result<NewProject> {
        Ok(NewProject {
            organization_id: self.organization_id,
            name: text("name", &self.name, 200)?,
            description: opt_text("description", &self.description, 4000)?,
        })
    }
}

/// Which side of the project a participant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Customer,
    Vendor,
}

text_enum!(Side, "side", { Customer => "customer", Vendor => "vendor" });

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Participant {
    pub id: i64,
    pub project_id: i64,
    pub side: Side,
    pub name: String,
    /// Their role on the project, e.g. "network lead", "account manager".
    pub role: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    pub side: Side,
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl NewParticipant {
    pub fn validate(&self) -> Result<NewParticipant> {
        Ok(NewParticipant {
            side: self.side,
            name: text("name", &self.name, 200)?,
            role: text("role", &self.role, 100)?,
            phone: opt_phone("phone", &self.phone)?,
            email: opt_email("email", &self.email)?,
        })
    }
}

// ---------------------------------------------------------------- contracts

/// The support hours a contract buys (the business calendar presets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Coverage {
    #[serde(rename = "24x7")]
    H24x7,
    #[serde(rename = "7x8")]
    H7x8,
    #[serde(rename = "5x8")]
    H5x8,
}

text_enum!(Coverage, "coverage", { H24x7 => "24x7", H7x8 => "7x8", H5x8 => "5x8" });

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Contract {
    pub id: i64,
    pub organization_id: i64,
    pub number: String,
    pub starts_on: NaiveDate,
    /// Last day covered (inclusive).
    pub ends_on: NaiveDate,
    pub coverage: Coverage,
    /// SLA policy name; none means the default policy.
    pub sla_policy: Option<String>,
    /// Business calendar name; none means the coverage preset.
    pub calendar: Option<String>,
    pub description: Option<String>,
    /// Remote login to the contract's devices needs a customer user's
    /// approval per case (besides the case itself).
    pub remote_access_approval: bool,
    /// The on-site promise: an engineer on site within this much time on
    /// the case's calendar after the case opened (SPEC.md 4), e.g. `12h`.
    pub onsite_within: Option<Span>,
    /// The repair promise: repaired within this much time after the case
    /// opened, else backup equipment, e.g. `48h`.
    pub repair_within: Option<Span>,
    pub created_at: DateTime<Utc>,
    /// Devices the contract covers.
    pub device_ids: Vec<i64>,
}

impl Contract {
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.starts_on <= day && day <= self.ends_on
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContract {
    pub organization_id: i64,
    pub number: String,
    /// ISO date, e.g. 2026-01-01.
    pub starts_on: String,
    /// ISO date, inclusive.
    pub ends_on: String,
    pub coverage: Coverage,
    #[serde(default)]
    pub sla_policy: Option<String>,
    #[serde(default)]
    pub calendar: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Remote login needs a customer user's approval per case. Default false.
    #[serde(default)]
    pub remote_access_approval: bool,
    /// On-site promise, e.g. `12h` (none: no promise).
    #[serde(default)]
    pub onsite_within: Option<Span>,
    /// Repair promise, e.g. `48h` (none: no promise).
    #[serde(default)]
    pub repair_within: Option<Span>,
    #[serde(default)]
    pub device_ids: Vec<i64>,
}

/// A contract checked and ready to store.
#[derive(Debug, Clone)]
pub struct ContractRecord {
    pub organization_id: i64,
    pub number: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub coverage: Coverage,
    pub sla_policy: Option<String>,
    pub calendar: Option<String>,
    pub description: Option<String>,
    pub remote_access_approval: bool,
    pub onsite_within: Option<Span>,
    pub repair_within: Option<Span>,
    pub device_ids: Vec<i64>,
}

/// A promise span: at least a minute.
fn promise(field: &str, s: Option<Span>) -> Result<Option<Span>> {
    match s {
        Some(s) if s.0 < std::time::Duration::from_secs(60) => Err(Error::invalid(
            field,
            format!("{s} is shorter than a minute"),
        )),
        s => Ok(s),
    }
}

impl NewContract {
    pub fn validate(&self) -> Result<ContractRecord> {
        let starts_on = date("starts_on", &self.starts_on)?;
        let ends_on = date("ends_on", &self.ends_on)?;
        if ends_on < starts_on {
            return Err(Error::invalid("ends_on", "is before starts_on"));
        }
        if self.device_ids.len() > 10_000 {
            return Err(Error::invalid("device_ids", "more than 10000 devices"));
        }
        let mut device_ids = self.device_ids.clone();
        device_ids.sort_unstable();
        device_ids.dedup();
        Ok(ContractRecord {
            organization_id: self.organization_id,
            number: ident("number", &self.number, 64)?,
            starts_on,
            ends_on,
            coverage: self.coverage,
            sla_policy: opt_text("sla_policy", &self.sla_policy, 64)?,
            calendar: opt_text("calendar", &self.calendar, 64)?,
            description: opt_text("description", &self.description, 4000)?,
            remote_access_approval: self.remote_access_approval,
            onsite_within: promise("onsite_within", self.onsite_within)?,
            repair_within: promise("repair_within", self.repair_within)?,
            device_ids,
        })
    }
}

// ---------------------------------------------------------------- devices

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Switch,
    Router,
    Firewall,
    Server,
    Storage,
    AccessPoint,
    Ups,
    Other,
}

text_enum!(DeviceType, "device_type", {
    Switch => "switch", Router => "router", Firewall => "firewall", Server => "server",
    Storage => "storage", AccessPoint => "access_point", Ups => "ups", Other => "other",
});

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Device {
    pub id: i64,
    pub organization_id: i64,
    pub site_id: Option<i64>,
    /// Host name, as engineers and the remote-login relay address it.
    pub name: String,
    pub device_type: DeviceType,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub firmware_version: Option<String>,
    /// Last day of the vendor warranty (inclusive).
    pub warranty_end: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    /// The enrolled agent that looks after the device, if any.
    pub agent_id: Option<i64>,
    /// The device's target name in that agent's configuration.
    pub agent_target: Option<String>,
    /// Running software version, as the agent last reported it.
    pub software_version: Option<String>,
    /// SNMP sysObjectID, as the agent last reported it.
    pub sys_object_id: Option<String>,
    /// When the agent last reported on the device.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Set while the device's agent is lost (no heartbeats): its readings
    /// are not current.
    pub stale_since: Option<DateTime<Utc>>,
}

impl Device {
    pub fn in_warranty(&self, day: NaiveDate) -> bool {
        self.warranty_end.is_some_and(|end| day <= end)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub organization_id: i64,
    #[serde(default)]
    pub site_id: Option<i64>,
    pub name: String,
    pub device_type: DeviceType,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// ISO date.
    #[serde(default)]
    pub warranty_end: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub organization_id: i64,
    pub site_id: Option<i64>,
    pub name: String,
    pub device_type: DeviceType,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub firmware_version: Option<String>,
    pub warranty_end: Option<NaiveDate>,
}

impl NewDevice {
    pub fn validate(&self) -> Result<DeviceRecord> {
        Ok(DeviceRecord {
            organization_id: self.organization_id,
            site_id: self.site_id,
            name: ident("name", &self.name, 128)?,
            device_type: self.device_type,
            vendor: text("vendor", &self.vendor, 100)?,
            model: text("model", &self.model, 100)?,
            serial: ident("serial", &self.serial, 64)?,
            firmware_version: opt_text("firmware_version", &self.firmware_version, 100)?,
            warranty_end: opt_date("warranty_end", &self.warranty_end)?,
        })
    }
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Mobile number for SMS notifications.
    pub mobile: Option<String>,
    pub role: Role,
    /// 1 (response-center manager) .. 5 (integration general manager), managers only.
    pub manager_level: Option<i64>,
    /// The organisation of a customer user.
    pub organization_id: Option<i64>,
    /// Daily window ("22:00-07:00") without non-P1 notifications.
    pub quiet_hours: Option<String>,
    /// IANA time zone for quiet hours (default: the server's SLA time zone).
    pub timezone: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    pub role: Role,
    #[serde(default)]
    pub manager_level: Option<i64>,
    #[serde(default)]
    pub organization_id: Option<i64>,
    /// Daily window ("22:00-07:00") in which only P1 notifications are sent.
    #[serde(default)]
    pub quiet_hours: Option<String>,
    /// IANA time zone of the quiet hours, e.g. "Europe/Berlin".
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The five manager levels of SPEC.md 1, lowest first.
pub const MANAGER_LEVELS: [&str; 5] = [
    "response-center manager",
    "technical manager",
    "technical-center manager",
    "integration manager",
    "integration general manager",
];

impl NewUser {
    pub fn validate(&self) -> Result<NewUser> {
        match (self.role, self.manager_level) {
            (Role::Manager, Some(1..=5)) => {}
            (Role::Manager, Some(n)) => {
                return Err(Error::invalid(
                    "manager_level",
                    format!("{n} is not a level 1..5"),
                ))
            }
            (Role::Manager, None) => {
                return Err(Error::invalid(
                    "manager_level",
                    "a manager needs a level 1..5",
                ))
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "manager_level",
                    "only managers have a level",
                ))
            }
            (_, None) => {}
        }
        match (self.role, self.organization_id) {
            (Role::Customer, None) => {
                return Err(Error::invalid(
                    "organization_id",
                    "a customer user belongs to one organization",
                ))
            }
            (r, Some(_)) if r != Role::Customer => {
                return Err(Error::invalid(
                    "organization_id",
                    "only customer users belong to an organization",
                ))
            }
            _ => {}
        }
        Ok(NewUser {
            username: ident("username", &self.username, 64)?,
            display_name: text("display_name", &self.display_name, 200)?,
            email: opt_email("email", &self.email)?,
            mobile: opt_phone("mobile", &self.mobile)?,
            role: self.role,
            manager_level: self.manager_level,
            organization_id: self.organization_id,
            quiet_hours: opt_quiet_hours(&self.quiet_hours)?,
            timezone: opt_timezone(&self.timezone)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SshKey {
    pub id: i64,
    pub user_id: i64,
    /// The key in OpenSSH `authorized_keys` form.
    pub public_key: String,
    /// `SHA256:...` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSshKey {
    /// One line of an `authorized_keys` file, e.g. `ssh-ed25519 AAAA... alice@laptop`.
    pub public_key: String,
}

/// A parsed OpenSSH public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSshKey {
    /// `type base64` without the comment.
    pub key: String,
    pub fingerprint: String,
    pub comment: Option<String>,
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Parse one `authorized_keys`-style line: the type must be known, the blob
/// valid base64 whose embedded type matches.
pub fn parse_ssh_key(line: &str) -> Result<ParsedSshKey> {
    const F: &str = "public_key";
    let line = line.trim();
    if line.len() > 16_384 {
        return Err(Error::invalid(F, "is longer than 16384 bytes"));
    }
    let mut parts = line.split_whitespace();
    let kind = parts.next().ok_or_else(|| Error::invalid(F, "is empty"))?;
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(Error::invalid(
            F,
            format!(
                "key type {kind:?} is not one of {}",
                SSH_KEY_TYPES.join(", ")
            ),
        ));
    }
    let b64 = parts
        .next()
        .ok_or_else(|| Error::invalid(F, "has no key data after the type"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error::invalid(F, format!("key data is not base64: {e}")))?;
    let embedded = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n))
        .ok_or_else(|| Error::invalid(F, "key data is truncated"))?;
    if embedded != kind.as_bytes() {
        return Err(Error::invalid(F, "key data does not match the key type"));
    }
    let comment: Vec<&str> = parts.collect();
    let fp = base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob));
    Ok(ParsedSshKey {
        key: format!("{kind} {b64}"),
        fingerprint: format!("SHA256:{fp}"),
        comment: (!comment.is_empty()).then(|| comment.join(" ")),
    })
}

// ---------------------------------------------------------------- dossier

/// One organisation that matched a call-center search, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LookupMatch {
    pub organization: Organization,
    /// customer_code, phone, name or serial.
    pub matched_by: String,
    /// For a serial match: the device.
    pub device_id: Option<i64>,
}

/// A device with what the dispatcher needs about its coverage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DossierDevice {
    #[serde(flatten)]
    pub device: Device,
    pub site_name: Option<String>,
    pub in_warranty: bool,
    /// Active contracts covering the device today.
    pub covered_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DossierContract {
    #[serde(flatten)]
    pub contract: Contract,
    pub active: bool,
}

/// Everything SPEC.md 6 asks for on one screen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Dossier {
    pub organization: Organization,
    pub sites: Vec<Site>,
    pub projects: Vec<Project>,
    pub contracts: Vec<DossierContract>,
    pub devices: Vec<DossierDevice>,
    /// Engineers assigned to the organisation's open cases.
    pub engineers: Vec<User>,
    pub open_cases: Vec<crate::cases::CaseView>,
    pub recent_cases: Vec<crate::cases::CaseView>,
}

/// The call-center lookup: customers by customer ID, phone number, name or
/// device serial. For staff only.
pub async fn lookup(
    store: &crate::store::Store,
    who: &crate::auth::Principal,
    q: &str,
) -> Result<Vec<LookupMatch>> {
    who.require(crate::auth::Action::ReadDirectory)?;
    if !who.role.is_staff() {
        return Err(Error::forbidden("the lookup is for call-center staff"));
    }
    let text = crate::validate::text("q", q, 200)?;
    store.lookup(&text, 50).await
}

/// Assemble the call-center dossier of one organisation.
pub async fn dossier(
    cases: &crate::cases::Cases,
    who: &crate::auth::Principal,
    org_id: i64,
) -> Result<Dossier> {
    use crate::auth::Action;
    who.require(Action::ReadDirectory)?;
    let store = &cases.store;
    let organization = store
        .organization(org_id)
        .await?
        .filter(|o| who.sees_organization(Some(o.id)))
        .ok_or_else(|| Error::not_found(format!("organization {org_id}")))?;
    let today = cases.clock.now().date_naive();
    let sites = store.sites(Some(org_id)).await?;
    let projects = store.projects(Some(org_id), None).await?;
    let contracts = store.contracts(Some(org_id), None).await?;
    let devices = store
        .devices(Some(org_id), 10_000)
        .await?
        .into_iter()
        .map(|d| DossierDevice {
            site_name: d
                .site_id
                .and_then(|s| sites.iter().find(|x| x.id == s))
                .map(|s| s.name.clone()),
            in_warranty: d.in_warranty(today),
            covered_by: contracts
                .iter()
                .filter(|k| k.active_on(today) && k.device_ids.contains(&d.id))
                .map(|k| k.number.clone())
                .collect(),
            device: d,
        })
        .collect();
    let mut engineers = Vec::new();
    if who.role.is_staff() {
        for id in store.open_case_assignees(org_id).await? {
            if let Some(u) = store.user(id).await? {
                engineers.push(u);
            }
        }
    }
    let open = crate::cases::CaseQuery {
        organization_id: Some(org_id),
        open: Some(true),
        limit: Some(100),
        ..Default::default()
    };
    let recent = crate::cases::CaseQuery {
        organization_id: Some(org_id),
        status: Some("resolved,closed".into()),
        limit: Some(20),
        ..Default::default()
    };
    Ok(Dossier {
        organization,
        sites,
        projects,
        contracts: contracts
            .into_iter()
            .map(|c| DossierContract {
                active: c.active_on(today),
                contract: c,
            })
            .collect(),
        devices,
        engineers,
        open_cases: cases.search(who, &open).await?.items,
        recent_cases: cases.search(who, &recent).await?.items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys_are_parsed_and_fingerprinted() {
        // ssh-keygen -t ed25519 output; fingerprint from ssh-keygen -lf.
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
        let k = parse_ssh_key(line).map_err(|e| e.to_string());
        let k = k
            .as_ref()
            .map(|k| (k.comment.clone(), k.fingerprint.starts_with("SHA256:")));
        assert_eq!(k, Ok((Some("alice@laptop".to_string()), true)));
        assert!(parse_ssh_key("ssh-dss AAAA").is_err());
        assert!(parse_ssh_key("ssh-ed25519 !!!").is_err());
        assert!(parse_ssh_key(
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        )
        .is_err());
    }

    #[test]
    fn users_need_consistent_role_fields() {
        let base = NewUser {
            username: "m1".into(),
            display_name: "M".into(),
            email: None,
            mobile: None,
            role: Role::Manager,
            manager_level: Some(3),
            organization_id: None,
            quiet_hours: None,
            timezone: None,
        };
        assert!(base.validate().is_ok());
        assert!(NewUser {
            manager_level: Some(6),
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            manager_level: None,
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            role: Role::Engineer,
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            role: Role::Customer,
            manager_level: None,
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            quiet_hours: Some("22:00-7".into()),
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            timezone: Some("Mars/Olympus".into()),
            ..base.clone()
        }
        .validate()
        .is_err());
        assert!(NewUser {
            quiet_hours: Some("22:00-07:00".into()),
            timezone: Some("Europe/Berlin".into()),
            ..base.clone()
        }
        .validate()
        .is_ok());
    }
}

// ---------------------------------------------------------------- patches
//
// A patch names only what changes: an absent field is kept, `null` clears a
// field that may be empty. Each patch is merged into the matching `New*`
// request, so the same validation applies as on creation.

/// Deserialise a field that may be absent (keep), null (clear) or a value.
fn double<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn opt_quiet_hours(v: &Option<String>) -> Result<Option<String>> {
    v.as_deref()
        .map(|s| {
            s.parse::<crate::notify::quiet::QuietHours>()
                .map(|q| q.to_string())
                .map_err(|e| Error::invalid("quiet_hours", e))
        })
        .transpose()
}

fn opt_timezone(v: &Option<String>) -> Result<Option<String>> {
    v.as_deref()
        .map(|s| {
            s.parse::<chrono_tz::Tz>()
                .map(|_| s.to_string())
                .map_err(|_| Error::invalid("timezone", format!("{s:?} is not an IANA time zone")))
        })
        .transpose()
}

fn merge<T: Clone>(patch: &Option<Option<T>>, current: &Option<T>) -> Option<T> {
    match patch {
        Some(v) => v.clone(),
        None => current.clone(),
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub notes: Option<Option<String>>,
}

impl OrganizationPatch {
    pub fn apply(&self, o: &Organization) -> Result<NewOrganization> {
        NewOrganization {
            customer_code: o.customer_code.clone(),
            name: self.name.clone().unwrap_or_else(|| o.name.clone()),
            phone: merge(&self.phone, &o.phone),
            email: merge(&self.email, &o.email),
            address: merge(&self.address, &o.address),
            notes: merge(&self.notes, &o.notes),
        }
        .validate()
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub site_id: Option<Option<i64>>,
    #[serde(default)]
    pub device_type: Option<DeviceType>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub firmware_version: Option<Option<String>>,
    /// ISO date, or null.
    #[serde(default, deserialize_with = "double")]
    pub warranty_end: Option<Option<String>>,
}

impl DevicePatch {
    /// Vendor and serial identify the device and do not change.
    pub fn apply(&self, d: &Device) -> Result<DeviceRecord> {
        NewDevice {
            organization_id: d.organization_id,
            site_id: merge(&self.site_id, &d.site_id),
            name: self.name.clone().unwrap_or_else(|| d.name.clone()),
            device_type: self.device_type.unwrap_or(d.device_type),
            vendor: d.vendor.clone(),
            model: self.model.clone().unwrap_or_else(|| d.model.clone()),
            serial: d.serial.clone(),
            firmware_version: merge(&self.firmware_version, &d.firmware_version),
            warranty_end: merge(
                &self.warranty_end,
                &d.warranty_end.map(|w| w.format("%Y-%m-%d").to_string()),
            ),
        }
        .validate()
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractPatch {
    /// ISO date.
    #[serde(default)]
    pub starts_on: Option<String>,
    /// ISO date (e.g. a renewal).
    #[serde(default)]
    pub ends_on: Option<String>,
    #[serde(default)]
    pub coverage: Option<Coverage>,
    #[serde(default, deserialize_with = "double")]
    pub sla_policy: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub calendar: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub remote_access_approval: Option<bool>,
    /// null removes the promise.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub onsite_within: Option<Option<Span>>,
    /// null removes the promise.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub repair_within: Option<Option<Span>>,
    /// The complete new set of covered devices.
    #[serde(default)]
    pub device_ids: Option<Vec<i64>>,
}

impl ContractPatch {
    /// The number identifies the contract and does not change.
    pub fn apply(&self, c: &Contract) -> Result<ContractRecord> {
        let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        NewContract {
            organization_id: c.organization_id,
            number: c.number.clone(),
            starts_on: self.starts_on.clone().unwrap_or_else(|| day(c.starts_on)),
            ends_on: self.ends_on.clone().unwrap_or_else(|| day(c.ends_on)),
            coverage: self.coverage.unwrap_or(c.coverage),
            sla_policy: merge(&self.sla_policy, &c.sla_policy),
            calendar: merge(&self.calendar, &c.calendar),
            description: merge(&self.description, &c.description),
            remote_access_approval: self
                .remote_access_approval
                .unwrap_or(c.remote_access_approval),
            onsite_within: self.onsite_within.unwrap_or(c.onsite_within),
            repair_within: self.repair_within.unwrap_or(c.repair_within),
            device_ids: self
                .device_ids
                .clone()
                .unwrap_or_else(|| c.device_ids.clone()),
        }
        .validate()
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub mobile: Option<Option<String>>,
    /// Managers only, 1..=5 (admins).
    #[serde(default)]
    pub manager_level: Option<i64>,
    /// false deactivates the user: every token is refused at once (admins).
    #[serde(default)]
    pub active: Option<bool>,
    /// null removes them.
    #[serde(default, deserialize_with = "double")]
    pub quiet_hours: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub timezone: Option<Option<String>>,
}

impl UserPatch {
    /// Whether the patch touches what only an admin may change.
    pub fn needs_admin(&self) -> bool {
        self.manager_level.is_some() || self.active.is_some()
    }

    /// Username, role and organisation do not change; returns the validated
    /// record and the new active flag.
    pub fn apply(&self, u: &User) -> Result<(NewUser, bool)> {
        let rec = NewUser {
            username: u.username.clone(),
            display_name: self
                .display_name
                .clone()
                .unwrap_or_else(|| u.display_name.clone()),
            email: merge(&self.email, &u.email),
            mobile: merge(&self.mobile, &u.mobile),
            role: u.role,
            manager_level: self.manager_level.or(u.manager_level),
            organization_id: u.organization_id,
            quiet_hours: merge(&self.quiet_hours, &u.quiet_hours),
            timezone: merge(&self.timezone, &u.timezone),
        }
        .validate()?;
        Ok((rec, self.active.unwrap_or(u.active)))
    }
}
