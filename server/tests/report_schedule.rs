//! Scheduled service reports on a driven clock, on both backends, against a
//! real SMTP server (the aiosmtpd sink of `tests/peers`): the run's timer
//! sends the previous month's report once with the PDF attached and sets
//! the next run; a timer fired again, or a schedule set back to a period
//! already sent, sends nothing more; a deleted schedule's timer does
//! nothing.

use chrono::{Duration, TimeZone, Utc};
use outpost_server::auth::Principal;
use outpost_server::clock::{to_micros, ManualClock};
use outpost_server::reports::schedule::{Frequency, ScheduleRequest};
use outpost_server::reports::{Reports, Settings};
use outpost_server::sla::registry::Registry;
use outpost_server::sla::settings::SlaSettings;
use outpost_server::store::Store;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

#[macro_use]
mod common;
use common::TestDb as Db;

/// The SMTP sink, killed when dropped.
struct Sink {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    fn start() -> anyhow::Result<(Sink, u16)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("mail.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        anyhow::ensure!(
            line.trim() == "ready",
            "the SMTP sink did not start: {line:?}"
        );
        Ok((
            Sink {
                child,
                log,
                _dir: dir,
            },
            port,
        ))
    }

    fn mails(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

async fn principal(store: &Store, name: &str) -> anyhow::Result<Principal> {
    let u = store
        .user_by_name(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {name}"))?;
    Ok(Principal {
        user_id: u.id,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
        manager_level: u.manager_level,
        organization_id: u.organization_id,
    })
}

async fn once_per_period(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let start = Utc
        .with_ymd_and_hms(2026, 3, 14, 10, 0, 0)
        .single()
        .unwrap_or_default();
    let clock = ManualClock::new(start);
    outpost_server::demo::seed(&store, Arc::new(clock.clone())).await?;
    let (sink, port) = Sink::start()?;
    let notify: outpost_server::notify::settings::NotifySpec = toml::from_str(&format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"support@outpost.example\"\n"
    ))?;
    let notify = notify.build(None).map_err(anyhow::Error::msg)?;
    let reports = Reports::new(
        store.clone(),
        Arc::new(clock.clone()),
        SlaSettings::fixed(Registry::default()),
        Settings {
            chromium: Some("/usr/bin/chromium".into()),
            ..Settings::default()
        },
    )
    .with_mail(&notify)
    .map_err(anyhow::Error::msg)?;
    let tomas = principal(&store, "tomas").await?;
    let org = store
        .organizations(None, 10)
        .await?
        .into_iter()
        .find(|o| o.name == "Nordwind Logistik GmbH")
        .map(|o| o.id)
        .ok_or_else(|| anyhow::anyhow!("no demo organisation"))?;
    let req = ScheduleRequest {
        frequency: Frequency::Monthly,
        recipients: vec!["ops@nordwind.example".into()],
        first_run_at: None,
    };
    let view = reports.set_schedule(&tomas, org, &req).await?;
    let run = Utc
        .with_ymd_and_hms(2026, 4, 1, 6, 0, 0)
        .single()
        .unwrap_or_default();
    assert_eq!(view.next_run_at, run);
    assert_eq!(
        (view.next_from.to_string(), view.next_to.to_string()),
        ("2026-03-01".to_string(), "2026-03-31".to_string())
    );
    let owner = format!("report:{org}");
    let kind = format!("service_report:{}", to_micros(run));
    let timer = store
        .timer(&owner, &kind)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no timer for the run"))?;

    // The run: one e-mail with the PDF, and the next run set.
    clock.set(run + Duration::seconds(1));
    reports.fire(&timer).await.map_err(anyhow::Error::msg)?;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0]["subject"],
        "Service report Nordwind Logistik GmbH: 2026-03-01 to 2026-03-31"
    );
    assert_eq!(
        mails[0]["attachments"][0]["content_type"],
        "application/pdf"
    );
    let next = Utc
        .with_ymd_and_hms(2026, 5, 1, 6, 0, 0)
        .single()
        .unwrap_or_default();
    assert_eq!(reports.schedule(&tomas, org).await?.next_run_at, next);
    assert!(store
        .timer(&owner, &format!("service_report:{}", to_micros(next)))
        .await?
        .is_some());

    // Fired again (at least once delivery): nothing more.
    reports.fire(&timer).await.map_err(anyhow::Error::msg)?;
    assert_eq!(sink.mails().len(), 1);

    // Set back to the run already sent: it moves on without sending.
    clock.set(run - Duration::hours(1));
    let again = ScheduleRequest {
        first_run_at: Some(run),
        ..req.clone()
    };
    reports.set_schedule(&tomas, org, &again).await?;
    let timer = store
        .timer(&owner, &kind)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no timer for the run"))?;
    clock.set(run + Duration::seconds(1));
    reports.fire(&timer).await.map_err(anyhow::Error::msg)?;
    assert_eq!(sink.mails().len(), 1, "the period was sent already");
    assert_eq!(reports.schedule(&tomas, org).await?.next_run_at, next);

    // Deleted: its timers are gone, and a stale firing does nothing.
    reports.delete_schedule(&tomas, org).await?;
    let stale = store
        .timer(&owner, &format!("service_report:{}", to_micros(next)))
        .await?;
    assert!(stale.is_none(), "{stale:?}");
    reports.fire(&timer).await.map_err(anyhow::Error::msg)?;
    assert_eq!(sink.mails().len(), 1);
    Ok(())
}
both!(once_per_period);
