//! SQL for the customer directory.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;

use super::{map_db_err, parse_date, parse_enum, read, write, Store};
use crate::clock::{from_micros, to_micros};
use crate::directory::*;
use crate::error::{Error, Result};
use crate::validate::phone_digits;

#[derive(FromRow)]
struct OrgRow {
    id: i64,
    customer_code: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    notes: Option<String>,
    created_at: i64,
}

impl From<OrgRow> for Organization {
    fn from(r: OrgRow) -> Self {
        Organization {
            id: r.id,
            customer_code: r.customer_code,
            name: r.name,
            phone: r.phone,
            email: r.email,
            address: r.address,
            notes: r.notes,
            created_at: from_micros(r.created_at),
        }
    }
}

#[derive(FromRow)]
struct SiteRow {
    id: i64,
    organization_id: i64,
    name: String,
    address: Option<String>,
    timezone: Option<String>,
    created_at: i64,
}

impl From<SiteRow> for Site {
    fn from(r: SiteRow) -> Self {
        Site {
            id: r.id,
            organization_id: r.organization_id,
            name: r.name,
            address: r.address,
            timezone: r.timezone,
            created_at: from_micros(r.created_at),
        }
    }
}

#[derive(FromRow)]
struct ProjectRow {
    id: i64,
    organization_id: i64,
    name: String,
    description: Option<String>,
    created_at: i64,
}

#[derive(FromRow)]
struct ParticipantRow {
    id: i64,
    project_id: i64,
    side: String,
    name: String,
    role: String,
    phone: Option<String>,
    email: Option<String>,
    created_at: i64,
}

impl ParticipantRow {
    fn into_view(self) -> Result<Participant> {
        Ok(Participant {
            id: self.id,
            project_id: self.project_id,
            side: parse_enum("participants.side", &self.side)?,
            name: self.name,
            role: self.role,
            phone: self.phone,
            email: self.email,
            created_at: from_micros(self.created_at),
        })
    }
}

#[derive(FromRow)]
struct ContractRow {
    id: i64,
    organization_id: i64,
    number: String,
    starts_on: String,
    ends_on: String,
    coverage: String,
    sla_policy: Option<String>,
    calendar: Option<String>,
    description: Option<String>,
    remote_access_approval: bool,
    onsite_within_secs: Option<i64>,
    repair_within_secs: Option<i64>,
    created_at: i64,
}

fn span_of(secs: i64) -> crate::sla::policy::Span {
    crate::sla::policy::Span::secs(secs.max(0) as u64)
}

fn secs_of(s: crate::sla::policy::Span) -> i64 {
    i64::try_from(s.0.as_secs()).unwrap_or(i64::MAX)
}

impl ContractRow {
    fn into_view(self, device_ids: Vec<i64>) -> Result<Contract> {
        Ok(Contract {
            id: self.id,
            organization_id: self.organization_id,
            number: self.number,
            starts_on: parse_date("contracts.starts_on", &self.starts_on)?,
            ends_on: parse_date("contracts.ends_on", &self.ends_on)?,
            coverage: parse_enum("contracts.coverage", &self.coverage)?,
            sla_policy: self.sla_policy,
            calendar: self.calendar,
            description: self.description,
            remote_access_approval: self.remote_access_approval,
            onsite_within: self.onsite_within_secs.map(span_of),
            repair_within: self.repair_within_secs.map(span_of),
            created_at: from_micros(self.created_at),
            device_ids,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DeviceRow {
    id: i64,
    organization_id: i64,
    site_id: Option<i64>,
    name: String,
    device_type: String,
    vendor: String,
    model: String,
    serial: String,
    firmware_version: Option<String>,
    warranty_end: Option<String>,
    created_at: i64,
    agent_id: Option<i64>,
    agent_target: Option<String>,
    software_version: Option<String>,
    sys_object_id: Option<String>,
    last_seen_at: Option<i64>,
    stale_since: Option<i64>,
}

impl DeviceRow {
    pub(crate) fn into_view(self) -> Result<Device> {
        Ok(Device {
            id: self.id,
            organization_id: self.organization_id,
            site_id: self.site_id,
            name: self.name,
            device_type: parse_enum("devices.device_type", &self.device_type)?,
            vendor: self.vendor,
            model: self.model,
            serial: self.serial,
            firmware_version: self.firmware_version,
            warranty_end: self
                .warranty_end
                .as_deref()
                .map(|d| parse_date("devices.warranty_end", d))
                .transpose()?,
            created_at: from_micros(self.created_at),
            agent_id: self.agent_id,
            agent_target: self.agent_target,
            software_version: self.software_version,
            sys_object_id: self.sys_object_id,
            last_seen_at: self.last_seen_at.map(from_micros),
            stale_since: self.stale_since.map(from_micros),
        })
    }
}

/// Link a contract to each of `$c.device_ids` inside the transaction `$tx`;
/// a device that does not exist or belongs to another organisation fails the
/// whole transaction, naming the device.
macro_rules! link_devices {
    ($tx:expr, $contract:expr, $c:expr) => {
        for d in &$c.device_ids {
            let n = sqlx::query(
                "INSERT INTO contract_devices (contract_id, device_id)
                 SELECT $1, id FROM devices WHERE id = $2 AND organization_id = $3",
            )
            .bind($contract)
            .bind(d)
            .bind($c.organization_id)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::invalid(
                    "device_ids",
                    format!("device {d} does not exist or belongs to another organization"),
                ));
            }
        }
    };
}

const ORG_COLS: &str = "id, customer_code, name, phone, email, address, notes, created_at";
const SITE_COLS: &str = "id, organization_id, name, address, timezone, created_at";
const CONTRACT_COLS: &str = "id, organization_id, number, starts_on, ends_on, coverage, sla_policy, calendar, description, remote_access_approval, onsite_within_secs, repair_within_secs, created_at";
pub(crate) const DEVICE_COLS: &str = "id, organization_id, site_id, name, device_type, vendor, model, serial, firmware_version, warranty_end, created_at, agent_id, agent_target, software_version, sys_object_id, last_seen_at, stale_since";

fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl Store {
    // ------------------------------------------------------------ organisations

    pub async fn insert_organization(
        &self,
        o: &NewOrganization,
        now: DateTime<Utc>,
    ) -> Result<Organization> {
        let row: OrgRow = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "INSERT INTO organizations (customer_code, name, phone, email, address, notes, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ORG_COLS}"
            ))
            .bind(&o.customer_code)
            .bind(&o.name)
            .bind(&o.phone)
            .bind(&o.email)
            .bind(&o.address)
            .bind(&o.notes)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "customer_code"))?
        });
        Ok(row.into())
    }

    pub async fn organization(&self, id: i64) -> Result<Option<Organization>> {
        let row: Option<OrgRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {ORG_COLS} FROM organizations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(Into::into))
    }

    /// Organisations ordered by name; `only` restricts to one (customer scope).
    pub async fn organizations(&self, only: Option<i64>, limit: i64) -> Result<Vec<Organization>> {
        let rows: Vec<OrgRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {ORG_COLS} FROM organizations WHERE ($1 IS NULL OR id = $1) ORDER BY name, id LIMIT $2"
            ))
            .bind(only)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The call-center search: exact customer code, phone (digits compared,
    /// on the organisation, its participants and its customer users), device
    /// serial, or a name substring.
    pub async fn lookup(&self, q: &str, limit: i64) -> Result<Vec<LookupMatch>> {
        let q = q.trim();
        // Leading zeros (national trunk or international 00 prefix) are
        // dropped on both sides, so 040 555 1234 finds +49 40 555 1234.
        let digits = phone_digits(q).trim_start_matches('0').to_string();
        let mut out: Vec<LookupMatch> = Vec::new();
        let mut push = |o: Organization, by: &str, device: Option<i64>| {
            if !out.iter().any(|m| m.organization.id == o.id) {
                out.push(LookupMatch {
                    organization: o,
                    matched_by: by.to_string(),
                    device_id: device,
                });
            }
        };
        let by_code: Vec<OrgRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {ORG_COLS} FROM organizations WHERE customer_code = $1"
            ))
            .bind(q)
            .fetch_all(p)
            .await?
        });
        for r in by_code {
            push(r.into(), "customer_code", None);
        }
        let by_serial: Vec<(i64, i64)> = read!(self, |p, _d| {
            sqlx::query_as("SELECT id, organization_id FROM devices WHERE serial = $1")
                .bind(q)
                .fetch_all(p)
                .await?
        });
        for (device, org) in by_serial {
            if let Some(o) = self.organization(org).await? {
                push(o, "serial", Some(device));
            }
        }
        if digits.len() >= 5 {
            // Phone numbers are stored as typed; compare on digits, tolerating
            // a missing country prefix by matching the tail.
            let orgs: Vec<(i64, Option<String>)> = read!(self, |p, _d| {
                sqlx::query_as(
                    "SELECT id, phone FROM organizations WHERE phone IS NOT NULL
                     UNION ALL SELECT pr.organization_id, pa.phone FROM participants pa
                        JOIN projects pr ON pr.id = pa.project_id WHERE pa.phone IS NOT NULL
                     UNION ALL SELECT organization_id, mobile FROM users
                        WHERE organization_id IS NOT NULL AND mobile IS NOT NULL",
                )
                .fetch_all(p)
                .await?
            });
            for (org, phone) in orgs {
                let stored = phone_digits(phone.as_deref().unwrap_or_default());
                let stored = stored.trim_start_matches('0');
                if stored.len() >= 5 && (stored.ends_with(&digits) || digits.ends_with(stored)) {
                    if let Some(o) = self.organization(org).await? {
                        push(o, "phone", None);
                    }
                }
            }
        }
        if q.chars().count() >= 2 {
            let pattern = format!("%{}%", escape_like(q));
            let by_name: Vec<OrgRow> = read!(self, |p, d| {
                sqlx::query_as(&format!(
                    "SELECT {ORG_COLS} FROM organizations WHERE name {} $1 ESCAPE '\\' ORDER BY name LIMIT $2",
                    d.ilike()
                ))
                .bind(&pattern)
                .bind(limit)
                .fetch_all(p)
                .await?
            });
            for r in by_name {
                push(r.into(), "name", None);
            }
        }
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    pub async fn update_organization(&self, id: i64, o: &NewOrganization) -> Result<Organization> {
        let row: Option<OrgRow> = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "UPDATE organizations SET name = $1, phone = $2, email = $3, address = $4, notes = $5
                 WHERE id = $6 RETURNING {ORG_COLS}"
            ))
            .bind(&o.name)
            .bind(&o.phone)
            .bind(&o.email)
            .bind(&o.address)
            .bind(&o.notes)
            .bind(id)
            .fetch_optional(p)
            .await
            .map_err(|e| map_db_err(e, "organization"))?
        });
        row.map(Into::into)
            .ok_or_else(|| Error::not_found(format!("organization {id}")))
    }

    // ------------------------------------------------------------ sites

    pub async fn insert_site(&self, s: &NewSite, now: DateTime<Utc>) -> Result<Site> {
        let row: SiteRow = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "INSERT INTO sites (organization_id, name, address, timezone, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {SITE_COLS}"
            ))
            .bind(s.organization_id)
            .bind(&s.name)
            .bind(&s.address)
            .bind(&s.timezone)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "site"))?
        });
        Ok(row.into())
    }

    pub async fn sites(&self, org: Option<i64>) -> Result<Vec<Site>> {
        let rows: Vec<SiteRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {SITE_COLS} FROM sites WHERE ($1 IS NULL OR organization_id = $1) ORDER BY name, id"
            ))
            .bind(org)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn site(&self, id: i64) -> Result<Option<Site>> {
        let row: Option<SiteRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("SELECT {SITE_COLS} FROM sites WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(Into::into))
    }

    // ------------------------------------------------------------ projects

    pub async fn insert_project(&self, pj: &NewProject, now: DateTime<Utc>) -> Result<Project> {
        let row: ProjectRow = write!(self, |p, _d| {
            sqlx::query_as(
                "INSERT INTO projects (organization_id, name, description, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id, organization_id, name, description, created_at",
            )
            .bind(pj.organization_id)
            .bind(&pj.name)
            .bind(&pj.description)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "project"))?
        });
        Ok(Project {
            id: row.id,
            organization_id: row.organization_id,
            name: row.name,
            description: row.description,
            created_at: from_micros(row.created_at),
            participants: Vec::new(),
        })
    }

    pub async fn insert_participant(
        &self,
        project_id: i64,
        pa: &NewParticipant,
        now: DateTime<Utc>,
    ) -> Result<Participant> {
        let row: ParticipantRow = write!(self, |p, _d| {
            sqlx::query_as(
                "INSERT INTO participants (project_id, side, name, role, phone, email, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id, project_id, side, name, role, phone, email, created_at",
            )
            .bind(project_id)
            .bind(pa.side.as_str())
            .bind(&pa.name)
            .bind(&pa.role)
            .bind(&pa.phone)
            .bind(&pa.email)
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "project_id"))?
        });
        row.into_view()
    }

    /// Projects with their participants; by organisation or one project.
    pub async fn projects(&self, org: Option<i64>, project: Option<i64>) -> Result<Vec<Project>> {
        let rows: Vec<ProjectRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, organization_id, name, description, created_at FROM projects
                 WHERE ($1 IS NULL OR organization_id = $1) AND ($2 IS NULL OR id = $2) ORDER BY name, id",
            )
            .bind(org)
            .bind(project)
            .fetch_all(p)
            .await?
        });
        let parts: Vec<ParticipantRow> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT pa.id, pa.project_id, pa.side, pa.name, pa.role, pa.phone, pa.email, pa.created_at
                 FROM participants pa JOIN projects pr ON pr.id = pa.project_id
                 WHERE ($1 IS NULL OR pr.organization_id = $1) AND ($2 IS NULL OR pr.id = $2)
                 ORDER BY pa.side, pa.name, pa.id",
            )
            .bind(org)
            .bind(project)
            .fetch_all(p)
            .await?
        });
        let mut out: Vec<Project> = rows
            .into_iter()
            .map(|r| Project {
                id: r.id,
                organization_id: r.organization_id,
                name: r.name,
                description: r.description,
                created_at: from_micros(r.created_at),
                participants: Vec::new(),
            })
            .collect();
        for pa in parts {
            let pa = pa.into_view()?;
            if let Some(pj) = out.iter_mut().find(|pj| pj.id == pa.project_id) {
                pj.participants.push(pa);
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ contracts

    pub async fn insert_contract(
        &self,
        c: &ContractRecord,
        now: DateTime<Utc>,
    ) -> Result<Contract> {
        let row: ContractRow = write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let row: ContractRow = sqlx::query_as(&format!(
                "INSERT INTO contracts (organization_id, number, starts_on, ends_on, coverage, sla_policy, calendar, description, created_at, remote_access_approval, onsite_within_secs, repair_within_secs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {CONTRACT_COLS}"
            ))
            .bind(c.organization_id)
            .bind(&c.number)
            .bind(date_text(c.starts_on))
            .bind(date_text(c.ends_on))
            .bind(c.coverage.as_str())
            .bind(&c.sla_policy)
            .bind(&c.calendar)
            .bind(&c.description)
            .bind(to_micros(now))
            .bind(c.remote_access_approval)
            .bind(c.onsite_within.map(secs_of))
            .bind(c.repair_within.map(secs_of))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "number"))?;
            link_devices!(tx, row.id, c);
            tx.commit().await?;
            row
        });
        row.into_view(c.device_ids.clone())
    }

    /// Rewrite a contract's terms and its set of covered devices, atomically.
    pub async fn update_contract(&self, id: i64, c: &ContractRecord) -> Result<Contract> {
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE contracts SET starts_on = $1, ends_on = $2, coverage = $3, sla_policy = $4,
                    calendar = $5, description = $6, remote_access_approval = $8,
                    onsite_within_secs = $9, repair_within_secs = $10 WHERE id = $7",
            )
            .bind(date_text(c.starts_on))
            .bind(date_text(c.ends_on))
            .bind(c.coverage.as_str())
            .bind(&c.sla_policy)
            .bind(&c.calendar)
            .bind(&c.description)
            .bind(id)
            .bind(c.remote_access_approval)
            .bind(c.onsite_within.map(secs_of))
            .bind(c.repair_within.map(secs_of))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "contract"))?
            .rows_affected();
            if n == 0 {
                return Err(Error::not_found(format!("contract {id}")));
            }
            sqlx::query("DELETE FROM contract_devices WHERE contract_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            link_devices!(tx, id, c);
            // The contract names the SLA policy and calendar of its cases.
            super::cases::mark_sla_stale!(tx, "contract_id", id);
            tx.commit().await?;
        });
        self.contracts(None, Some(id))
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("contract {id}")))
    }

    pub async fn contracts(&self, org: Option<i64>, id: Option<i64>) -> Result<Vec<Contract>> {
        let rows: Vec<ContractRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {CONTRACT_COLS} FROM contracts WHERE ($1 IS NULL OR organization_id = $1)
                 AND ($2 IS NULL OR id = $2) ORDER BY number"
            ))
            .bind(org)
            .bind(id)
            .fetch_all(p)
            .await?
        });
        let links: Vec<(i64, i64)> = read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT cd.contract_id, cd.device_id FROM contract_devices cd
                 JOIN contracts c ON c.id = cd.contract_id
                 WHERE ($1 IS NULL OR c.organization_id = $1) AND ($2 IS NULL OR c.id = $2)
                 ORDER BY cd.device_id",
            )
            .bind(org)
            .bind(id)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                let ids = links
                    .iter()
                    .filter(|(c, _)| *c == r.id)
                    .map(|(_, d)| *d)
                    .collect();
                r.into_view(ids)
            })
            .collect()
    }

    pub async fn contract_by_number(&self, number: &str) -> Result<Option<Contract>> {
        let id: Option<i64> = read!(self, |p, _d| {
            sqlx::query_scalar("SELECT id FROM contracts WHERE number = $1")
                .bind(number)
                .fetch_optional(p)
                .await?
        });
        match id {
            Some(id) => Ok(self.contracts(None, Some(id)).await?.pop()),
            None => Ok(None),
        }
    }

    /// The id of a contract covering the device on `day` (latest ending first).
    pub async fn active_contract_for_device(
        &self,
        device: i64,
        day: NaiveDate,
    ) -> Result<Option<i64>> {
        let day = date_text(day);
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT c.id FROM contracts c JOIN contract_devices cd ON cd.contract_id = c.id
                 WHERE cd.device_id = $1 AND c.starts_on <= $2 AND c.ends_on >= $2
                 ORDER BY c.ends_on DESC, c.id LIMIT 1",
            )
            .bind(device)
            .bind(&day)
            .fetch_optional(p)
            .await?
        }))
    }

    // ------------------------------------------------------------ devices

    pub async fn insert_device(&self, d: &DeviceRecord, now: DateTime<Utc>) -> Result<Device> {
        self.check_site(d).await?;
        let row: DeviceRow = write!(self, |p, _d| {
            sqlx::query_as(&format!(
                "INSERT INTO devices (organization_id, site_id, name, device_type, vendor, model, serial, firmware_version, warranty_end, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {DEVICE_COLS}"
            ))
            .bind(d.organization_id)
            .bind(d.site_id)
            .bind(&d.name)
            .bind(d.device_type.as_str())
            .bind(&d.vendor)
            .bind(&d.model)
            .bind(&d.serial)
            .bind(&d.firmware_version)
            .bind(d.warranty_end.map(date_text))
            .bind(to_micros(now))
            .fetch_one(p)
            .await
            .map_err(|e| map_db_err(e, "serial"))?
        });
        row.into_view()
    }

    /// Rewrite a device's editable fields (vendor and serial stay).
    pub async fn update_device(&self, id: i64, d: &DeviceRecord) -> Result<Device> {
        self.check_site(d).await?;
        let row: Option<DeviceRow> = write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let row = sqlx::query_as(&format!(
                "UPDATE devices SET site_id = $1, name = $2, device_type = $3, model = $4,
                    firmware_version = $5, warranty_end = $6 WHERE id = $7 RETURNING {DEVICE_COLS}"
            ))
            .bind(d.site_id)
            .bind(&d.name)
            .bind(d.device_type.as_str())
            .bind(&d.model)
            .bind(&d.firmware_version)
            .bind(d.warranty_end.map(date_text))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "device"))?;
            // The device's site gives its cases' calendar time zone.
            super::cases::mark_sla_stale!(tx, "device_id", id);
            tx.commit().await?;
            row
        });
        row.map(DeviceRow::into_view)
            .transpose()?
            .ok_or_else(|| Error::not_found(format!("device {id}")))
    }

    /// A device's site must exist and belong to the device's organisation.
    async fn check_site(&self, d: &DeviceRecord) -> Result<()> {
        let Some(site) = d.site_id else { return Ok(()) };
        match self.site(site).await? {
            Some(s) if s.organization_id == d.organization_id => Ok(()),
            _ => Err(Error::invalid(
                "site_id",
                format!("site {site} does not exist or belongs to another organization"),
            )),
        }
    }

    pub async fn device(&self, id: i64) -> Result<Option<Device>> {
        let row: Option<DeviceRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(DeviceRow::into_view).transpose()
    }

    pub async fn devices(&self, org: Option<i64>, limit: i64) -> Result<Vec<Device>> {
        let rows: Vec<DeviceRow> = read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE ($1 IS NULL OR organization_id = $1) ORDER BY name, id LIMIT $2"
            ))
            .bind(org)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(DeviceRow::into_view).collect()
    }
}

/// Escape `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
