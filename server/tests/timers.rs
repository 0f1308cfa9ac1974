//! The durable timer service on both backends: never early and not late,
//! exactly one successful firing per timer with two runners on one database,
//! missed timers fire at start-up marked late, failures are retried, a dead
//! runner's lease runs out, and scheduling moves or cancels pending timers.

use chrono::{Duration, Utc};
use outpost_server::clock::SystemClock;
use outpost_server::sla::timers::{Handler, Settings, TimerService};
use outpost_server::store::timers::TimerRow;
use outpost_server::store::Store;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

mod common;
use common::TestDb as Db;

fn fast() -> Settings {
    Settings {
        poll: std::time::Duration::from_millis(200),
        lease: std::time::Duration::from_secs(5),
        retry: std::time::Duration::from_millis(100),
        ..Settings::default()
    }
}

type Log = Arc<Mutex<Vec<(TimerRow, chrono::DateTime<Utc>)>>>;

/// A handler that records each call, failing the first `fail_first` calls of
/// timers whose kind starts with "flaky".
fn recorder(log: Log, fail_first: usize) -> Handler {
    let failures = Arc::new(Mutex::new(0usize));
    Arc::new(move |t: TimerRow| {
        let (log, failures) = (log.clone(), failures.clone());
        Box::pin(async move {
            if t.kind.starts_with("flaky") {
                let mut f = failures.lock().map_err(|e| e.to_string())?;
                if *f < fail_first {
                    *f += 1;
                    return Err(format!("planned failure {}", *f));
                }
            }
            log.lock().map_err(|e| e.to_string())?.push((t, Utc::now()));
            Ok(())
        })
    })
}

fn start(store: Store, log: Log, fail_first: usize) -> (watch::Sender<bool>, TimerService) {
    let (stop, rx) = watch::channel(false);
    let svc = TimerService::new(store, Arc::new(SystemClock), fast());
    tokio::spawn(svc.clone().run(recorder(log, fail_first), rx));
    (stop, svc)
}

async fn wait_for(log: &Log, n: usize) -> anyhow::Result<()> {
    for _ in 0..300 {
        if log.lock().map(|l| l.len()).unwrap_or(0) >= n {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "only {} of {n} timers fired",
        log.lock().map(|l| l.len()).unwrap_or(0)
    )
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let db = super::Db::new(false).await?;
                super::$name(&db).await?;
                db.drop_pg().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let db = super::Db::new(true).await?;
                let r = super::$name(&db).await;
                db.drop_pg().await?;
                r
            }
        }
    };
}

async fn fires_on_time_never_early(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let log: Log = Arc::default();
    let (stop, svc) = start(store.clone(), log.clone(), 0);
    let now = Utc::now();
    for i in 0..20 {
        svc.schedule(
            &format!("case:{i}"),
            "response_due",
            now + Duration::milliseconds(100 + 50 * i),
            "{}",
        )
        .await?;
    }
    wait_for(&log, 20).await?;
    for (t, fired) in log.lock().map_err(|e| anyhow::anyhow!("{e}"))?.iter() {
        assert!(*fired >= t.due(), "{} fired before it was due", t.owner);
    }
    for i in 0..20 {
        let row = store.timer(&format!("case:{i}"), "response_due").await?;
        let row = row.ok_or_else(|| anyhow::anyhow!("timer {i} missing"))?;
        assert!(row.fired_at.is_some());
        assert!(!row.late, "timer {i} fired more than a second late");
    }
    let _ = stop.send(true);
    Ok(())
}
both!(fires_on_time_never_early);

async fn two_runners_fire_each_timer_once(db: &Db) -> anyhow::Result<()> {
    let (a, b) = (db.open().await?, db.open().await?);
    let log: Log = Arc::default();
    let now = Utc::now();
    for i in 0..300 {
        a.schedule_timer(
            &format!("case:{i}"),
            "escalation:1",
            now - Duration::milliseconds(10),
            "{}",
            now,
        )
        .await?;
    }
    let (stop_a, _) = start(a, log.clone(), 0);
    let (stop_b, _) = start(b, log.clone(), 0);
    wait_for(&log, 300).await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let owners: Vec<String> = log
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .iter()
        .map(|(t, _)| t.owner.clone())
        .collect();
    let unique: std::collections::HashSet<&String> = owners.iter().collect();
    assert_eq!(
        (owners.len(), unique.len()),
        (300, 300),
        "each timer fired exactly once"
    );
    let _ = (stop_a.send(true), stop_b.send(true));
    Ok(())
}
both!(two_runners_fire_each_timer_once);

async fn missed_timers_fire_late_at_startup(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let now = Utc::now();
    // Came due while no runner was up.
    store
        .schedule_timer(
            "case:1",
            "reminder:0",
            now - Duration::minutes(5),
            "{}",
            now,
        )
        .await?;
    store
        .schedule_timer("case:2", "reminder:0", now + Duration::hours(1), "{}", now)
        .await?;
    let log: Log = Arc::default();
    let (stop, _) = start(store.clone(), log.clone(), 0);
    wait_for(&log, 1).await?;
    let missed = store
        .timer("case:1", "reminder:0")
        .await?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    assert!(missed.late && missed.fired_at.is_some());
    let future = store
        .timer("case:2", "reminder:0")
        .await?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    assert!(
        future.fired_at.is_none(),
        "a future timer does not fire early"
    );
    let _ = stop.send(true);
    Ok(())
}
both!(missed_timers_fire_late_at_startup);

async fn failures_retry_and_dead_leases_expire(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let now = Utc::now();
    store
        .schedule_timer("case:1", "flaky", now, "{}", now)
        .await?;
    // A runner that claimed this one and died: its 300 ms lease runs out.
    store
        .schedule_timer("case:2", "orphan", now - Duration::seconds(1), "{}", now)
        .await?;
    let claimed = store
        .claim_due_timers(now, now + Duration::milliseconds(300), 10)
        .await?;
    assert_eq!(claimed.len(), 2);
    store
        .fail_timer(
            claimed
                .iter()
                .find(|t| t.kind == "flaky")
                .map(|t| t.id)
                .unwrap_or(0),
            now,
            "reset",
        )
        .await?;
    let log: Log = Arc::default();
    let (stop, _) = start(store.clone(), log.clone(), 2);
    wait_for(&log, 2).await?;
    // The handler has run; its completion is recorded just after it returns.
    let mut flaky = None;
    for _ in 0..100 {
        let t = store
            .timer("case:1", "flaky")
            .await?
            .ok_or_else(|| anyhow::anyhow!("missing"))?;
        if t.fired_at.is_some() {
            flaky = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let flaky = flaky.ok_or_else(|| anyhow::anyhow!("flaky never completed"))?;
    assert_eq!(
        flaky.attempts, 4,
        "one dead claim, two planned failures, one success"
    );
    assert_eq!(flaky.last_error.as_deref(), Some("planned failure 2"));
    let mut orphan = None;
    for _ in 0..100 {
        let t = store
            .timer("case:2", "orphan")
            .await?
            .ok_or_else(|| anyhow::anyhow!("missing"))?;
        if t.fired_at.is_some() {
            orphan = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let orphan = orphan.ok_or_else(|| anyhow::anyhow!("orphan never completed"))?;
    assert_eq!(orphan.attempts, 2);
    let _ = stop.send(true);
    Ok(())
}
both!(failures_retry_and_dead_leases_expire);

async fn scheduling_moves_and_cancels(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let log: Log = Arc::default();
    let (stop, svc) = start(store.clone(), log.clone(), 0);
    let now = Utc::now();
    svc.schedule("case:1", "reassign", now + Duration::hours(1), "{}")
        .await?;
    svc.schedule(
        "case:2",
        "reassign",
        now + Duration::milliseconds(300),
        "{}",
    )
    .await?;
    // Moved earlier: fires soon. Cancelled: never fires.
    svc.schedule(
        "case:1",
        "reassign",
        now + Duration::milliseconds(200),
        "{\"moved\":true}",
    )
    .await?;
    assert_eq!(svc.cancel("case:2", Some("reassign")).await?, 1);
    wait_for(&log, 1).await?;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let fired: Vec<(String, String)> = log
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .iter()
        .map(|(t, _)| (t.owner.clone(), t.payload.clone()))
        .collect();
    assert_eq!(
        fired,
        vec![("case:1".to_string(), "{\"moved\":true}".to_string())]
    );
    // A fired timer is not re-armed by scheduling it again.
    svc.schedule(
        "case:1",
        "reassign",
        Utc::now() + Duration::milliseconds(100),
        "{}",
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(log.lock().map(|l| l.len()).unwrap_or(0), 1);
    assert_eq!(
        svc.cancel("case:1", None).await?,
        0,
        "nothing pending to cancel"
    );
    let _ = stop.send(true);
    Ok(())
}
both!(scheduling_moves_and_cancels);
