//! The spare desk's deadlines on a driven clock, on both backends: a spare
//! approved after the cut-off and not shipped by the next working day's
//! noon is flagged overdue once; a delivered spare whose faulty part does
//! not come back gets its reminder and then its overdue flag; a received
//! part not repaired within 72 working hours is flagged; each timer fired
//! twice writes one entry; a finished step cancels its timers and clears its
//! flag, while the lateness stays in the case history.

use chrono::{DateTime, TimeZone, Utc};
use outpost_server::auth::{Principal, Role};
use outpost_server::cases::{ActivityBody, Caller, Cases, NewCase, Priority};
use outpost_server::clock::ManualClock;
use outpost_server::directory::{DeviceType, NewDevice, NewOrganization, NewUser};
use outpost_server::rma::rules::ShipmentState;
use outpost_server::rma::{
    NewPart, NewShipment, NewWarehouse, Rma, ShipmentStepRequest, StockChange,
};
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

/// Fires the shipment's pending timer of `kind` (as the runner would) and
/// returns its due time.
async fn fire(store: &Store, rma: &Rma, id: i64, kind: &str) -> anyhow::Result<DateTime<Utc>> {
    let t = store
        .timer(&format!("shipment:{id}"), kind)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {kind} timer"))?;
    rma.fire(&t).await?;
    // A retried firing (the runner died before marking it) changes nothing.
    rma.fire(&t).await?;
    Ok(t.due())
}

/// How many shipment entries of this event the case has.
async fn events(
    cases: &Cases,
    who: &Principal,
    number: &str,
    event: &str,
) -> anyhow::Result<usize> {
    Ok(cases
        .history(who, number)
        .await?
        .iter()
        .filter(|a| matches!(&a.body, ActivityBody::Shipment { state, .. } if state == event))
        .count())
}

async fn pending(store: &Store, id: i64) -> anyhow::Result<Vec<String>> {
    Ok(store
        .owner_timers(&format!("shipment:{id}"))
        .await?
        .into_iter()
        .filter(|(_, _, fired)| !fired)
        .map(|(k, _, _)| k)
        .collect())
}

async fn deadlines_fire_once_on_a_driven_clock(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    // Wednesday 25 November 2026, 15:00 UTC: after the 14:00 cut-off.
    let clock = ManualClock::new(at(2026, 11, 25, 15, 0));
    let now = at(2026, 11, 25, 15, 0);
    let cases = Cases::new(store.clone(), Arc::new(clock.clone()));
    let rma = Rma::new(
        cases.clone(),
        SlaSettings::fixed(Registry::default()),
        Default::default(),
    );
    let user = store
        .insert_user(
            &NewUser {
                username: "desk".into(),
                display_name: "Desk Admin".into(),
                email: None,
                mobile: None,
                role: Role::Admin,
                manager_level: None,
                organization_id: None,
                quiet_hours: None,
                timezone: None,
            }
            .validate()?,
            now,
        )
        .await?;
    let admin = Principal {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: Role::Admin,
        manager_level: None,
        organization_id: None,
    };
    let org = store
        .insert_organization(
            &NewOrganization {
                customer_code: "777".into(),
                name: "Clocked GmbH".into(),
                phone: None,
                email: None,
                address: None,
                notes: None,
            }
            .validate()?,
            now,
        )
        .await?;
    let device = store
        .insert_device(
            &NewDevice {
                organization_id: org.id,
                site_id: None,
                name: "sw-1".into(),
                device_type: DeviceType::Switch,
                vendor: "Cisco".into(),
                model: "C9300-48P".into(),
                serial: "FOC0000001".into(),
                firmware_version: None,
                warranty_end: None,
            }
            .validate()?,
            now,
        )
        .await?;
    let case = cases
        .open(
            &admin,
            &NewCase {
                caller: Caller {
                    name: "Caller".into(),
                    ..Default::default()
                },
                summary: "PSU failed".into(),
                details: String::new(),
                priority: Priority::P2,
                case_type: None,
                vendor: None,
                channel: None,
                organization_id: Some(org.id),
                device_id: Some(device.id),
                contract: None,
                assignee_id: None,
            },
        )
        .await?;
    let n = case.number.clone();
    let wh = rma
        .create_warehouse(
            &admin,
            &NewWarehouse {
                name: "Depot".into(),
                address: "Somewhere 1".into(),
            },
        )
        .await?;
    rma.create_part(
        &admin,
        &NewPart {
            part_number: "PSU-1".into(),
            vendor: "Cisco".into(),
            model: "PSU-1".into(),
            description: String::new(),
            compatible_models: vec![],
        },
    )
    .await?;
    rma.adjust_stock(
        &admin,
        &StockChange {
            part_number: "PSU-1".into(),
            warehouse_id: wh.id,
            delta: 3,
            serials: vec![],
        },
    )
    .await?;
    let sh = rma
        .request(
            &admin,
            &n,
            &NewShipment {
                part_number: "PSU-1".into(),
                warehouse_id: wh.id,
                quantity: 1,
                reason: None,
                confirmed_at: None,
            },
        )
        .await?;
    // After the cut-off: by noon of the next working day.
    assert_eq!(sh.ship_by, Some(at(2026, 11, 26, 12, 0)));
    let step = |to: ShipmentState, req: ShipmentStepRequest| {
        let (rma, admin) = (rma.clone(), admin.clone());
        async move { rma.step(&admin, sh.id, to, &req).await }
    };
    step(ShipmentState::Approved, Default::default()).await?;
    assert_eq!(pending(&store, sh.id).await?, vec!["ship_by".to_string()]);

    // Not shipped by Thursday noon: flagged once, internally.
    clock.set(at(2026, 11, 26, 12, 1));
    assert_eq!(
        fire(&store, &rma, sh.id, "ship_by").await?,
        at(2026, 11, 26, 12, 0)
    );
    assert_eq!(events(&cases, &admin, &n, "ship_overdue").await?, 1);
    let overdue = rma.shipments(&admin, None, None, Some(true), None).await?;
    assert!(overdue.iter().any(|s| s.id == sh.id && s.ship_overdue));

    // Picked and shipped late, delivered Thursday afternoon.
    step(ShipmentState::Picked, Default::default()).await?;
    step(
        ShipmentState::Shipped,
        ShipmentStepRequest {
            carrier: Some("DHL".into()),
            tracking_number: Some("JD1".into()),
            ..Default::default()
        },
    )
    .await?;
    assert!(
        pending(&store, sh.id).await?.is_empty(),
        "shipping ends ship_by"
    );
    clock.set(at(2026, 11, 26, 16, 0));
    let delivered = step(ShipmentState::Delivered, Default::default()).await?;
    // Ten working days after Thursday 26 November: Thursday 10 December.
    assert_eq!(delivered.return_due, Some(at(2026, 12, 10, 17, 0)));
    let mut kinds = pending(&store, sh.id).await?;
    kinds.sort();
    assert_eq!(
        kinds,
        vec!["return_due".to_string(), "return_reminder".to_string()]
    );

    // The reminder two working days before, then the overdue flag.
    clock.set(at(2026, 12, 9, 9, 0));
    let reminded = fire(&store, &rma, sh.id, "return_reminder").await?;
    assert!(reminded < at(2026, 12, 10, 17, 0));
    assert_eq!(events(&cases, &admin, &n, "return_reminder").await?, 1);
    clock.set(at(2026, 12, 11, 9, 0));
    fire(&store, &rma, sh.id, "return_due").await?;
    assert_eq!(events(&cases, &admin, &n, "return_overdue").await?, 1);
    let s = rma.shipment(&admin, sh.id).await?;
    assert!(s.return_overdue && !s.repair_overdue);

    // Returned late, received Friday 11 December 10:00: the repair is due 72
    // working hours later (7 that Friday, 8 on each of the next eight
    // working days, 1 more), Thursday 24 December 10:00.
    step(ShipmentState::Returned, Default::default()).await?;
    clock.set(at(2026, 12, 11, 10, 0));
    let received = step(ShipmentState::Received, Default::default()).await?;
    assert_eq!(received.repair_due, Some(at(2026, 12, 24, 10, 0)));
    clock.set(at(2026, 12, 24, 10, 1));
    fire(&store, &rma, sh.id, "repair_due").await?;
    assert_eq!(events(&cases, &admin, &n, "repair_overdue").await?, 1);
    step(ShipmentState::Repaired, Default::default()).await?;
    step(ShipmentState::Closed, Default::default()).await?;
    assert!(pending(&store, sh.id).await?.is_empty());
    let s = rma.shipment(&admin, sh.id).await?;
    // The flags mark what is overdue now; the lateness stays in the history.
    assert!(!s.ship_overdue && !s.return_overdue && !s.repair_overdue);
    assert_eq!(s.state, ShipmentState::Closed);
    assert!(rma
        .shipments(&admin, None, None, Some(true), None)
        .await?
        .is_empty());
    for event in [
        "ship_overdue",
        "return_reminder",
        "return_overdue",
        "repair_overdue",
    ] {
        assert_eq!(events(&cases, &admin, &n, event).await?, 1, "{event}");
    }
    // Every history chain is intact after the spare desk's entries.
    let (checked, findings) = cases.verify_all().await?;
    assert!(checked >= 1 && findings.is_empty(), "{findings:?}");
    Ok(())
}

both!(deadlines_fire_once_on_a_driven_clock);
