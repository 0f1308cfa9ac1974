//! The SLA engine across restarts, on both backends: a case changed while no
//! engine ran (it stopped before syncing) is synced at start-up even though
//! the settings are unchanged and no full resync runs; changed settings
//! resync every open case in the background and record it done.

use chrono::Utc;
use outpost_server::cases::{ActivityBody, CaseType, Cases, Channel, Priority, Visibility};
use outpost_server::clock::SystemClock;
use outpost_server::sla::engine::{self, Engine};
use outpost_server::sla::registry::Registry;
use outpost_server::sla::timers::Settings;
use outpost_server::store::cases::{CaseInsert, PendingEntry};
use outpost_server::store::Store;
use std::sync::Arc;

#[macro_use]
mod common;
use common::TestDb as Db;

/// A case written straight to the store, as if the server stopped before
/// its engine saw the change.
async fn unsynced_case(store: &Store) -> anyhow::Result<i64> {
    let now = Utc::now();
    let body = ActivityBody::Opened {
        summary: "opened before a crash".into(),
        priority: Priority::P2,
        channel: Channel::Phone,
        case_type: CaseType::Question,
    };
    let entry = PendingEntry {
        kind: body.kind(),
        visibility: Visibility::Public.as_str(),
        author_id: None,
        author_name: "test".into(),
        at: now,
        body: serde_json::to_string(&body)?,
        notify: false,
    };
    let insert = CaseInsert {
        organization_id: None,
        contract_id: None,
        device_id: None,
        caller_name: "Caller".into(),
        caller_company: None,
        caller_phone: None,
        caller_email: None,
        caller_contract: None,
        summary: "opened before a crash".into(),
        details: String::new(),
        priority: 2,
        status: "new".into(),
        case_type: "question".into(),
        vendor: None,
        channel: "phone".into(),
        assignee_id: None,
        created_by: None,
        created_at: now,
        agent_id: None,
        fault_key: None,
    };
    Ok(store.insert_case(&insert, &[entry]).await?.0)
}

async fn start(store: &Store) -> anyhow::Result<tokio::sync::watch::Sender<bool>> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cases = Cases::new(store.clone(), Arc::new(SystemClock));
    Engine::start(
        cases,
        outpost_server::sla::settings::SlaSettings::fixed(Registry::default()),
        Settings::default(),
        stopped,
        None,
    )
    .await?;
    Ok(stop)
}

async fn wait_until_synced(store: &Store, id: i64) -> anyhow::Result<usize> {
    let far = Utc::now() + chrono::Duration::days(1);
    for _ in 0..100 {
        let timers = store.owner_timers(&format!("case:{id}")).await?;
        if !timers.is_empty() && store.stale_sla_case_ids_after(0, far, 10).await?.is_empty() {
            return Ok(timers.len());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("case {id} was not synced")
}

async fn stale_cases_sync_at_start_up(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let fp = engine::fingerprint(&Registry::default())?;
    // A completed full resync for these very settings: only staleness can
    // bring the case's timers.
    store
        .set_meta(engine::RESYNC_KEY, &format!("{fp}\tdone"), Utc::now())
        .await?;
    let id = unsynced_case(&store).await?;
    assert!(store.owner_timers(&format!("case:{id}")).await?.is_empty());
    let stop = start(&store).await?;
    // P2 on the default policy: 2 reminders, reassign, response, resolution,
    // 4 escalation levels.
    assert_eq!(wait_until_synced(&store, id).await?, 9);
    assert_eq!(
        store.meta(engine::RESYNC_KEY).await?,
        Some(format!("{fp}\tdone"))
    );
    let _ = stop.send(true);
    Ok(())
}

async fn changed_settings_resync_every_open_case(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    store
        .set_meta(engine::RESYNC_KEY, "other settings\tdone", Utc::now())
        .await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(unsynced_case(&store).await?);
    }
    let stop = start(&store).await?;
    for id in ids {
        wait_until_synced(&store, id).await?;
    }
    let fp = engine::fingerprint(&Registry::default())?;
    for _ in 0..100 {
        if store.meta(engine::RESYNC_KEY).await? == Some(format!("{fp}\tdone")) {
            let _ = stop.send(true);
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("the full resync was not recorded as done")
}

both!(stale_cases_sync_at_start_up);
both!(changed_settings_resync_every_open_case);
