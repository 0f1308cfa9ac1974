//! Console page times (issue 6: pages under 100 ms server time on the demo
//! data). One run starts the README's `outpost-server demo` (SQLite, a fresh
//! data directory), signs in over the real login form, then asks for each
//! console page `--rounds` times, one request at a time, beside the JSON
//! API call that carries the same data, so the page's own cost (templates,
//! SVG layout, SLA clocks) shows as the difference. Loopback, keep-alive:
//! the time is the server's, plus a loopback round trip.
//!
//! Build everything it runs in release mode first:
//!   cargo build --release -p outpost-server -p outpost-tests
//!   ./target/release/page-bench

use anyhow::{bail, Context, Result};
use clap::Parser;
use outpost_tests::console::Session;
use outpost_tests::Demo;
use reqwest::header;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Requests per page.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

async fn sign_in(base: &str, user: &str) -> Result<Session> {
    outpost_tests::console::sign_in(base, user, "outpost-demo").await
}

/// Milliseconds per request: (median, 95th percentile, max), and the body size.
async fn time(
    http: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    rounds: usize,
) -> Result<(f64, f64, f64, usize)> {
    let mut ms = Vec::with_capacity(rounds);
    let mut size = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let resp = http.get(url).header(auth.0, auth.1).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        if !status.is_success() {
            bail!("{url}: {status}");
        }
        size = body.len();
    }
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Ok((p(0.5), p(0.95), p(1.0), size))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let demo = Demo::start()?;
    let base = demo.url.clone();
    let dana = sign_in(&base, "dana").await?;
    let jana = sign_in(&base, "jana").await?;
    let greta = sign_in(&base, "greta").await?;
    let token = demo.token("dana")?;
    let bearer = format!("Bearer {token}");
    let cases: serde_json::Value = dana
        .http
        .get(format!("{base}/api/v1/cases?limit=200"))
        .header(header::AUTHORIZATION, &bearer)
        .send()
        .await?
        .json()
        .await?;
    let number = cases["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .max_by_key(|c| c["history_length"].as_i64().unwrap_or(0))
        })
        .and_then(|c| c["number"].as_str())
        .context("a demo case")?
        .to_string();
    let pages: Vec<(&str, &Session, String, Option<String>)> = vec![
        ("call center", &dana, "/console".into(), None),
        (
            "dossier with topology",
            &dana,
            "/console/organizations/1".into(),
            Some("/api/v1/organizations/1".into()),
        ),
        (
            "topology SVG",
            &dana,
            "/console/organizations/1/topology.svg".into(),
            Some("/api/v1/organizations/1/topology".into()),
        ),
        (
            "queues",
            &dana,
            "/queues".into(),
            Some("/api/v1/cases?open=true".into()),
        ),
        (
            "case list",
            &dana,
            "/cases".into(),
            Some("/api/v1/cases?open=true".into()),
        ),
        (
            "case workspace (longest history)",
            &dana,
            format!("/cases/{number}"),
            Some(format!("/api/v1/cases/{number}/activities")),
        ),
        (
            "new case form",
            &dana,
            "/cases/new?organization_id=1".into(),
            None,
        ),
        ("customer: our cases", &jana, "/cases".into(), None),
        ("manager: dashboard", &greta, "/dashboard".into(), None),
    ];
    println!(
        "Console pages on the demo data, {} requests each, one at a time (ms)\n",
        args.rounds
    );
    println!("| page | median | p95 | max | bytes | same data from the API: median |");
    println!("|---|---|---|---|---|---|");
    for (name, who, path, api) in pages {
        let page = time(
            &who.http,
            &format!("{}{path}", who.base),
            ("cookie", &who.cookie),
            args.rounds,
        )
        .await;
        let (p50, p95, max, size) = match page {
            Ok(t) => t,
            Err(e) => {
                println!("| {name} | {e} | | | | |");
                continue;
            }
        };
        let api = match api {
            Some(api) => {
                let (a50, ..) = time(
                    &dana.http,
                    &format!("{base}{api}"),
                    ("authorization", &bearer),
                    args.rounds,
                )
                .await?;
                format!("{a50:.2} (`{api}`)")
            }
            None => "-".into(),
        };
        println!("| {name} | {p50:.2} | {p95:.2} | {max:.2} | {size} | {api} |");
    }
    Ok(())
}
