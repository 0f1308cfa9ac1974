//! Throughput and latency of the case API over real HTTP, on SQLite and on
//! PostgreSQL in the same run: N concurrent clients open cases, then append
//! notes to them. Prints a table; nothing is asserted.
//!
//! Build everything in release mode first, then run:
//!   cargo build --release --workspace && ./target/release/outpost-bench --clients 50

use anyhow::{Context, Result};
use clap::Parser;
use outpost_tests::{Backend, Server, World};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Outpost case API benchmark")]
struct Args {
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Cases to open per backend.
    #[arg(long, default_value_t = 10_000)]
    cases: usize,
    /// Notes to append per backend.
    #[arg(long, default_value_t = 10_000)]
    notes: usize,
    /// Backends to measure, comma-separated: sqlite, postgres.
    #[arg(long, default_value = "sqlite,postgres")]
    backends: String,
}

struct Figures {
    count: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }
}

/// Run `total` requests from `clients` tasks; `op(i)` performs request i.
async fn run<F, Fut>(clients: usize, total: usize, op: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if op(i).await.is_err() {
                    errors += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Figures {
        count: total,
        errors,
        elapsed,
        latencies,
    }
}

fn print(backend: &str, op: &str, clients: usize, f: &Figures) {
    println!(
        "| {backend:<10} | {op:<12} | {clients:>7} | {:>7} | {:>6} | {:>9.0} | {:>8.2} | {:>8.2} | {:>8.2} |",
        f.count,
        f.errors,
        f.count as f64 / f.elapsed.as_secs_f64(),
        f.pct(0.50),
        f.pct(0.99),
        f.latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("| backend    | operation    | clients |  count  | errors |  req/s    | p50 ms   | p99 ms   | max ms   |");
    println!("|------------|--------------|---------|---------|--------|-----------|----------|----------|----------|");
    for name in args.backends.split(',').map(str::trim) {
        let backend = match name {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => anyhow::bail!("unknown backend {other:?}: use sqlite or postgres"),
        };
        let server = Arc::new(
            Server::start(backend)
                .await
                .with_context(|| format!("starting the {name} server"))?,
        );
        let world = Arc::new(World::build(&server).await?);
        let numbers = Arc::new(std::sync::Mutex::new(Vec::with_capacity(args.cases)));
        let (s, w, n) = (server.clone(), world.clone(), numbers.clone());
        let created = run(args.clients, args.cases, move |i| {
            let (s, w, n) = (s.clone(), w.clone(), n.clone());
            async move {
                let v = s
                    .post_ok("/api/v1/cases", &w.dispatcher, json!({
                        "caller": { "name": "Bench Caller", "phone": "+49 40 5550000" },
                        "summary": format!("benchmark case {i}"), "details": "load test", "priority": "P3",
                        "device_id": if i % 2 == 0 { w.device_a } else { w.device_b },
                    }))
                    .await?;
                let number = v["number"].as_str().context("number")?.to_string();
                if let Ok(mut g) = n.lock() {
                    g.push(number);
                }
                Ok(())
            }
        })
        .await;
        print(name, "open case", args.clients, &created);
        let list: Arc<Vec<String>> =
            Arc::new(numbers.lock().map(|g| g.clone()).unwrap_or_default());
        anyhow::ensure!(!list.is_empty(), "no case was created on {name}");
        let (s, w) = (server.clone(), world.clone());
        let noted = run(args.clients, args.notes, move |i| {
            let (s, w, list) = (s.clone(), w.clone(), list.clone());
            async move {
                let number = &list[(i * 7919) % list.len()];
                s.post_ok(
                    &format!("/api/v1/cases/{number}/notes"),
                    &w.engineer.1,
                    json!({ "text": format!("note {i}") }),
                )
                .await?;
                Ok(())
            }
        })
        .await;
        print(name, "append note", args.clients, &noted);
    }
    Ok(())
}
