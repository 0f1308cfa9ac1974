//! The SLA settings in force: the config file's policies and calendars plus
//! those managed through the API (stored in `sla_settings`), as one
//! [`Registry`] that can be replaced while the server runs.
//!
//! A change through the API is validated against everything else, stored,
//! and swapped in; subscribers (the SLA engine) are told, and the engine
//! recomputes every open case's deadlines in the background, keeping elapsed
//! and paused time. Other replicas notice the change through a version in
//! the `meta` table, checked by their engines every minute.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::calendar::{Calendar, CalendarSpec};
use super::policy::{Policy, PolicySpec};
use super::registry::Registry;
use crate::auth::{Principal, Role};
use crate::config::SlaSection;
use crate::error::{Error, Result};
use crate::store::Store;

/// `meta` key holding the version of the API-managed settings.
const VERSION_KEY: &str = "sla_settings_version";

pub struct SlaSettings {
    store: Option<Store>,
    base: SlaSection,
    current: RwLock<Arc<Registry>>,
    /// The settings version this process has loaded.
    loaded: RwLock<Option<String>>,
    changed: watch::Sender<u64>,
}

/// A policy as listed: where it comes from, and its effective values.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    /// `config` (read-only here) or `api`.
    pub source: String,
    pub policy: Policy,
}

/// A calendar as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarView {
    pub source: String,
    #[schema(value_type = Object)]
    pub calendar: CalendarSpec,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl SlaSettings {
    /// Fixed settings (no API changes), e.g. for benchmarks and tests.
    pub fn fixed(registry: Registry) -> Arc<SlaSettings> {
        Arc::new(SlaSettings {
            store: None,
            base: SlaSection::default(),
            current: RwLock::new(Arc::new(registry)),
            loaded: RwLock::new(None),
            changed: watch::channel(0).0,
        })
    }

    /// The config file's settings plus the stored ones.
    pub async fn load(store: Store, base: SlaSection) -> Result<Arc<SlaSettings>> {
        let s = SlaSettings {
            store: Some(store),
            base,
            current: RwLock::new(Arc::new(Registry::default())),
            loaded: RwLock::new(None),
            changed: watch::channel(0).0,
        };
        s.reload().await?;
        Ok(Arc::new(s))
    }

    /// The registry in force now.
    pub fn current(&self) -> Arc<Registry> {
        read(&self.current)
    }

    /// Told (with a counter) every time the settings change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    async fn stored(&self) -> Result<(Vec<PolicySpec>, Vec<CalendarSpec>)> {
        let Some(store) = &self.store else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut policies = Vec::new();
        let mut calendars = Vec::new();
        for (kind, name, spec) in store.sla_settings().await? {
            let bad =
                |e: serde_json::Error| Error::Corrupt(format!("stored SLA {kind} {name}: {e}"));
            match kind.as_str() {
                "policy" => policies.push(serde_json::from_str(&spec).map_err(bad)?),
                _ => calendars.push(serde_json::from_str(&spec).map_err(bad)?),
            }
        }
        Ok((policies, calendars))
    }

    fn build(
        &self,
        policies: &[PolicySpec],
        calendars: &[CalendarSpec],
    ) -> std::result::Result<Registry, String> {
        let mut p = self.base.policies.clone();
        p.extend(policies.iter().cloned());
        let mut c = self.base.calendars.clone();
        c.extend(calendars.iter().cloned());
        Registry::from_config(
            self.base.timezone.as_deref(),
            self.base.default_policy.as_deref(),
            &p,
            &c,
        )
    }

    /// Rebuild from the config and the store; tells subscribers if anything
    /// changed. Returns whether it did.
    pub async fn reload(&self) -> Result<bool> {
        let version = match &self.store {
            Some(s) => s.meta(VERSION_KEY).await?,
            None => None,
        };
        let (policies, calendars) = self.stored().await?;
        let registry = self
            .build(&policies, &calendars)
            .map_err(|e| Error::Corrupt(format!("SLA settings: {e}")))?;
        let before = self.current().fingerprint().ok();
        let changed = before != registry.fingerprint().ok();
        write(&self.current, Arc::new(registry));
        write(&self.loaded, version);
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(changed)
    }

    /// Reload if another replica changed the settings.
    pub async fn reload_if_changed(&self) -> Result<bool> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let version = store.meta(VERSION_KEY).await?;
        if version == read(&self.loaded) {
            return Ok(false);
        }
        tracing::info!("SLA settings changed on another replica; reloading");
        self.reload().await
    }

    /// The config file's policies and calendars are changed there, not here.
    fn editable(&self, kind: &str, name: &str) -> Result<()> {
        let in_config = match kind {
            "policy" => self.base.policies.iter().any(|p| p.name == name),
            _ => self.base.calendars.iter().any(|c| c.name == name),
        };
        if in_config {
            return Err(Error::conflict(format!(
                "{kind} {name:?} is defined in the config file; change it there"
            )));
        }
        Ok(())
    }

    fn require_admin(who: &Principal) -> Result<()> {
        if who.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::forbidden(
                "only admins change SLA policies and calendars",
            ))
        }
    }

    fn store(&self) -> Result<&Store> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::conflict("these SLA settings are fixed"))
    }

    pub async fn policies(&self, who: &Principal) -> Result<Vec<PolicyView>> {
        who.require(crate::auth::Action::ReadInternal)?;
        let (stored, _) = self.stored().await?;
        let reg = self.current();
        let mut out: Vec<PolicyView> = Vec::new();
        for spec in self.base.policies.iter().chain(stored.iter()) {
            let api = !self.base.policies.iter().any(|p| p.name == spec.name);
            if let Some(p) = reg.named_policy(&spec.name) {
                out.push(PolicyView {
                    source: if api { "api" } else { "config" }.into(),
                    policy: p.clone(),
                });
            }
        }
        Ok(out)
    }

    pub async fn calendars(&self, who: &Principal) -> Result<Vec<CalendarView>> {
        who.require(crate::auth::Action::ReadInternal)?;
        let (_, stored) = self.stored().await?;
        Ok(self
            .base
            .calendars
            .iter()
            .map(|c| CalendarView {
                source: "config".into(),
                calendar: c.clone(),
            })
            .chain(stored.into_iter().map(|c| CalendarView {
                source: "api".into(),
                calendar: c,
            }))
            .collect())
    }

    /// Bump the shared version and swap in the new settings.
    async fn commit(&self, now: DateTime<Utc>) -> Result<()> {
        let store = self.store()?;
        store
            .set_meta(VERSION_KEY, &now.timestamp_micros().to_string(), now)
            .await?;
        self.reload().await?;
        Ok(())
    }

    /// Create or replace an API-managed policy; the body is a policy as in
    /// the config file (the name comes from the path).
    pub async fn put_policy(
        &self,
        who: &Principal,
        name: &str,
        mut body: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<PolicyView> {
        Self::require_admin(who)?;
        let name = crate::validate::ident("name", name, 64)?;
        self.editable("policy", &name)?;
        if let Some(obj) = body.as_object_mut() {
            match obj.get("name").and_then(|v| v.as_str()) {
                Some(n) if n != name => {
                    return Err(Error::invalid("name", "differs from the name in the path"))
                }
                _ => {}
            }
            obj.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        let spec: PolicySpec = serde_path_to_error::deserialize(body.clone())
            .map_err(|e| Error::invalid(e.path().to_string(), e.inner().to_string()))?;
        Policy::from_spec(&spec).map_err(|e| Error::invalid(e.key, e.message))?;
        let (mut policies, calendars) = self.stored().await?;
        policies.retain(|p| p.name != name);
        policies.push(spec);
        self.build(&policies, &calendars)
            .map_err(|e| Error::invalid("calendar", e))?;
        self.store()?
            .put_sla_setting("policy", &name, &body.to_string(), who.user_id, now)
            .await?;
        self.commit(now).await?;
        let reg = self.current();
        let policy = reg
            .named_policy(&name)
            .cloned()
            .ok_or_else(|| Error::Corrupt(format!("policy {name} missing after saving")))?;
        Ok(PolicyView {
            source: "api".into(),
            policy,
        })
    }

    pub async fn delete_policy(
        &self,
        who: &Principal,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        Self::require_admin(who)?;
        self.editable("policy", name)?;
        let store = self.store()?;
        let users = store.contracts_naming("sla_policy", name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "policy {name:?} is used by contracts {}",
                users.join(", ")
            )));
        }
        if !store.delete_sla_setting("policy", name).await? {
            return Err(Error::not_found(format!("policy {name}")));
        }
        self.commit(now).await
    }

    /// Create or replace an API-managed calendar.
    pub async fn put_calendar(
        &self,
        who: &Principal,
        name: &str,
        mut spec: CalendarSpec,
        now: DateTime<Utc>,
    ) -> Result<CalendarView> {
        Self::require_admin(who)?;
        let name = crate::validate::ident("name", name, 64)?;
        self.editable("calendar", &name)?;
        if !spec.name.is_empty() && spec.name != name {
            return Err(Error::invalid("name", "differs from the name in the path"));
        }
        spec.name = name.clone();
        Calendar::try_from(spec.clone()).map_err(|e| {
            let text = e.to_string();
            let (field, msg) = text.split_once(": ").unwrap_or(("calendar", text.as_str()));
            Error::invalid(field, msg)
        })?;
        let (policies, mut calendars) = self.stored().await?;
        calendars.retain(|c| c.name != name);
        calendars.push(spec.clone());
        self.build(&policies, &calendars)
            .map_err(|e| Error::invalid("calendar", e))?;
        let json = serde_json::to_string(&spec).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store()?
            .put_sla_setting("calendar", &name, &json, who.user_id, now)
            .await?;
        self.commit(now).await?;
        Ok(CalendarView {
            source: "api".into(),
            calendar: spec,
        })
    }

    /// Add the holidays of an iCalendar file to an API-managed calendar.
    pub async fn import_holidays(
        &self,
        who: &Principal,
        name: &str,
        ics: &str,
        now: DateTime<Utc>,
    ) -> Result<(usize, CalendarView)> {
        Self::require_admin(who)?;
        let (_, calendars) = self.stored().await?;
        let mut spec = calendars
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                if self.base.calendars.iter().any(|c| c.name == name) {
                    Error::conflict(format!(
                        "calendar {name:?} is defined in the config file; add holidays there"
                    ))
                } else {
                    Error::not_found(format!("calendar {name}"))
                }
            })?;
        let mut cal = Calendar::try_from(spec.clone())
            .map_err(|e| Error::Corrupt(format!("stored calendar {name}: {e}")))?;
        let before = cal.holidays().len();
        cal.import_ics(ics)
            .map_err(|e| Error::invalid("ics", e.to_string()))?;
        let added = cal.holidays().len() - before;
        spec.holidays = cal
            .holidays()
            .iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect();
        let view = self.put_calendar(who, name, spec, now).await?;
        Ok((added, view))
    }

    pub async fn delete_calendar(
        &self,
        who: &Principal,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        Self::require_admin(who)?;
        self.editable("calendar", name)?;
        let store = self.store()?;
        let users = store.contracts_naming("calendar", name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "calendar {name:?} is used by contracts {}",
                users.join(", ")
            )));
        }
        let (policies, mut calendars) = self.stored().await?;
        calendars.retain(|c| c.name != name);
        self.build(&policies, &calendars)
            .map_err(|e| Error::conflict(format!("calendar {name:?} is still needed: {e}")))?;
        if !store.delete_sla_setting("calendar", name).await? {
            return Err(Error::not_found(format!("calendar {name}")));
        }
        self.commit(now).await
    }
}
