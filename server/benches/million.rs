//! A million open cases with SLA timers on SQLite: how long does the server
//! take to start, how much memory does it hold, and how late do deadlines
//! fire at about 200 a second? And how late would a 5-minute polling job (the
//! design of the help desks we compare against) be on the same data?
//!
//!   cargo bench -p outpost-server --bench million -- [N] [--window SECS]
//!       [--rate PER_SEC] [--dir PATH] [--rebuild] [--resync]
//!
//! Phases, each a child process of this one so its memory figures are its own:
//!
//! 1. **build** (skipped when `DIR/million-N.db` exists, unless `--rebuild`):
//!    N cases, opened one after another over a span S before a reference
//!    instant R, priorities P1..P4 in turn, default policy, 24x7 calendar,
//!    status new (every clock running). Cases go in through the store's group
//!    commit; each case's timers are what the engine's own sync would schedule
//!    ([`wanted_timers`]): deadlines before R as fired on time, the rest
//!    pending. S is chosen so that about `--rate` deadlines a second come due
//!    after R. The database is then marked as the engine leaves it after a
//!    full resync (every case synced, the settings' fingerprint stored).
//! 2. **serve**, on a fresh copy of that database: the server's start-up path
//!    (open the store and migrate, start the SLA engine and its timer runner)
//!    with the file dropped from the page cache first (cold start), on a
//!    clock that reads R - 2 s at start, so the measured window [R, R +
//!    window) opens 2 s after start. Start-up time, resident memory, and for
//!    every timer due in the window its lateness (fired_at - due_at as the
//!    timer service records it, after the engine's handler has written the
//!    event on the case). With `--resync` the stored fingerprint is replaced
//!    first, as after a configuration change, so a full background resync
//!    runs during the window.
//! 3. **poll**, on the build's database: the polling job's query ("every
//!    deadline due by now") run against the same data at R + 5 min, uncapped
//!    and capped at 1,000 rows; lateness of each deadline in [R, R + 1 h) is
//!    then derived: polls at R + 5 min, R + 10 min, ...; a deadline is handled
//!    by the first poll at or after it that has room (all, or the 1,000
//!    earliest waiting), when that poll's query returns. Processing is counted
//!    as free, which favours polling.
//!
//! Prints figures; asserts nothing.

use chrono::{DateTime, Duration, Utc};
use outpost_server::cases::Cases;
use outpost_server::cases::{ActivityBody, CaseType, Channel, Priority, Visibility};
use outpost_server::clock::{from_micros, to_micros, Clock};
use outpost_server::config::Database;
use outpost_server::sla::clock::Timeline;
use outpost_server::sla::engine::{self, wanted_timers, Engine};
use outpost_server::sla::registry::Registry;
use outpost_server::sla::timers::Settings;
use outpost_server::store::cases::{CaseInsert, PendingEntry};
use outpost_server::store::timers::ImportTimer;
use outpost_server::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// Cases inserted and given timers per round of the build.
const CHUNK: usize = 20_000;
/// The server starts this long before the window opens.
const LEAD_SECS: i64 = 2;
/// The polling job's period and cap (Zammad, Znuny/OTRS, GLPI: 5 minutes or
/// more; some cap each run).
const POLL_SECS: i64 = 300;
const POLL_CAP: i64 = 1000;
const POLL_HORIZON_SECS: i64 = 3600;

struct Args {
    n: usize,
    window: i64,
    rate: f64,
    dir: PathBuf,
    rebuild: bool,
    resync: bool,
    phase: Option<String>,
    db: Option<PathBuf>,
    reference: Option<i64>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        n: 1_000_000,
        window: 60,
        rate: 200.0,
        dir: std::env::temp_dir().join("outpost-million"),
        rebuild: false,
        resync: false,
        phase: None,
        db: None,
        reference: None,
    };
    let mut it = std::env::args().skip(1);
    let value = |it: &mut dyn Iterator<Item = String>, name: &str| {
        it.next()
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--window" => a.window = value(&mut it, "--window")?.parse()?,
            "--rate" => a.rate = value(&mut it, "--rate")?.parse()?,
            "--dir" => a.dir = value(&mut it, "--dir")?.into(),
            "--rebuild" => a.rebuild = true,
            "--resync" => a.resync = true,
            "--phase" => a.phase = Some(value(&mut it, "--phase")?),
            "--db" => a.db = Some(value(&mut it, "--db")?.into()),
            "--reference" => a.reference = Some(value(&mut it, "--reference")?.parse()?),
            s if s.starts_with("--") => {} // e.g. --bench from cargo
            s => a.n = s.parse()?,
        }
    }
    Ok(a)
}

/// A field of /proc/self/status in MiB (VmRSS, VmHWM).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) this process has used.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

/// A result line for the parent: `RESULT key value`.
fn result(key: &str, value: impl std::fmt::Display) {
    println!("RESULT {key} {value}");
}

/// The wall clock moved back so that it read `start` when made.
struct Shifted(Duration);

impl Clock for Shifted {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() - self.0
    }
}

fn policy_and_calendar() -> anyhow::Result<(
    outpost_server::sla::policy::Policy,
    outpost_server::sla::calendar::Calendar,
)> {
    let reg = Registry::default();
    let policy = reg.policy(None).clone();
    let calendar = reg
        .calendar(&[], None, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((policy, calendar))
}

const PRIORITIES: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

/// The span S over which N cases are opened so that about `rate` deadlines a
/// second come due just after it: with cases opened evenly, deadlines come
/// due at N / S times the mean number of a case's deadline offsets <= S.
fn choose_span(n: usize, rate: f64) -> anyhow::Result<(i64, f64)> {
    let (policy, calendar) = policy_and_calendar()?;
    let at = Utc::now();
    let mut offsets: Vec<Vec<i64>> = Vec::new();
    for p in PRIORITIES {
        let t = Timeline {
            opened_at: at,
            priority: p,
            changes: Vec::new(),
        };
        offsets.push(
            wanted_timers(&policy, &calendar, &t, at)
                .iter()
                .map(|(_, d)| (*d - at).num_seconds())
                .collect(),
        );
    }
    let max = offsets.iter().flatten().copied().max().unwrap_or(3600);
    let rate_at = |s: i64| {
        let c: usize = offsets
            .iter()
            .map(|o| o.iter().filter(|d| **d <= s).count())
            .sum();
        n as f64 * c as f64 / offsets.len() as f64 / s as f64
    };
    // The widest span that still gives the rate; else the best there is.
    let mut best = (max, rate_at(max));
    let mut s = max + 1;
    while s > 60 {
        s -= 1;
        let r = rate_at(s);
        if r >= rate {
            return Ok((s, r));
        }
        if r > best.1 {
            best = (s, r);
        }
    }
    Ok(best)
}

async fn build(a: &Args, db: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(
        &Database::Sqlite {
            path: db.to_path_buf(),
        },
        4,
    )
    .await?;
    let (policy, calendar) = policy_and_calendar()?;
    let reference = from_micros(to_micros(Utc::now()) / 1_000_000 * 1_000_000);
    let (span, rate) = choose_span(a.n, a.rate)?;
    eprintln!(
        "build: {} cases opened over {:.2} h before R; expect {rate:.0} deadlines/s after R",
        a.n,
        span as f64 / 3600.0
    );
    let step = span as f64 * 1e6 / a.n as f64;
    let (mut timers, mut pending) = (0usize, 0usize);
    let mut i0 = 0;
    while i0 < a.n {
        let i1 = (i0 + CHUNK).min(a.n);
        let mut tasks = tokio::task::JoinSet::new();
        for i in i0..i1 {
            let store = store.clone();
            let opened = reference - Duration::seconds(span)
                + Duration::microseconds((step * (i as f64 + 0.5)) as i64);
            let priority = PRIORITIES[i % 4];
            tasks.spawn(async move {
                let body = ActivityBody::Opened {
                    summary: format!("bench case {i}"),
                    priority,
                    channel: Channel::Phone,
                    case_type: CaseType::HardwareFault,
                };
                let entry = PendingEntry {
                    kind: body.kind(),
                    visibility: Visibility::Public.as_str(),
                    author_id: None,
                    author_name: "bench".into(),
                    at: opened,
                    body: serde_json::to_string(&body)?,
                    // As the server queues it: opening is an outbox event.
                    notify: outpost_server::notify::wants(&body, Visibility::Public),
                };
                let insert = CaseInsert {
                    organization_id: None,
                    contract_id: None,
                    device_id: None,
                    caller_name: "Bench Caller".into(),
                    caller_company: Some("Bench Ltd".into()),
                    caller_phone: Some("+49 30 1234567".into()),
                    caller_email: None,
                    caller_contract: None,
                    summary: format!("bench case {i}"),
                    details: "a case for the million-case benchmark".into(),
                    priority: priority.level(),
                    status: "new".into(),
                    case_type: "hardware_fault".into(),
                    vendor: None,
                    channel: "phone".into(),
                    assignee_id: None,
                    created_by: None,
                    created_at: opened,
                    agent_id: None,
                    fault_key: None,
                };
                let (id, _) = store.insert_case(&insert, &[entry]).await?;
                anyhow::Ok((id, opened, priority))
            });
        }
        let mut rows = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (id, opened, priority) = r??;
            let t = Timeline {
                opened_at: opened,
                priority,
                changes: Vec::new(),
            };
            for (kind, due) in wanted_timers(&policy, &calendar, &t, reference) {
                let fired = (due <= reference).then_some(due);
                pending += usize::from(fired.is_none());
                rows.push(ImportTimer {
                    owner: format!("case:{id}"),
                    kind,
                    due_at: due,
                    fired_at: fired,
                });
            }
        }
        timers += rows.len();
        store.import_timers(&rows, reference).await?;
        i0 = i1;
        if i0 % 100_000 == 0 || i0 == a.n {
            eprintln!(
                "build: {i0} cases, {timers} timers ({pending} pending) after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    store.mark_all_sla_synced().await?;
    let fp = engine::fingerprint(&Registry::default())?;
    store
        .set_meta(engine::RESYNC_KEY, &format!("{fp}\tdone"), reference)
        .await?;
    // The file alone must be the database: it is copied for each run.
    store.checkpoint().await?;
    store.close().await;
    let size = std::fs::metadata(db)?.len();
    result("reference", to_micros(reference));
    result(
        "build_secs",
        format!("{:.0}", started.elapsed().as_secs_f64()),
    );
    result("timers", timers);
    result("pending", pending);
    result("db_mib", format!("{:.0}", size as f64 / 1048576.0));
    Ok(())
}

async fn serve(a: &Args, db: &Path, reference: DateTime<Utc>) -> anyhow::Result<()> {
    let database = Database::Sqlite {
        path: db.to_path_buf(),
    };
    let start_at = reference - Duration::seconds(LEAD_SECS);
    let clock = Arc::new(Shifted(Utc::now() - start_at));
    if a.resync {
        // As after a configuration change: the last full resync was for
        // other settings.
        let s = Store::open(&database, 2).await?;
        s.set_meta(engine::RESYNC_KEY, "other settings\tdone", clock.now())
            .await?;
        s.close().await;
    }
    let cpu0 = cpu_secs();
    // What `outpost-server serve` does before it listens (16 connections is
    // the configuration's default).
    let t0 = Instant::now();
    let store = Store::open(&database, 16).await?;
    let opened = t0.elapsed();
    let cases = Cases::new(store.clone(), clock.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let feed = Engine::start(
        cases.clone(),
        outpost_server::sla::settings::SlaSettings::fixed(Registry::default()),
        Settings::default(),
        stopped,
        None,
    )
    .await?;
    let _cases = cases.with_change_feed(feed);
    let ready = t0.elapsed();
    let rss_ready = status_mib("VmRSS:");
    eprintln!(
        "serve: store open in {:.3} s, engine started at {:.3} s, {:.0} MiB resident",
        opened.as_secs_f64(),
        ready.as_secs_f64(),
        rss_ready
    );
    let end = reference + Duration::seconds(a.window);
    let mut rss_max = rss_ready;
    // Wait for the window to pass, and a little more for the last firings.
    while clock.now() < end + Duration::seconds(3) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        rss_max = rss_max.max(status_mib("VmRSS:"));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let progress = store.meta(engine::RESYNC_KEY).await?.unwrap_or_default();
    let _ = stop.send(true);
    let firings = store.timer_firings(reference, end).await?;
    let due = firings.len();
    let mut late: Vec<f64> = firings
        .iter()
        .filter_map(|(d, f)| f.map(|f| (f - *d).num_microseconds().unwrap_or(0) as f64 / 1e6))
        .collect();
    late.sort_by(|x, y| x.total_cmp(y));
    let early = late.iter().filter(|l| **l < 0.0).count();
    result("startup_secs", format!("{:.3}", ready.as_secs_f64()));
    result("store_open_secs", format!("{:.3}", opened.as_secs_f64()));
    result("rss_ready_mib", format!("{rss_ready:.0}"));
    result("rss_max_mib", format!("{rss_max:.0}"));
    result("hwm_mib", format!("{:.0}", status_mib("VmHWM:")));
    result("cpu_share", format!("{:.2}", cpu / wall));
    result("due", due);
    result("fired", late.len());
    result("early", early);
    result("rate", format!("{:.0}", due as f64 / a.window as f64));
    result("p50", format!("{:.3}", pct(&late, 0.5)));
    result("p99", format!("{:.3}", pct(&late, 0.99)));
    result(
        "max",
        format!("{:.3}", late.last().copied().unwrap_or(f64::NAN)),
    );
    result(
        "resync",
        progress.rsplit('\t').next().unwrap_or("").replace(' ', "_"),
    );
    store.close().await;
    Ok(())
}

async fn poll(db: &Path, reference: DateTime<Utc>) -> anyhow::Result<()> {
    let store = Store::open(
        &Database::Sqlite {
            path: db.to_path_buf(),
        },
        4,
    )
    .await?;
    let first = reference + Duration::seconds(POLL_SECS);
    // The query, timed (best of three: a warm cache favours polling).
    let timed = |limit: i64| {
        let store = store.clone();
        async move {
            let mut best = f64::MAX;
            let mut rows = 0;
            for _ in 0..3 {
                let t = Instant::now();
                rows = store.overdue_timers(first, limit).await?.len();
                best = best.min(t.elapsed().as_secs_f64());
            }
            anyhow::Ok((best, rows))
        }
    };
    let (q_all, rows_all) = timed(i64::MAX).await?;
    let (q_cap, rows_cap) = timed(POLL_CAP).await?;
    let horizon = reference + Duration::seconds(POLL_HORIZON_SECS);
    let dues: Vec<DateTime<Utc>> = store
        .timer_firings(reference, horizon)
        .await?
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    store.close().await;
    let n = dues.len();
    let polls: Vec<DateTime<Utc>> = (1..=POLL_HORIZON_SECS / POLL_SECS)
        .map(|k| reference + Duration::seconds(k * POLL_SECS))
        .collect();
    let secs = |d: Duration| d.num_microseconds().unwrap_or(0) as f64 / 1e6;
    // Uncapped: each deadline at the first poll at or after it.
    let mut all: Vec<f64> = Vec::with_capacity(n);
    for d in &dues {
        if let Some(p) = polls.iter().find(|p| *p >= d) {
            all.push(secs(*p - *d) + q_all);
        }
    }
    // Capped: each poll takes the POLL_CAP earliest deadlines waiting.
    let mut capped: Vec<f64> = Vec::new();
    let mut next = 0usize;
    for p in &polls {
        let mut taken = 0;
        while next < n && dues[next] <= *p && taken < POLL_CAP {
            capped.push(secs(*p - dues[next]) + q_cap);
            next += 1;
            taken += 1;
        }
    }
    let waiting = n - next;
    all.sort_by(|x, y| x.total_cmp(y));
    capped.sort_by(|x, y| x.total_cmp(y));
    // Deadlines never handled within the horizon count as later than it.
    let capped_pct = |p: f64| {
        let i = ((n.max(1) - 1) as f64 * p).round() as usize;
        capped.get(i).copied().unwrap_or(f64::INFINITY)
    };
    result("poll_deadlines", n);
    result("poll_query_all_secs", format!("{q_all:.3}"));
    result("poll_query_all_rows", rows_all);
    result("poll_query_cap_secs", format!("{q_cap:.4}"));
    result("poll_query_cap_rows", rows_cap);
    result("poll_all_p50", format!("{:.1}", pct(&all, 0.5)));
    result("poll_all_p99", format!("{:.1}", pct(&all, 0.99)));
    result(
        "poll_all_max",
        format!("{:.1}", all.last().copied().unwrap_or(f64::NAN)),
    );
    result("poll_cap_handled", capped.len());
    result("poll_cap_waiting", waiting);
    result("poll_cap_p50", format!("{:.1}", capped_pct(0.5)));
    result("poll_cap_p99", format!("{:.1}", capped_pct(0.99)));
    result(
        "poll_cap_max",
        if waiting > 0 {
            format!(">{POLL_HORIZON_SECS}")
        } else {
            format!("{:.1}", capped.last().copied().unwrap_or(f64::NAN))
        },
    );
    Ok(())
}

/// Run this program again for one phase; its RESULT lines as key/value.
fn child(
    phase: &str,
    a: &Args,
    db: &Path,
    reference: Option<i64>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg(a.n.to_string())
        .args(["--phase", phase, "--db"])
        .arg(db)
        .args([
            "--window",
            &a.window.to_string(),
            "--rate",
            &a.rate.to_string(),
        ]);
    if let Some(r) = reference {
        cmd.args(["--reference", &r.to_string()]);
    }
    if a.resync {
        cmd.arg("--resync");
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!("phase {phase} failed: {text}");
    }
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn get<'a>(r: &'a [(String, String)], k: &str) -> &'a str {
    r.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("?")
}

fn remove_db(path: &Path) {
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    if let Some(phase) = a.phase.as_deref() {
        let db =
            a.db.clone()
                .ok_or_else(|| anyhow::anyhow!("--db is required"))?;
        let reference = a.reference.map(from_micros);
        return match (phase, reference) {
            ("build", _) => build(&a, &db).await,
            ("serve", Some(r)) => serve(&a, &db, r).await,
            ("poll", Some(r)) => poll(&db, r).await,
            _ => anyhow::bail!("unknown phase {phase:?} or no --reference"),
        };
    }
    std::fs::create_dir_all(&a.dir)?;
    let pristine = a.dir.join(format!("million-{}.db", a.n));
    let info = a.dir.join(format!("million-{}.reference", a.n));
    let cached = std::fs::read_to_string(&info)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|_| pristine.exists() && !a.rebuild);
    let reference = match cached {
        Some(r) => {
            eprintln!("reusing {} (--rebuild to build anew)", pristine.display());
            r
        }
        None => {
            remove_db(&pristine);
            let _ = std::fs::remove_file(&info);
            let b = child("build", &a, &pristine, None)?;
            let r: i64 = get(&b, "reference").parse()?;
            std::fs::write(&info, r.to_string())?;
            println!(
                "built {} cases, {} timers ({} pending), {} MiB, in {} s",
                a.n,
                get(&b, "timers"),
                get(&b, "pending"),
                get(&b, "db_mib"),
                get(&b, "build_secs")
            );
            r
        }
    };
    let run = a.dir.join("run.db");
    remove_db(&run);
    for s in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{s}", pristine.display()));
        if from.exists() {
            std::fs::copy(&from, format!("{}{s}", run.display()))?;
        }
    }
    // Start cold: the copy leaves the file in the page cache; drop it (GNU
    // dd's nocache flag, for this file only).
    std::fs::File::open(&run)?.sync_all()?;
    let cold = Command::new("dd")
        .arg(format!("if={}", run.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let s = child("serve", &a, &run, Some(reference))?;
    remove_db(&run);
    let p = child("poll", &a, &pristine, Some(reference))?;
    println!();
    println!(
        "{} open cases on SQLite; window {} s; lateness = fired_at - due_at{}",
        a.n,
        a.window,
        if a.resync {
            "; full background resync under way (--resync)"
        } else {
            ""
        }
    );
    println!("| design | start-up s | RSS after start MiB | peak RSS MiB | due | fired | fires/s | p50 s | p99 s | max s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| Outpost timers | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        get(&s, "startup_secs"),
        get(&s, "rss_ready_mib"),
        get(&s, "hwm_mib"),
        get(&s, "due"),
        get(&s, "fired"),
        get(&s, "rate"),
        get(&s, "p50"),
        get(&s, "p99"),
        get(&s, "max")
    );
    println!(
        "| 5-min poll, no cap | - | - | - | {} | {} | - | {} | {} | {} |",
        get(&p, "poll_deadlines"),
        get(&p, "poll_deadlines"),
        get(&p, "poll_all_p50"),
        get(&p, "poll_all_p99"),
        get(&p, "poll_all_max")
    );
    println!(
        "| 5-min poll, cap {POLL_CAP} | - | - | - | {} | {} | - | {} | {} | {} |",
        get(&p, "poll_deadlines"),
        get(&p, "poll_cap_handled"),
        get(&p, "poll_cap_p50"),
        get(&p, "poll_cap_p99"),
        get(&p, "poll_cap_max")
    );
    println!();
    println!(
        "Outpost: {} page cache at start; store opened in {} s; CPU {} cores on average; none early: {}; resync state at the end: {}",
        if cold { "cold" } else { "warm (could not drop)" },
        get(&s, "store_open_secs"),
        get(&s, "cpu_share"),
        get(&s, "early") == "0",
        get(&s, "resync")
    );
    println!(
        "Polling (over the first hour after R): query at R + 5 min took {} s for {} rows uncapped, {} s capped at {POLL_CAP}; capped, {} deadlines still waiting after the last poll",
        get(&p, "poll_query_all_secs"),
        get(&p, "poll_query_all_rows"),
        get(&p, "poll_query_cap_secs"),
        get(&p, "poll_cap_waiting")
    );
    Ok(())
}
