//! The store test-suite, run against both backends: SQLite in a temporary
//! directory and a fresh PostgreSQL database (`OUTPOST_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`) created and dropped per test.

use chrono::{TimeZone, Utc};
use outpost_server::auth::{hash_token, Role};
use outpost_server::cases::{Caller, Cases, NewCase, NewNote, Priority, Status, StatusChange};
use outpost_server::clock::ManualClock;
use outpost_server::directory::*;
use outpost_server::error::Error;
use outpost_server::store::Store;
use std::sync::Arc;

mod common;

/// A store on a test database.
struct Db {
    store: Store,
    db: common::TestDb,
}

impl Db {
    async fn sqlite() -> anyhow::Result<Db> {
        let db = common::TestDb::new(false).await?;
        Ok(Db {
            store: db.open().await?,
            db,
        })
    }

    async fn postgres() -> anyhow::Result<Db> {
        let db = common::TestDb::new(true).await?;
        Ok(Db {
            store: db.open().await?,
            db,
        })
    }

    async fn drop_pg(self) -> anyhow::Result<()> {
        self.store.close().await;
        self.db.drop_pg().await
    }
}

/// Run one suite function on both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                let db = super::Db::sqlite().await?;
                super::$name(&db.store).await?;
                db.drop_pg().await
            }
            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                let db = super::Db::postgres().await?;
                let r = super::$name(&db.store).await;
                db.drop_pg().await?;
                r
            }
        }
    };
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

async fn org(s: &Store, code: &str) -> anyhow::Result<Organization> {
    Ok(s.insert_organization(
        &NewOrganization {
            customer_code: code.into(),
            name: format!("Org {code}"),
            phone: Some("+49 40 555 1234".into()),
            email: None,
            address: None,
            notes: None,
        }
        .validate()?,
        t0(),
    )
    .await?)
}

async fn device(s: &Store, org: i64, serial: &str) -> anyhow::Result<Device> {
    Ok(s.insert_device(
        &NewDevice {
            organization_id: org,
            site_id: None,
            name: format!("dev-{serial}"),
            device_type: DeviceType::Switch,
            vendor: "Cisco".into(),
            model: "C9300".into(),
            serial: serial.into(),
            firmware_version: None,
            warranty_end: Some("2026-12-31".into()),
        }
        .validate()?,
        t0(),
    )
    .await?)
}

async fn directory_and_constraints(s: &Store) -> anyhow::Result<()> {
    let a = org(s, "A1").await?;
    let b = org(s, "B1").await?;
    assert!(matches!(
        org(s, "A1")
            .await
            .err()
            .and_then(|e| e.downcast::<Error>().ok()),
        Some(Error::Conflict(_))
    ));
    let da = device(s, a.id, "SN1").await?;
    let db = device(s, b.id, "SN2").await?;
    assert!(
        device(s, a.id, "SN1").await.is_err(),
        "vendor+serial is unique"
    );
    assert_eq!(
        s.device(da.id).await?.map(|d| d.serial),
        Some("SN1".to_string())
    );
    // A contract naming another organisation's device is refused whole.
    let bad = NewContract {
        organization_id: a.id,
        number: "K1".into(),
        starts_on: "2026-01-01".into(),
        ends_on: "2026-12-31".into(),
        coverage: Coverage::H24x7,
        sla_policy: None,
        calendar: None,
        description: None,
        remote_access_approval: false,
        onsite_within: None,
        repair_within: None,
        device_ids: vec![da.id, db.id],
    }
    .validate()?;
    let err = s.insert_contract(&bad, t0()).await.err();
    assert!(
        matches!(err, Some(Error::Invalid { ref field, .. }) if field == "device_ids"),
        "{err:?}"
    );
    assert!(
        s.contract_by_number("K1").await?.is_none(),
        "nothing half-written"
    );
    let good = NewContract {
        device_ids: vec![da.id],
        ..NewContract {
            organization_id: a.id,
            number: "K1".into(),
            starts_on: "2026-01-01".into(),
            ends_on: "2026-12-31".into(),
            coverage: Coverage::H24x7,
            sla_policy: None,
            calendar: None,
            description: None,
            remote_access_approval: false,
            onsite_within: None,
            repair_within: None,
            device_ids: vec![],
        }
    }
    .validate()?;
    let k = s.insert_contract(&good, t0()).await?;
    assert_eq!(k.device_ids, vec![da.id]);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default();
    assert_eq!(s.active_contract_for_device(da.id, day).await?, Some(k.id));
    let later = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default();
    assert_eq!(
        s.active_contract_for_device(da.id, later).await?,
        None,
        "expired contracts do not cover"
    );
    // Foreign keys.
    let site = NewSite {
        organization_id: 999,
        name: "x".into(),
        address: None,
        timezone: None,
    }
    .validate()?;
    assert!(matches!(
        s.insert_site(&site, t0()).await,
        Err(Error::Invalid { .. })
    ));
    // Projects with participants from both sides.
    let p = s
        .insert_project(
            &NewProject {
                organization_id: a.id,
                name: "Refresh".into(),
                description: None,
            }
            .validate()?,
            t0(),
        )
        .await?;
    for side in [Side::Customer, Side::Vendor] {
        s.insert_participant(
            p.id,
            &NewParticipant {
                side,
                name: format!("{side}"),
                role: "lead".into(),
                phone: Some("+49 30 777 8888".into()),
                email: None,
            }
            .validate()?,
            t0(),
        )
        .await?;
    }
    let ps = s.projects(Some(a.id), None).await?;
    assert_eq!(ps[0].participants.len(), 2);
    // Call-center lookup: customer code, phone (however typed), serial, name.
    assert_eq!(
        s.lookup("A1", 10)
            .await?
            .first()
            .map(|m| m.matched_by.clone()),
        Some("customer_code".into())
    );
    assert_eq!(
        s.lookup("040 555-1234", 10).await?.len(),
        2,
        "both orgs share the demo phone prefix"
    );
    assert_eq!(
        s.lookup("0307778888", 10)
            .await?
            .first()
            .map(|m| m.organization.id),
        Some(a.id),
        "participant phone"
    );
    let by_serial = s.lookup("SN2", 10).await?;
    assert_eq!(
        (by_serial[0].organization.id, by_serial[0].device_id),
        (b.id, Some(db.id))
    );
    assert_eq!(
        s.lookup("org b", 10)
            .await?
            .first()
            .map(|m| m.organization.id),
        Some(b.id)
    );
    assert!(
        s.lookup("100%_", 10).await?.is_empty(),
        "LIKE wildcards are escaped"
    );
    Ok(())
}
both!(directory_and_constraints);

async fn users_and_tokens(s: &Store) -> anyhow::Result<()> {
    let u = s
        .insert_user(
            &NewUser {
                username: "eng".into(),
                display_name: "Eng".into(),
                email: None,
                mobile: None,
                role: Role::Engineer,
                manager_level: None,
                organization_id: None,
                quiet_hours: None,
                timezone: None,
            }
            .validate()?,
            t0(),
        )
        .await?;
    let t = s
        .insert_token(u.id, "cli", &hash_token("opt_secret"), t0())
        .await?;
    let p = s.principal_for_token(&hash_token("opt_secret")).await?;
    assert_eq!(p.map(|p| p.role), Some(Role::Engineer));
    assert!(s
        .principal_for_token(&hash_token("opt_other"))
        .await?
        .is_none());
    assert_eq!(s.revoke_tokens(u.id, Some(t.id), None, t0()).await?, 1);
    assert!(
        s.principal_for_token(&hash_token("opt_secret"))
            .await?
            .is_none(),
        "revoked at once"
    );
    let key = parse_ssh_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me",
    )?;
    let k = s.insert_ssh_key(u.id, &key, t0()).await?;
    assert!(matches!(
        s.insert_ssh_key(u.id, &key, t0()).await,
        Err(Error::Conflict(_))
    ));
    assert!(s.delete_ssh_key(u.id, k.id).await?);
    assert!(s.ssh_keys(u.id).await?.is_empty());
    Ok(())
}
both!(users_and_tokens);

async fn case_numbers_and_history(s: &Store) -> anyhow::Result<()> {
    let a = org(s, "A1").await?;
    let d = device(s, a.id, "SN1").await?;
    let u = s
        .insert_user(
            &NewUser {
                username: "disp".into(),
                display_name: "Disp".into(),
                email: None,
                mobile: None,
                role: Role::Dispatcher,
                manager_level: None,
                organization_id: None,
                quiet_hours: None,
                timezone: None,
            }
            .validate()?,
            t0(),
        )
        .await?;
    let who = outpost_server::auth::Principal {
        user_id: u.id,
        username: u.username,
        display_name: u.display_name,
        role: Role::Dispatcher,
        manager_level: None,
        organization_id: None,
    };
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0)
            .single()
            .unwrap_or_default(),
    );
    let cases = Cases::new(s.clone(), Arc::new(clock.clone()));
    let req = NewCase {
        caller: Caller {
            name: "C".into(),
            ..Default::default()
        },
        summary: "s".into(),
        details: String::new(),
        priority: Priority::P3,
        case_type: None,
        vendor: None,
        channel: None,
        organization_id: None,
        device_id: Some(d.id),
        contract: None,
        assignee_id: None,
    };
    let c1 = cases.open(&who, &req).await?;
    let c2 = cases.open(&who, &req).await?;
    clock.advance(chrono::Duration::minutes(2));
    let c3 = cases.open(&who, &req).await?;
    assert_eq!(
        (c1.number.as_str(), c2.number.as_str(), c3.number.as_str()),
        ("C-2026-000001", "C-2026-000002", "C-2027-000001")
    );
    assert_eq!(
        c1.organization_id,
        Some(a.id),
        "organisation taken from the device"
    );
    assert_eq!(
        c1.vendor.as_deref(),
        Some("Cisco"),
        "vendor taken from the device"
    );
    // A refused change writes nothing.
    let err = cases
        .set_status(
            &who,
            &c1.number,
            &StatusChange {
                status: Status::Closed,
                reason: None,
            },
        )
        .await
        .err();
    assert!(
        matches!(err, Some(Error::IllegalTransition { .. })),
        "{err:?}"
    );
    cases
        .add_note(
            &who,
            &c1.number,
            &NewNote {
                text: "n".into(),
                visibility: None,
                corrects: None,
            },
        )
        .await?;
    let h = cases.history(&who, &c1.number).await?;
    // opened, the coverage check of its device, the note
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(h[1].body.kind(), "entitlement");
    assert_eq!(h[1].prev_hash, h[0].hash);
    assert_eq!(h[2].prev_hash, h[1].hash);
    let (checked, findings) = cases.verify_all().await?;
    assert_eq!((checked, findings.len()), (3, 0));
    // The database refuses edits to history.
    assert!(s
        .execute_raw("UPDATE activities SET body = '{}'")
        .await
        .is_err());
    assert!(s.execute_raw("DELETE FROM activities").await.is_err());
    assert!(s.execute_raw("DELETE FROM cases").await.is_err());
    assert_eq!(cases.history(&who, &c1.number).await?.len(), 3);
    // Unknown case.
    assert!(matches!(
        cases.get(&who, "C-2026-999999").await,
        Err(Error::NotFound(_))
    ));
    Ok(())
}
both!(case_numbers_and_history);

async fn migrations_are_idempotent(s: &Store) -> anyhow::Result<()> {
    s.ping().await?;
    assert!(s.users(None, None).await?.is_empty());
    Ok(())
}
both!(migrations_are_idempotent);

/// Creations are group-committed; one bad creation in a batch fails alone.
async fn group_commit_isolates_failures(s: &Store) -> anyhow::Result<()> {
    use outpost_server::store::cases::{CaseInsert, PendingEntry};
    let a = org(s, "A1").await?;
    let insert = |org: i64, i: usize| CaseInsert {
        organization_id: Some(org),
        contract_id: None,
        device_id: None,
        caller_name: "c".into(),
        caller_company: None,
        caller_phone: None,
        caller_email: None,
        caller_contract: None,
        summary: format!("case {i}"),
        details: String::new(),
        priority: 3,
        status: "new".into(),
        case_type: "other".into(),
        vendor: None,
        channel: "phone".into(),
        assignee_id: None,
        created_by: None,
        created_at: t0(),
        agent_id: None,
        fault_key: None,
    };
    let entry = PendingEntry {
        kind: "note",
        visibility: "internal",
        author_id: None,
        author_name: "t".into(),
        at: t0(),
        body: "{\"kind\":\"note\",\"text\":\"x\"}".into(),
        notify: false,
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (s, e) = (s.clone(), entry.clone());
        // Case 17 names an organisation that does not exist.
        let c = insert(if i == 17 { 999_999 } else { a.id }, i);
        tasks.push(tokio::spawn(async move { s.insert_case(&c, &[e]).await }));
    }
    let mut ok = std::collections::HashSet::new();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Ok((_, number)) => assert!(ok.insert(number)),
            Err(Error::Invalid { .. }) => failed += 1,
            Err(e) => anyhow::bail!("unexpected error {e}"),
        }
    }
    assert_eq!((ok.len(), failed), (39, 1));
    Ok(())
}
both!(group_commit_isolates_failures);
