//! The permission matrix: each role against each endpoint, over real HTTP;
//! and customer isolation: customer A never sees customer B's data, not even
//! by guessing case numbers.

use anyhow::{Context, Result};
use outpost_tests::{Backend, Server, World};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ROLES: [&str; 7] = [
    "admin",
    "dispatcher",
    "engineer",
    "expert",
    "rma_admin",
    "manager",
    "customer",
];

fn token<'a>(w: &'a World, role: &str) -> &'a str {
    match role {
        "admin" => &w.admin,
        "dispatcher" => &w.dispatcher,
        "engineer" => &w.engineer.1,
        "expert" => &w.expert.1,
        "rma_admin" => &w.rma,
        "manager" => &w.managers[0],
        _ => &w.customer_a,
    }
}

/// One endpoint: how to call it (given a fresh case of organisation A and a
/// unique suffix) and which roles may.
struct Op {
    name: &'static str,
    method: Method,
    path: fn(&World, &str) -> String,
    body: fn(&World, &str) -> Option<Value>,
    allowed: &'static [&'static str],
    needs_case: bool,
}

const ALL: &[&str] = &ROLES;
const STAFF: &[&str] = &[
    "admin",
    "dispatcher",
    "engineer",
    "expert",
    "rma_admin",
    "manager",
];
const DIRECTORY_WRITERS: &[&str] = &["admin", "dispatcher"];
const CASE_WORKERS: &[&str] = &["admin", "dispatcher", "engineer", "expert", "manager"];
const FIELD_WORKERS: &[&str] = &["admin", "dispatcher", "engineer", "expert"];

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "list cases",
            method: Method::GET,
            path: |_, _| "/api/v1/cases".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "open case",
            method: Method::POST,
            path: |_, _| "/api/v1/cases".into(),
            body: |w, _| {
                Some(
                    json!({ "caller": { "name": "X" }, "summary": "rbac", "priority": "P3", "device_id": w.device_a }),
                )
            },
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "read case",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}"),
            body: |_, _| None,
            allowed: ALL,
            needs_case: true,
        },
        Op {
            name: "sla report",
            method: Method::GET,
            path: |_, _| {
                "/api/v1/reports/sla?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".into()
            },
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "survey report",
            method: Method::GET,
            path: |_, _| {
                "/api/v1/reports/surveys?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".into()
            },
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "case notifications",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/notifications"),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: true,
        },
        Op {
            name: "my alerts",
            method: Method::GET,
            path: |_, _| "/api/v1/alerts".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "everyone's alerts",
            method: Method::GET,
            path: |_, _| "/api/v1/alerts?all=true".into(),
            body: |_, _| None,
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "fault report",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/fault-report"),
            body: |_, _| Some(json!({ "cause": "c", "actions": "a", "prevention": "p" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "enrollment token",
            method: Method::POST,
            path: |_, _| "/api/v1/enrollment-tokens".into(),
            body: |w, _| Some(json!({ "organization_id": w.org_a })),
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "list agents",
            method: Method::GET,
            path: |_, _| "/api/v1/agents".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "topology",
            method: Method::GET,
            path: |w, _| format!("/api/v1/organizations/{}/topology", w.org_a),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list sla policies",
            method: Method::GET,
            path: |_, _| "/api/v1/sla/policies".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "put sla calendar",
            method: Method::PUT,
            path: |_, _| "/api/v1/sla/calendars/rbac-cal".into(),
            body: |_, _| Some(json!({ "timezone": "UTC", "preset": "5x8" })),
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "diagnosis",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/diagnosis"),
            body: |_, _| Some(json!({ "summary": "cause" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "sla clocks",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/sla"),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: true,
        },
        Op {
            name: "read history",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/activities"),
            body: |_, _| None,
            allowed: ALL,
            needs_case: true,
        },
        Op {
            name: "public note",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/notes"),
            body: |_, _| Some(json!({ "text": "hello", "visibility": "public" })),
            allowed: ALL,
            needs_case: true,
        },
        Op {
            name: "internal note",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/notes"),
            body: |_, _| Some(json!({ "text": "psst", "visibility": "internal" })),
            allowed: STAFF,
            needs_case: true,
        },
        Op {
            name: "record call",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/calls"),
            body: |_, _| {
                Some(
                    json!({ "direction": "outbound", "party": "Customer", "summary": "called back" }),
                )
            },
            allowed: STAFF,
            needs_case: true,
        },
        Op {
            name: "field visit",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/field-visits"),
            body: |_, _| {
                Some(
                    json!({ "engineer": "E", "arrived_at": "2026-01-01T10:00:00Z", "work_done": "swapped PSU" }),
                )
            },
            allowed: &["admin", "dispatcher", "engineer", "expert"],
            needs_case: true,
        },
        Op {
            name: "change status",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/status"),
            body: |_, _| Some(json!({ "status": "resolved", "reason": "answered on the phone" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "change priority",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/priority"),
            body: |_, _| Some(json!({ "priority": "P1", "reason": "business down" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "classify",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/classification"),
            body: |_, _| Some(json!({ "case_type": "software_fault" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "assign",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/assign"),
            body: |w, _| Some(json!({ "assignee_id": w.engineer2.0 })),
            allowed: &["admin", "dispatcher", "manager"],
            needs_case: true,
        },
        Op {
            name: "take over",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/take-over"),
            body: |_, _| Some(json!({})),
            allowed: &["engineer", "expert"],
            needs_case: true,
        },
        Op {
            name: "create organization",
            method: Method::POST,
            path: |_, _| "/api/v1/organizations".into(),
            body: |_, u| {
                Some(json!({ "customer_code": format!("C{u}"), "name": format!("Org {u}") }))
            },
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "create site",
            method: Method::POST,
            path: |_, _| "/api/v1/sites".into(),
            body: |w, u| Some(json!({ "organization_id": w.org_a, "name": format!("Site {u}") })),
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "create project",
            method: Method::POST,
            path: |_, _| "/api/v1/projects".into(),
            body: |w, u| {
                Some(json!({ "organization_id": w.org_a, "name": format!("Project {u}") }))
            },
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "create device",
            method: Method::POST,
            path: |_, _| "/api/v1/devices".into(),
            body: |w, u| {
                Some(
                    json!({ "organization_id": w.org_a, "name": format!("dev-{u}"), "device_type": "router", "vendor": "Cisco", "model": "ISR", "serial": format!("S{u}") }),
                )
            },
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "create contract",
            method: Method::POST,
            path: |_, _| "/api/v1/contracts".into(),
            body: |w, u| {
                Some(
                    json!({ "organization_id": w.org_a, "number": format!("K{u}"), "starts_on": "2026-01-01", "ends_on": "2026-12-31", "coverage": "5x8" }),
                )
            },
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "list organizations",
            method: Method::GET,
            path: |_, _| "/api/v1/organizations".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "dossier",
            method: Method::GET,
            path: |w, _| format!("/api/v1/organizations/{}", w.org_a),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "lookup",
            method: Method::GET,
            path: |_, _| "/api/v1/lookup?q=A100".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "incoming call",
            method: Method::POST,
            path: |_, _| "/api/v1/calls".into(),
            body: |_, _| Some(json!({ "caller": "+49 40 5550 0000" })),
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "list sites",
            method: Method::GET,
            path: |_, _| "/api/v1/sites".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list projects",
            method: Method::GET,
            path: |_, _| "/api/v1/projects".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list contracts",
            method: Method::GET,
            path: |_, _| "/api/v1/contracts".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list devices",
            method: Method::GET,
            path: |_, _| "/api/v1/devices".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "get device",
            method: Method::GET,
            path: |w, _| format!("/api/v1/devices/{}", w.device_a),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "me",
            method: Method::GET,
            path: |_, _| "/api/v1/me".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "create user",
            method: Method::POST,
            path: |_, _| "/api/v1/users".into(),
            body: |_, u| {
                Some(
                    json!({ "username": format!("u{u}"), "display_name": "U", "role": "engineer" }),
                )
            },
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "list users",
            method: Method::GET,
            path: |_, _| "/api/v1/users".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "token for another user",
            method: Method::POST,
            path: |w, _| format!("/api/v1/users/{}/tokens", w.engineer2.0),
            body: |_, _| Some(json!({ "name": "x" })),
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "password for another user",
            method: Method::PUT,
            path: |w, _| format!("/api/v1/users/{}/password", w.engineer2.0),
            body: |_, _| Some(json!({ "password": "a long enough password" })),
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "ssh key for another user",
            method: Method::POST,
            path: |w, _| format!("/api/v1/users/{}/ssh-keys", w.engineer2.0),
            body: |_, _| {
                Some(
                    json!({ "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }),
                )
            },
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "list remote sessions",
            method: Method::GET,
            path: |_, _| "/api/v1/remote-sessions?live=true".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "relay attempt log",
            method: Method::GET,
            path: |_, _| "/api/v1/remote-attempts".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "server replicas",
            method: Method::GET,
            path: |_, _| "/api/v1/replicas".into(),
            body: |_, _| None,
            allowed: &["admin"],
            needs_case: false,
        },
        Op {
            name: "escalate to expert",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/experts"),
            body: |w, _| Some(json!({ "user_id": w.expert.0, "reason": "needs a second look" })),
            allowed: CASE_WORKERS,
            needs_case: true,
        },
        Op {
            name: "approve remote login",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/remote-approvals"),
            body: |_, _| Some(json!({ "reason": "let them in", "valid_for": "1h" })),
            allowed: &["customer"],
            needs_case: true,
        },
        Op {
            name: "list releases",
            method: Method::GET,
            path: |_, _| "/api/v1/releases".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "list campaigns",
            method: Method::GET,
            path: |_, _| "/api/v1/campaigns".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "applicable upgrades",
            method: Method::GET,
            path: |_, _| "/api/v1/upgrades".into(),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "device upgrades",
            method: Method::GET,
            path: |w, _| format!("/api/v1/devices/{}/upgrades", w.device_a),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list parts",
            method: Method::GET,
            path: |_, _| "/api/v1/parts".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "stock ledger",
            method: Method::GET,
            path: |_, _| "/api/v1/stock/ledger".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "spare units",
            method: Method::GET,
            path: |_, _| "/api/v1/stock/units".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "schedule visit",
            method: Method::POST,
            path: |_, n| format!("/api/v1/cases/{n}/visits"),
            body: |w, _| {
                Some(json!({ "engineer_id": w.engineer.0, "address": "Gate 1",
                             "scheduled_at": chrono::Utc::now() + chrono::Duration::hours(2) }))
            },
            allowed: FIELD_WORKERS,
            needs_case: true,
        },
        Op {
            name: "case visits",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/visits"),
            body: |_, _| None,
            allowed: ALL,
            needs_case: true,
        },
        Op {
            name: "list visits",
            method: Method::GET,
            path: |_, _| "/api/v1/visits".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            // The world's first contract (customer A's).
            name: "inspection schedule",
            method: Method::POST,
            path: |_, _| "/api/v1/inspection-schedules".into(),
            body: |_, u| {
                Some(
                    json!({ "contract_id": 1, "name": format!("Quarterly {u}"), "interval_days": 91,
                             "first_due": "2026-01-01", "checklist": ["Fans"] }),
                )
            },
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "inspection schedules",
            method: Method::GET,
            path: |_, _| "/api/v1/inspection-schedules?within_days=30".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            // Each recording moves schedule 1 on, so every allowed role
            // records the next one.
            name: "record inspection",
            method: Method::POST,
            path: |_, _| "/api/v1/inspection-schedules/1/inspections".into(),
            body: |w, _| {
                Some(
                    json!({ "engineer_id": w.engineer.0, "items": [{ "item": "Fans", "result": "ok" }] }),
                )
            },
            allowed: FIELD_WORKERS,
            needs_case: false,
        },
        Op {
            name: "list inspections",
            method: Method::GET,
            path: |_, _| "/api/v1/inspections".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "list shipments",
            method: Method::GET,
            path: |_, _| "/api/v1/shipments?overdue=true".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "create warehouse",
            method: Method::POST,
            path: |_, _| "/api/v1/warehouses".into(),
            body: |_, u| Some(json!({ "name": format!("WH {u}"), "address": "Hafenstr. 1" })),
            allowed: &["admin", "rma_admin"],
            needs_case: false,
        },
        Op {
            name: "kb search",
            method: Method::GET,
            path: |_, _| "/api/v1/kb/search?q=switch+power".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "kb articles",
            method: Method::GET,
            path: |_, _| "/api/v1/kb/articles?state=published".into(),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: false,
        },
        Op {
            name: "case suggestions",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/suggestions"),
            body: |_, _| None,
            allowed: STAFF,
            needs_case: true,
        },
        Op {
            name: "service report",
            method: Method::GET,
            path: |w, _| format!("/api/v1/organizations/{}/service-report", w.org_a),
            body: |_, _| None,
            allowed: ALL,
            needs_case: false,
        },
        Op {
            name: "list kept mail",
            method: Method::GET,
            path: |_, _| "/api/v1/mail/messages?outcome=all".into(),
            body: |_, _| None,
            allowed: DIRECTORY_WRITERS,
            needs_case: false,
        },
        Op {
            name: "list attachments",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/attachments"),
            body: |_, _| None,
            allowed: ALL,
            needs_case: true,
        },
        Op {
            name: "list remote approvals",
            method: Method::GET,
            path: |_, n| format!("/api/v1/cases/{n}/remote-approvals"),
            body: |_, _| None,
            allowed: ALL,
            needs_case: true,
        },
    ]
}

#[tokio::test]
async fn every_role_against_every_endpoint() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let mut n = 0;
    let mut failures = Vec::new();
    for op in ops() {
        for role in ROLES {
            n += 1;
            let unique = format!("{n}");
            let number = if op.needs_case {
                w.open_case(&s, false, op.name).await?
            } else {
                String::new()
            };
            let path = (op.path)(&w, &number);
            let (st, v) = s
                .call(
                    op.method.clone(),
                    &path,
                    token(&w, role),
                    (op.body)(&w, &unique),
                )
                .await?;
            let allowed = op.allowed.contains(&role);
            let ok = if allowed {
                st.is_success()
            } else {
                st == StatusCode::FORBIDDEN
            };
            if !ok {
                failures.push(format!(
                    "{role:>10} {:<24} {} {path} -> {st} {v}",
                    op.name, op.method
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix violations:\n{}",
        failures.join("\n")
    );
    // Own tokens and keys: everybody may manage their own.
    let (st, v) = s.get("/api/v1/me", &w.engineer.1).await?;
    assert_eq!(st, 200);
    let me = v["id"].as_i64().context("id")?;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g eng@laptop";
    let k = s
        .post_ok(
            &format!("/api/v1/users/{me}/ssh-keys"),
            &w.engineer.1,
            json!({ "public_key": key }),
        )
        .await?;
    assert!(k["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .starts_with("SHA256:"));
    let t = s
        .post_ok(
            &format!("/api/v1/users/{me}/tokens"),
            &w.engineer.1,
            json!({ "name": "laptop" }),
        )
        .await?;
    let new_token = t["token"].as_str().context("token")?;
    assert_eq!(s.get("/api/v1/me", new_token).await?.0, 200);
    let tid = t["id"].as_i64().context("token id")?;
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{me}/tokens/{tid}"),
            &w.engineer.1,
            None,
        )
        .await?;
    assert_eq!(st, 204);
    assert_eq!(
        s.get("/api/v1/me", new_token).await?.0,
        401,
        "a revoked token is refused at once"
    );
    Ok(())
}

/// Visit steps by role: each role tries to check in a fresh visit.
#[tokio::test]
async fn visit_steps_by_role() -> Result<()> {
    let s = Server::start(Backend::Sqlite).await?;
    let w = World::build(&s).await?;
    let mut failures = Vec::new();
    for role in ROLES {
        let number = w.open_case(&s, false, "visit steps").await?;
        let v = s
            .post_ok(
                &format!("/api/v1/cases/{number}/visits"),
                &w.dispatcher,
                json!({ "engineer_id": w.engineer.0, "address": "Gate 1",
                        "scheduled_at": chrono::Utc::now() + chrono::Duration::hours(1) }),
            )
            .await?;
        let id = v["id"].as_i64().context("visit id")?;
        let (st, v) = s
            .post(
                &format!("/api/v1/visits/{id}/check-in"),
                token(&w, role),
                json!({}),
            )
            .await?;
        let ok = if FIELD_WORKERS.contains(&role) {
            st.is_success()
        } else {
            st == StatusCode::FORBIDDEN
        };
        if !ok {
            failures.push(format!("{role}: check-in -> {st} {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

async fn isolation(backend: Backend) -> Result<()> {
    let s = Server::start(backend).await?;
    let w = World::build(&s).await?;
    let mut a_cases = Vec::new();
    let mut b_cases = Vec::new();
    for i in 0..4 {
        a_cases.push(w.open_case(&s, false, &format!("A case {i}")).await?);
        b_cases.push(w.open_case(&s, true, &format!("B case {i}")).await?);
    }
    // An internal note on A's case is hidden from customer A.
    s.post_ok(
        &format!("/api/v1/cases/{}/notes", a_cases[0]),
        &w.engineer.1,
        json!({ "text": "internal only", "visibility": "internal" }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{}/notes", a_cases[0]),
        &w.engineer.1,
        json!({ "text": "for the customer", "visibility": "public" }),
    )
    .await?;
    let (_, h) = s
        .get(
            &format!("/api/v1/cases/{}/activities", a_cases[0]),
            &w.customer_a,
        )
        .await?;
    let texts: Vec<String> = h
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(texts, vec!["for the customer".to_string()]);
    assert!(h
        .as_array()
        .is_some_and(|a| a.iter().all(|e| e["visibility"] == "public")));

    // Listing shows only their own organisation's cases.
    let (_, page) = s.get("/api/v1/cases?limit=200", &w.customer_a).await?;
    let listed: Vec<String> = page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["number"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|n| a_cases.contains(n)));

    // Guessing: every number that exists, and some that do not.
    let year = a_cases[0].split('-').nth(1).unwrap_or("2026").to_string();
    for i in 1..=12 {
        let number = format!("C-{year}-{i:06}");
        let (st, _) = s
            .get(&format!("/api/v1/cases/{number}"), &w.customer_a)
            .await?;
        let expected = if a_cases.contains(&number) { 200 } else { 404 };
        assert_eq!(st, expected, "customer A reading {number}");
    }
    for number in &b_cases {
        for (method, path, body) in [
            (Method::GET, format!("/api/v1/cases/{number}"), None),
            (
                Method::GET,
                format!("/api/v1/cases/{number}/activities"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/cases/{number}/notes"),
                Some(json!({ "text": "let me in" })),
            ),
            (
                Method::POST,
                format!("/api/v1/cases/{number}/status"),
                Some(json!({ "status": "closed" })),
            ),
        ] {
            let (st, v) = s.call(method, &path, &w.customer_a, body).await?;
            assert_eq!(st, 404, "customer A on {path}: {v}");
        }
    }
    for path in [
        format!("/api/v1/organizations/{}", w.org_b),
        format!("/api/v1/devices/{}", w.device_b),
        format!("/api/v1/cases?organization_id={}", w.org_b),
        format!("/api/v1/sites?organization_id={}", w.org_b),
        format!("/api/v1/contracts?organization_id={}", w.org_b),
        "/api/v1/contracts/2".to_string(),
    ] {
        let (st, v) = s.get(&path, &w.customer_a).await?;
        assert_eq!(st, 404, "customer A on {path}: {v}");
    }
    for path in [
        "/api/v1/organizations",
        "/api/v1/devices",
        "/api/v1/contracts",
        "/api/v1/sites",
        "/api/v1/projects",
    ] {
        let (_, v) = s.get(path, &w.customer_a).await?;
        let text = v.to_string();
        assert!(!text.contains("B200"), "{path} leaks customer B: {text}");
    }
    // A customer cannot open a case on another customer's device or contract.
    let (st, v) = s
        .post("/api/v1/cases", &w.customer_a, json!({ "caller": { "name": "X" }, "summary": "s", "priority": "P3", "device_id": w.device_b }))
        .await?;
    assert_eq!(st, 422, "{v}");
    let (st, v) = s
        .post("/api/v1/cases", &w.customer_a, json!({ "caller": { "name": "X" }, "summary": "s", "priority": "P3", "organization_id": w.org_b }))
        .await?;
    assert_eq!(st, 422, "{v}");
    let (st, v) = s
        .post("/api/v1/cases", &w.customer_a, json!({ "caller": { "name": "X" }, "summary": "s", "priority": "P3", "contract": "K-B200" }))
        .await?;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "no hint that B's contract exists: {v}"
    );
    // Customers may close a resolved case and reopen it, nothing else.
    let n = &a_cases[1];
    let (st, _) = s
        .post(
            &format!("/api/v1/cases/{n}/status"),
            &w.customer_a,
            json!({ "status": "resolved", "reason": "x" }),
        )
        .await?;
    assert_eq!(st, 403);
    s.post_ok(
        &format!("/api/v1/cases/{n}/status"),
        &w.engineer.1,
        json!({ "status": "resolved", "reason": "fixed" }),
    )
    .await?;
    s.post_ok(
        &format!("/api/v1/cases/{n}/status"),
        &w.customer_a,
        json!({ "status": "reopened", "reason": "still broken" }),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn customers_are_isolated_sqlite() -> Result<()> {
    isolation(Backend::Sqlite).await
}

#[tokio::test]
async fn customers_are_isolated_postgres() -> Result<()> {
    isolation(Backend::Postgres).await
}
