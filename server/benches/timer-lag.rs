//! How late do durable timers fire? Schedules N timers spread over a window,
//! runs one timer service (or two, as replicas), and prints the lag between
//! each timer's due time and its firing, on SQLite and PostgreSQL in the same
//! run. Prints figures; asserts nothing.
//!
//!   cargo bench -p outpost-server --bench timer-lag -- [N] [WINDOW_SECS] [RUNNERS]

use chrono::{Duration, Utc};
use outpost_server::clock::SystemClock;
use outpost_server::config::Database;
use outpost_server::sla::timers::{Handler, Settings, TimerService};
use outpost_server::store::Store;
use std::sync::{Arc, Mutex};

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

async fn run(
    name: &str,
    db: Database,
    n: usize,
    window: i64,
    runners: usize,
) -> anyhow::Result<()> {
    let store = Store::open(&db, 8).await?;
    // The window opens after scheduling is surely done (inserting takes about
    // 1 ms a timer on PostgreSQL here), so lag measures the runner, not setup.
    let start = Utc::now() + Duration::milliseconds(1000 + 2 * n as i64);
    let t = std::time::Instant::now();
    for i in 0..n {
        let due = start + Duration::microseconds(window * 1_000_000 * i as i64 / n.max(1) as i64);
        store
            .schedule_timer(&format!("case:{i}"), "response_due", due, "{}", Utc::now())
            .await?;
    }
    let scheduled = Utc::now();
    eprintln!(
        "{name}: scheduled {n} timers in {:.1} s; {}",
        t.elapsed().as_secs_f64(),
        if scheduled < start {
            "before the first was due"
        } else {
            "AFTER the first was due: figures include setup"
        }
    );
    let lags = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut stops = Vec::new();
    for _ in 0..runners {
        let s = Store::open(&db, 8).await?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let l = lags.clone();
        let handler: Handler = Arc::new(move |t| {
            let l = l.clone();
            Box::pin(async move {
                let lag = (Utc::now() - t.due()).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                l.lock().map_err(|e| e.to_string())?.push(lag);
                Ok(())
            })
        });
        tokio::spawn(
            TimerService::new(s, Arc::new(SystemClock), Settings::default()).run(handler, rx),
        );
        stops.push(stop);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(window as u64 + 60);
    while lags.lock().map(|l| l.len()).unwrap_or(0) < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for s in stops {
        let _ = s.send(true);
    }
    let mut v = lags.lock().map(|l| l.clone()).unwrap_or_default();
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {name:<10} | {runners:>7} | {:>7} | {:>6} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} |",
        n,
        v.len(),
        pct(&v, 0.0),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let window: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runners: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    println!("{n} timers due over {window} s; lag = firing time - due time, in ms");
    println!(
        "| backend    | runners | timers  | fired  | min ms   | p50 ms   | p99 ms   | max ms   |"
    );
    println!(
        "|------------|---------|---------|--------|----------|----------|----------|----------|"
    );
    let dir = tempfile::tempdir()?;
    run(
        "sqlite",
        Database::Sqlite {
            path: dir.path().join("bench.db"),
        },
        n,
        window,
        runners,
    )
    .await?;
    let admin = std::env::var("OUTPOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    use sqlx::Connection;
    let name = format!("outpost_bench_{}", std::process::id());
    let mut c = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_default();
    let r = run(
        "postgres",
        Database::Postgres {
            url: format!("{base}/{name}"),
        },
        n,
        window,
        runners,
    )
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await?;
    r
}
