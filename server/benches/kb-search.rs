//! Knowledge-base search latency: N published articles of synthetic text,
//! then short queries (3 words, as typed) and long ones (20 words, as a
//! case's summary and details make for suggestions), through the domain
//! (`Kb::search`), on SQLite (FTS5) and, given an admin URL, on a fresh
//! PostgreSQL database (tsvector + GIN).
//!
//!   cargo bench -p outpost-server --bench kb-search -- [N] [--postgres URL]
//!
//! Prints figures; asserts nothing.

use outpost_server::auth::{Principal, Role};
use outpost_server::clock::{Clock, SystemClock};
use outpost_server::config::Database;
use outpost_server::directory::NewUser;
use outpost_server::kb::{Kb, Query};
use outpost_server::store::kb::{ArticleChange, ArticleText};
use outpost_server::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small deterministic generator (no dependency on a random crate's
/// stream staying the same between versions).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A word index with a Zipf-like skew: low indices are common.
    fn word(&mut self, n: usize) -> usize {
        let a = self.next() as usize % n;
        let b = self.next() as usize % n;
        a.min(b)
    }
}

const VENDORS: [&str; 4] = ["Cisco", "Huawei", "Juniper", "Aruba"];
const TYPES: [&str; 4] = ["switch", "router", "firewall", "access_point"];

fn vocabulary() -> Vec<String> {
    let real = [
        "power",
        "supply",
        "fan",
        "reload",
        "crash",
        "stack",
        "cable",
        "crc",
        "link",
        "port",
        "module",
        "firmware",
        "upgrade",
        "memory",
        "leak",
        "cpu",
        "high",
        "bgp",
        "ospf",
        "neighbor",
        "flap",
        "sfp",
        "optic",
        "temperature",
        "alarm",
        "license",
        "vlan",
        "spanning",
        "tree",
        "loop",
        "duplex",
        "mismatch",
        "poe",
        "budget",
        "radius",
        "timeout",
        "certificate",
        "expired",
        "ntp",
        "drift",
        "snmp",
        "trap",
        "backup",
        "tftp",
        "config",
    ];
    let mut v: Vec<String> = real.iter().map(|s| s.to_string()).collect();
    let syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa"];
    for a in syll {
        for b in syll {
            for c in syll {
                v.push(format!("{a}{b}{c}"));
            }
        }
    }
    v
}

fn sentence(rng: &mut Lcg, vocab: &[String], words: usize) -> String {
    (0..words)
        .map(|_| vocab[rng.word(vocab.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(label: &str, db: &Database, n: usize) -> anyhow::Result<()> {
    let store = Store::open(db, 8).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let user = NewUser {
        username: "bench".into(),
        display_name: "Bench".into(),
        email: None,
        mobile: None,
        role: Role::Expert,
        manager_level: None,
        organization_id: None,
        quiet_hours: None,
        timezone: None,
    }
    .validate()?;
    let user = store.insert_user(&user, clock.now()).await?;
    let who = Principal {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: Role::Expert,
        manager_level: None,
        organization_id: None,
    };
    let vocab = vocabulary();
    let mut rng = Lcg(42);
    let started = Instant::now();
    for i in 0..n {
        let text = ArticleText {
            title: sentence(&mut rng, &vocab, 8),
            symptom: sentence(&mut rng, &vocab, 40),
            cause: sentence(&mut rng, &vocab, 25),
            resolution: sentence(&mut rng, &vocab, 40),
            vendor: Some(VENDORS[i % 4].into()),
            device_type: Some(TYPES[(i / 4) % 4].into()),
            model: Some(format!("M{}", i % 50)),
            firmware: None,
        };
        let id = store
            .kb_insert_article(None, &text, user.id, clock.now())
            .await?;
        store
            .kb_change(id, user.id, clock.now(), |_| {
                Ok(ArticleChange {
                    state: "published",
                    text: None,
                    submitted_by: None,
                    reviewed_by: None,
                    review_comment: None,
                    publish: true,
                })
            })
            .await?;
    }
    let seeded = started.elapsed();
    let kb = Kb::new(outpost_server::cases::Cases::new(store.clone(), clock));
    for (kind, words, count, filtered) in [
        ("3 words", 3, 500, false),
        ("3 words, vendor+type filter", 3, 500, true),
        ("20 words (suggestion)", 20, 200, false),
    ] {
        let mut times = Vec::with_capacity(count);
        let mut hits = 0usize;
        for i in 0..count {
            let q = Query {
                text: sentence(&mut rng, &vocab, words),
                vendor: filtered.then(|| VENDORS[i % 4].to_string()),
                device_type: filtered.then(|| TYPES[i % 4].to_string()),
                limit: Some(20),
                ..Default::default()
            };
            let t = Instant::now();
            let found = kb.search(&who, &q).await?;
            times.push(t.elapsed());
            hits += found.len();
        }
        times.sort();
        println!(
            "{label}: {n} articles, {kind}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} hits/query",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            hits as f64 / count as f64
        );
    }
    println!(
        "{label}: seeding {n} articles (insert + publish) took {:.1} s",
        seeded.as_secs_f64()
    );
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let pg = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = tempfile::tempdir()?;
    run(
        "SQLite",
        &Database::Sqlite {
            path: dir.path().join("kb.db"),
        },
        n,
    )
    .await?;
    if let Some(admin) = pg {
        use sqlx::Connection;
        let name = format!("outpost_kb_bench_{}", std::process::id());
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or_default();
        let result = run(
            "PostgreSQL",
            &Database::Postgres {
                url: format!("{base}/{name}"),
            },
            n,
        )
        .await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await?;
        result?;
    }
    Ok(())
}
