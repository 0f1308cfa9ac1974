//! The `check` command: poll every configured SNMP target once and report
//! each in one row of a table, so an installer sees at a glance which
//! devices answer and which credentials are wrong.

use std::fmt::Write as _;

use crate::config::AgentConfig;
use crate::snmp::poll::{poll_targets, TargetOutcome};

/// Polls every target of `config` once (with its `snmp.concurrency`).
pub async fn run(config: &AgentConfig) -> Vec<TargetOutcome> {
    poll_targets(&config.snmp.targets, config.snmp.concurrency).await
}

/// The table `check` prints: one header line and one line per target with
/// target, version, reachable, sysName, number of interfaces and entities,
/// time in milliseconds and the error, if any.
pub fn render(outcomes: &[TargetOutcome]) -> String {
    let header = [
        "TARGET",
        "VERSION",
        "REACHABLE",
        "SYSNAME",
        "INTERFACES",
        "ENTITIES",
        "TIME_MS",
        "ERROR",
    ];
    let rows: Vec<[String; 8]> = outcomes.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                // Writing to a String cannot fail.
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn row(outcome: &TargetOutcome) -> [String; 8] {
    let target = outcome.target.name.clone();
    let version = outcome.target.version_label().to_owned();
    let time = outcome.elapsed.as_millis().to_string();
    match &outcome.result {
        Ok(poll) => {
            let error = if poll.warnings.is_empty() {
                "-".to_owned()
            } else {
                format!("warnings: {}", poll.warnings.join("; "))
            };
            [
                target,
                version,
                "yes".to_owned(),
                dash_if_empty(&poll.inventory.sys_name),
                poll.interfaces.len().to_string(),
                poll.inventory.modules.len().to_string(),
                time,
                error,
            ]
        }
        Err(err) => [
            target,
            version,
            if err.is_unreachable() {
                "no"
            } else {
                "answers"
            }
            .to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            time,
            format!("{}: {err}", err.kind()),
        ],
    }
}

fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        // Keep the table one line per target whatever the device says.
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}
