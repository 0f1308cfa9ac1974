//! The contract's field promises on a driven clock, on both backends: on a
//! 24x7 contract the on-site promise (12 h) warns at 9 h and is missed at
//! 12 h when nobody checked in, the repair promise (48 h) warns at 36 h and
//! is missed at 48 h asking for backup equipment; each timer fired twice
//! writes one entry, a stale firing after the promise was met writes none.
//! On a 5x8 contract the same promises count working hours (a case opened
//! Friday 16:00 is due on site Tuesday 12:00), and a check-in and a
//! repaired check-out end their clocks (timers cancelled).

use chrono::{DateTime, TimeZone, Utc};
use outpost_server::auth::{Principal, Role};
use outpost_server::cases::{ActivityBody, Caller, Cases, NewCase, Priority};
use outpost_server::clock::ManualClock;
use outpost_server::directory::{
    Coverage, DeviceType, NewContract, NewDevice, NewOrganization, NewUser,
};
use outpost_server::field::{Field, NewVisit, VisitState, VisitStepRequest};
use outpost_server::sla::policy::Span;
use outpost_server::sla::registry::Registry;
use outpost_server::sla::settings::SlaSettings;
use outpost_server::store::Store;
use std::sync::Arc;

#[macro_use]
mod common;
use common::TestDb as Db;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .unwrap_or_default()
}

async fn user(
    store: &Store,
    name: &str,
    role: Role,
    now: DateTime<Utc>,
) -> anyhow::Result<Principal> {
    let u = store
        .insert_user(
            &NewUser {
                username: name.into(),
                display_name: name.into(),
                email: None,
                mobile: None,
                role,
                manager_level: None,
                organization_id: None,
                quiet_hours: None,
                timezone: None,
            }
            .validate()?,
            now,
        )
        .await?;
    Ok(Principal {
        user_id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role,
        manager_level: None,
        organization_id: None,
    })
}

/// A device covered by a contract of `coverage` promising on site within
/// 12 h and repair within 48 h; a case opened on it now. Returns the case
/// number and id.
async fn case_on(
    store: &Store,
    cases: &Cases,
    admin: &Principal,
    org: i64,
    tag: &str,
    coverage: Coverage,
    now: DateTime<Utc>,
) -> anyhow::Result<(String, i64)> {
    let device = store
        .insert_device(
            &NewDevice {
                organization_id: org,
                site_id: None,
                name: format!("sw-{tag}"),
                device_type: DeviceType::Switch,
                vendor: "Cisco".into(),
                model: "C9300".into(),
                serial: format!("FOC-{tag}"),
                firmware_version: None,
                warranty_end: None,
            }
            .validate()?,
            now,
        )
        .await?;
    store
        .insert_contract(
            &NewContract {
                organization_id: org,
                number: format!("K-{tag}"),
                starts_on: "2026-01-01".into(),
                ends_on: "2027-12-31".into(),
                coverage,
                sla_policy: None,
                calendar: None,
                description: None,
                remote_access_approval: false,
                onsite_within: Some(Span::hours(12)),
                repair_within: Some(Span::hours(48)),
                device_ids: vec![device.id],
            }
            .validate()?,
            now,
        )
        .await?;
    let case = cases
        .open(
            admin,
            &NewCase {
                caller: Caller {
                    name: "Caller".into(),
                    ..Default::default()
                },
                summary: format!("switch {tag} down"),
                details: String::new(),
                priority: Priority::P1,
                case_type: None,
                vendor: None,
                channel: None,
                organization_id: Some(org),
                device_id: Some(device.id),
                contract: None,
                assignee_id: None,
            },
        )
        .await?;
    let row = store
        .case_by_number(&case.number)
        .await?
        .ok_or_else(|| anyhow::anyhow!("case vanished"))?;
    Ok((case.number, row.id))
}

/// Fires the case's pending promise timer of `kind` twice (as a runner that
/// died before marking it would) and returns its due time.
async fn fire(
    store: &Store,
    field: &Field,
    case_id: i64,
    kind: &str,
) -> anyhow::Result<DateTime<Utc>> {
    let t = store
        .timer(&format!("field:{case_id}"), kind)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {kind} timer"))?;
    field.fire(&t).await?;
    field.fire(&t).await?;
    Ok(t.due())
}

async fn due(store: &Store, case_id: i64, kind: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(store
        .timer(&format!("field:{case_id}"), kind)
        .await?
        .map(|t| t.due()))
}

async fn pending(store: &Store, case_id: i64) -> anyhow::Result<Vec<String>> {
    Ok(store
        .owner_timers(&format!("field:{case_id}"))
        .await?
        .into_iter()
        .filter(|(_, _, fired)| !fired)
        .map(|(k, _, _)| k)
        .collect())
}

/// The `visit` entries of `step` on the case, with their reasons.
async fn events(
    cases: &Cases,
    who: &Principal,
    number: &str,
    event: &str,
) -> anyhow::Result<Vec<Option<String>>> {
    Ok(cases
        .history(who, number)
        .await?
        .into_iter()
        .filter_map(|a| match a.body {
            ActivityBody::Visit { step, reason, .. } if step == event => Some(reason),
            _ => None,
        })
        .collect())
}

async fn promises_on_a_driven_clock(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    // Wednesday 25 November 2026, 08:00 UTC.
    let t0 = at(2026, 11, 25, 8, 0);
    let clock = ManualClock::new(t0);
    let cases = Cases::new(store.clone(), Arc::new(clock.clone()));
    let field = Field::new(cases.clone(), SlaSettings::fixed(Registry::default()));
    let admin = user(&store, "admin", Role::Admin, t0).await?;
    let eng = user(&store, "erik", Role::Engineer, t0).await?;
    let org = store
        .insert_organization(
            &NewOrganization {
                customer_code: "888".into(),
                name: "Promised AG".into(),
                phone: None,
                email: None,
                address: None,
                notes: None,
            }
            .validate()?,
            t0,
        )
        .await?;

    // ---- 24x7: both promises missed.
    let (n, cid) = case_on(&store, &cases, &admin, org.id, "a", Coverage::H24x7, t0).await?;
    assert!(pending(&store, cid).await?.is_empty(), "no visit, no clock");
    clock.set(at(2026, 11, 25, 8, 30));
    let v = field
        .schedule_visit(
            &admin,
            &n,
            &NewVisit {
                engineer_id: eng.user_id,
                scheduled_at: at(2026, 11, 25, 19, 0),
                address: Some("Hafenstr. 1".into()),
                notes: None,
            },
        )
        .await?;
    assert_eq!(
        due(&store, cid, "onsite_warn").await?,
        Some(at(2026, 11, 25, 17, 0))
    );
    assert_eq!(
        due(&store, cid, "onsite_due").await?,
        Some(at(2026, 11, 25, 20, 0))
    );
    assert_eq!(
        due(&store, cid, "repair_warn").await?,
        Some(at(2026, 11, 26, 20, 0))
    );
    assert_eq!(
        due(&store, cid, "repair_due").await?,
        Some(at(2026, 11, 27, 8, 0))
    );
    clock.set(at(2026, 11, 25, 17, 0));
    fire(&store, &field, cid, "onsite_warn").await?;
    assert_eq!(events(&cases, &admin, &n, "onsite_warning").await?.len(), 1);
    clock.set(at(2026, 11, 25, 20, 0));
    fire(&store, &field, cid, "onsite_due").await?;
    assert_eq!(events(&cases, &admin, &n, "onsite_missed").await?.len(), 1);
    // The engineer arrives late: the promise is met late, still missed.
    clock.set(at(2026, 11, 25, 21, 0));
    field
        .step(
            &eng,
            v.id,
            VisitState::CheckedIn,
            &VisitStepRequest::default(),
        )
        .await?;
    let p = field.case_visits(&admin, &n).await?.promises;
    let onsite = p.onsite.ok_or_else(|| anyhow::anyhow!("onsite promise"))?;
    assert_eq!(onsite.met_at, Some(at(2026, 11, 25, 21, 0)));
    assert!(onsite.warned && onsite.missed);
    clock.set(at(2026, 11, 26, 20, 0));
    fire(&store, &field, cid, "repair_warn").await?;
    assert_eq!(events(&cases, &admin, &n, "repair_warning").await?.len(), 1);
    // Checked out without the repair: the repair clock runs on.
    clock.set(at(2026, 11, 27, 7, 0));
    field
        .step(
            &eng,
            v.id,
            VisitState::CheckedOut,
            &VisitStepRequest {
                work_done: Some("Diagnosed a failed backplane; part on order".into()),
                ..Default::default()
            },
        )
        .await?;
    clock.set(at(2026, 11, 27, 8, 0));
    fire(&store, &field, cid, "repair_due").await?;
    let missed = events(&cases, &admin, &n, "repair_missed").await?;
    assert_eq!(missed.len(), 1);
    assert!(
        missed[0]
            .as_deref()
            .unwrap_or_default()
            .contains("backup equipment"),
        "{missed:?}"
    );
    // Fired here by hand (the runner would mark them), nothing else is armed.
    assert_eq!(
        pending(&store, cid).await?,
        vec!["repair_due".to_string(), "repair_warn".to_string()]
    );

    // ---- 5x8: working hours; both promises met, their timers cancelled.
    let t1 = at(2026, 11, 27, 16, 0); // Friday 16:00
    clock.set(t1);
    let (n2, cid2) = case_on(&store, &cases, &admin, org.id, "b", Coverage::H5x8, t1).await?;
    let v2 = field
        .schedule_visit(
            &admin,
            &n2,
            &NewVisit {
                engineer_id: eng.user_id,
                scheduled_at: at(2026, 11, 30, 10, 0),
                address: Some("Gate 4".into()),
                notes: None,
            },
        )
        .await?;
    // 1 h on Friday, 8 h on Monday: warned at Monday's close; due 3 h into
    // Tuesday. Repair: 48 working hours, Monday 7 December 16:00.
    assert_eq!(
        due(&store, cid2, "onsite_warn").await?,
        Some(at(2026, 11, 30, 17, 0))
    );
    assert_eq!(
        due(&store, cid2, "onsite_due").await?,
        Some(at(2026, 12, 1, 12, 0))
    );
    assert_eq!(
        due(&store, cid2, "repair_due").await?,
        Some(at(2026, 12, 7, 16, 0))
    );
    clock.set(at(2026, 11, 30, 10, 5));
    field
        .step(
            &eng,
            v2.id,
            VisitState::CheckedIn,
            &VisitStepRequest::default(),
        )
        .await?;
    assert_eq!(
        pending(&store, cid2).await?,
        vec!["repair_due".to_string(), "repair_warn".to_string()]
    );
    clock.set(at(2026, 11, 30, 12, 0));
    field
        .step(
            &eng,
            v2.id,
            VisitState::CheckedOut,
            &VisitStepRequest {
                work_done: Some("Replaced the power supply".into()),
                repaired: Some(true),
                ..Default::default()
            },
        )
        .await?;
    assert!(pending(&store, cid2).await?.is_empty());
    let p = field.case_visits(&admin, &n2).await?.promises;
    let repair = p.repair.ok_or_else(|| anyhow::anyhow!("repair promise"))?;
    assert_eq!(repair.met_at, Some(at(2026, 11, 30, 12, 0)));
    assert!(!repair.missed);
    // A stale firing (a runner that claimed it before the cancel) writes
    // nothing for a met promise.
    let t = store.owner_timers(&format!("field:{cid2}")).await?;
    assert!(t.is_empty(), "cancelled timers are gone: {t:?}");
    store
        .schedule_timer(
            &format!("field:{cid2}"),
            "repair_due",
            at(2026, 12, 7, 16, 0),
            "{}",
            at(2026, 11, 30, 12, 0),
        )
        .await?;
    clock.set(at(2026, 12, 7, 16, 0));
    fire(&store, &field, cid2, "repair_due").await?;
    assert!(events(&cases, &admin, &n2, "repair_missed")
        .await?
        .is_empty());
    assert!(events(&cases, &admin, &n2, "onsite_missed")
        .await?
        .is_empty());
    let (checked, findings) = cases.verify_all().await?;
    assert!(checked >= 2 && findings.is_empty(), "{findings:?}");
    Ok(())
}

both!(promises_on_a_driven_clock);
