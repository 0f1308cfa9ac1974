//! `outpost-server demo`: a realistic demo customer, seeded once through the
//! same domain code the API uses (so every history chain is genuine), with
//! case timelines spread over the past days.

use chrono::{Duration, Utc};
use std::sync::Arc;

use crate::auth::{generate_token, hash_token, Principal, Role};
use crate::cases::*;
use crate::clock::{Clock, ManualClock};
use crate::directory::*;
use crate::error::Result;
use crate::sla::policy::Span;
use crate::store::Store;

const MAIN_CODE: &str = "10042";

/// name, type, vendor, model, serial, firmware, site id, warranty end
type DemoDevice<'a> = (
    &'a str,
    DeviceType,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i64,
    &'a String,
);

/// (username, display name, role, manager level, e-mail, mobile)
type Staff = (&'static str, &'static str, Role, Option<i64>, &'static str);

const STAFF: &[Staff] = &[
    ("admin", "Ada Admin", Role::Admin, None, "+49 40 5550 9000"),
    (
        "dana",
        "Dana Dispatcher",
        Role::Dispatcher,
        None,
        "+49 40 5550 9001",
    ),
    (
        "erik",
        "Erik Engineer",
        Role::Engineer,
        None,
        "+49 40 5550 9002",
    ),
    (
        "emma",
        "Emma Engineer",
        Role::Engineer,
        None,
        "+49 40 5550 9003",
    ),
    (
        "xavier",
        "Xavier Expert",
        Role::Expert,
        None,
        "+49 40 5550 9004",
    ),
    ("rita", "Rita RMA", Role::RmaAdmin, None, "+49 40 5550 9005"),
    (
        "mona",
        "Mona Response-Center",
        Role::Manager,
        Some(1),
        "+49 40 5550 9011",
    ),
    (
        "tomas",
        "Tomas Technical",
        Role::Manager,
        Some(2),
        "+49 40 5550 9012",
    ),
    (
        "celia",
        "Celia Technical-Center",
        Role::Manager,
        Some(3),
        "+49 40 5550 9013",
    ),
    (
        "ivan",
        "Ivan Integration",
        Role::Manager,
        Some(4),
        "+49 40 5550 9014",
    ),
    (
        "greta",
        "Greta Integration-GM",
        Role::Manager,
        Some(5),
        "+49 40 5550 9015",
    ),
];

/// Seed (if not yet seeded) and issue fresh tokens for every demo user.
/// Returns (username, role description, token).
pub async fn seed(
    store: &Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let seeded = store
        .lookup(MAIN_CODE, 1)
        .await?
        .into_iter()
        .any(|m| m.matched_by == "customer_code");
    if !seeded {
        seed_data(store, clock.now()).await?;
        tracing::info!("demo data seeded");
    }
    let mut out = Vec::new();
    let mut names: Vec<&str> = STAFF.iter().map(|s| s.0).collect();
    names.extend(["jana", "hank"]);
    for name in names {
        let Some(u) = store.user_by_name(name).await? else {
            continue;
        };
        store
            .revoke_tokens(u.id, None, Some("demo"), clock.now())
            .await?;
        let token = generate_token();
        store
            .insert_token(u.id, "demo", &hash_token(&token), clock.now())
            .await?;
        let role = match (u.role, u.manager_level) {
            (Role::Manager, Some(l)) => format!(
                "manager L{l} ({})",
                MANAGER_LEVELS
                    .get((l - 1) as usize)
                    .copied()
                    .unwrap_or("manager")
            ),
            (Role::Customer, _) => "customer".to_string(),
            (r, _) => r.to_string(),
        };
        out.push((u.username, role, token));
    }
    Ok(out)
}

fn principal(u: &User) -> Principal {
    Principal {
        user_id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role,
        manager_level: u.manager_level,
        organization_id: u.organization_id,
    }
}

async fn seed_data(store: &Store, now: chrono::DateTime<Utc>) -> Result<()> {
    let start = now - Duration::days(10);
    let org = store
        .insert_organization(
            &NewOrganization {
                customer_code: MAIN_CODE.into(),
                name: "Nordwind Logistik GmbH".into(),
                phone: Some("+49 40 5550 1000".into()),
                email: Some("it-support@nordwind.example".into()),
                address: Some("Am Sandtorkai 12, 20457 Hamburg".into()),
                notes: Some("Freight forwarder; 24x7 warehouse operations. Core network on Cisco, branches on Huawei.".into()),
            }
            .validate()?,
            start,
        )
        .await?;
    let other = store
        .insert_organization(
            &NewOrganization {
                customer_code: "10077".into(),
                name: "Harbor Health Clinics".into(),
                phone: Some("+49 421 5550 2000".into()),
                email: Some("noc@harborhealth.example".into()),
                address: Some("Schlachte 3, 28195 Bremen".into()),
                notes: None,
            }
            .validate()?,
            start,
        )
        .await?;
    let hq = store
        .insert_site(
            &NewSite {
                organization_id: org.id,
                name: "Hamburg HQ".into(),
                address: Some("Am Sandtorkai 12, Hamburg".into()),
                timezone: Some("Europe/Berlin".into()),
            }
            .validate()?,
            start,
        )
        .await?;
    let dc = store
        .insert_site(
            &NewSite {
                organization_id: org.id,
                name: "Bremen Distribution Center".into(),
                address: Some("Hafenstrasse 40, Bremen".into()),
                timezone: Some("Europe/Berlin".into()),
            }
            .validate()?,
            start,
        )
        .await?;
    let clinic = store
        .insert_site(
            &NewSite {
                organization_id: other.id,
                name: "Clinic North".into(),
                address: None,
                timezone: Some("Europe/Berlin".into()),
            }
            .validate()?,
            start,
        )
        .await?;
    let project = store
        .insert_project(
            &NewProject {
                organization_id: org.id,
                name: "Core network refresh 2026".into(),
                description: Some(
                    "Replace core and distribution switches at HQ; new WAN routers for the DC."
                        .into(),
                ),
            }
            .validate()?,
            start,
        )
        .await?;
    for (side, name, role, phone, email) in [
        (
            Side::Customer,
            "Jana Vogt",
            "network lead",
            "+49 40 5550 1042",
            "jana.vogt@nordwind.example",
        ),
        (
            Side::Customer,
            "Paul Brandt",
            "IT operations manager",
            "+49 40 5550 1043",
            "paul.brandt@nordwind.example",
        ),
        (
            Side::Vendor,
            "Sofia Marquez",
            "account manager",
            "+49 40 5550 9100",
            "sofia.marquez@outpost.example",
        ),
        (
            Side::Vendor,
            "Erik Engineer",
            "project engineer",
            "+49 40 5550 9002",
            "erik@outpost.example",
        ),
    ] {
        store
            .insert_participant(
                project.id,
                &NewParticipant {
                    side,
                    name: name.into(),
                    role: role.into(),
                    phone: Some(phone.into()),
                    email: Some(email.into()),
                }
                .validate()?,
                start,
            )
            .await?;
    }
    let today = now.date_naive();
    let in_2y = (today + Duration::days(730)).format("%Y-%m-%d").to_string();
    let expired = (today - Duration::days(30)).format("%Y-%m-%d").to_string();
    let devices: [DemoDevice; 12] = [
        (
            "core-sw-1",
            DeviceType::Switch,
            "Cisco",
            "C9300-48P",
            "FOC2231X0A1",
            "17.9.4a",
            hq.id,
            &in_2y,
        ),
        (
            "core-sw-2",
            DeviceType::Switch,
            "Cisco",
            "C9300-48P",
            "FOC2231X0A2",
            "17.9.4a",
            hq.id,
            &in_2y,
        ),
        (
            "dist-sw-1",
            DeviceType::Switch,
            "Cisco",
            "C9200L-24T",
            "JAE2419B11C",
            "17.6.5",
            hq.id,
            &in_2y,
        ),
        (
            "dist-sw-2",
            DeviceType::Switch,
            "Cisco",
            "C9200L-24T",
            "JAE2419B11D",
            "17.6.5",
            hq.id,
            &expired,
        ),
        (
            "wan-rtr-1",
            DeviceType::Router,
            "Cisco",
            "ISR4451-X",
            "FGL2204A0QZ",
            "17.6.6a",
            hq.id,
            &in_2y,
        ),
        (
            "fw-1",
            DeviceType::Firewall,
            "Cisco",
            "FPR-2130",
            "JAD2233025M",
            "7.2.5",
            hq.id,
            &in_2y,
        ),
        (
            "dc-sw-1",
            DeviceType::Switch,
            "Huawei",
            "S5735-L48T4X",
            "2102352XBN10L9000123",
            "V200R022C00SPC500",
            dc.id,
            &in_2y,
        ),
        (
            "dc-sw-2",
            DeviceType::Switch,
            "Huawei",
            "S5735-L48T4X",
            "2102352XBN10L9000124",
            "V200R022C00SPC500",
            dc.id,
            &in_2y,
        ),
        (
            "dc-sw-3",
            DeviceType::Switch,
            "Huawei",
            "S5735-L24T4X",
            "2102352XBN10L9000311",
            "V200R021C10SPC600",
            dc.id,
            &expired,
        ),
        (
            "dc-rtr-1",
            DeviceType::Router,
            "Huawei",
            "AR6120",
            "2102313KTD10M3000087",
            "V300R022C00SPC100",
            dc.id,
            &in_2y,
        ),
        (
            "dc-ap-1",
            DeviceType::AccessPoint,
            "Huawei",
            "AirEngine 5761-11",
            "2102313YPS10M5000412",
            "V200R022C00",
            dc.id,
            &in_2y,
        ),
        (
            "dc-ups-1",
            DeviceType::Ups,
            "Huawei",
            "UPS2000-A-3KTTL",
            "2102312FBP10M7000058",
            "V100R001C02",
            dc.id,
            &expired,
        ),
    ];
    let mut ids = Vec::new();
    for (name, t, vendor, model, serial, fw, site, warranty) in devices {
        let d = store
            .insert_device(
                &NewDevice {
                    organization_id: org.id,
                    site_id: Some(site),
                    name: name.into(),
                    device_type: t,
                    vendor: vendor.into(),
                    model: model.into(),
                    serial: serial.into(),
                    firmware_version: Some(fw.into()),
                    warranty_end: Some(warranty.clone()),
                }
                .validate()?,
                start,
            )
            .await?;
        ids.push(d.id);
    }
    let clinic_sw = store
        .insert_device(
            &NewDevice {
                organization_id: other.id,
                site_id: Some(clinic.id),
                name: "cn-sw-1".into(),
                device_type: DeviceType::Switch,
                vendor: "Cisco".into(),
                model: "C9200L-24T".into(),
                serial: "JAE2419B99Z".into(),
                firmware_version: Some("17.6.5".into()),
                warranty_end: Some(in_2y.clone()),
            }
            .validate()?,
            start,
        )
        .await?;
    let year_start = format!("{}-01-01", today.format("%Y"));
    let year_end = format!("{}-12-31", today.format("%Y"));
    for (number, coverage, from, to, devs, desc) in [
        ("NW-24x7-001", Coverage::H24x7, year_start.as_str(), year_end.as_str(), ids[..6].to_vec(), "Core network: 7x24x365, response 30 min P1/P2, on site within 12 h, repair within 48 h."),
        ("NW-5x8-002", Coverage::H5x8, year_start.as_str(), year_end.as_str(), ids[6..].to_vec(), "Distribution center: Mon-Fri 09:00-17:00, next-business-day parts."),
        ("NW-LEGACY-2024", Coverage::H5x8, "2024-01-01", "2024-12-31", vec![ids[3]], "Expired legacy contract."),
    ] {
        store
            .insert_contract(
                &NewContract { organization_id: org.id, number: number.into(), starts_on: from.into(), ends_on: to.into(), coverage, sla_policy: None, calendar: None, description: Some(desc.into()), remote_access_approval: false,
                    // The core contract's promises (its description says them).
                    onsite_within: (coverage == Coverage::H24x7).then(|| Span::hours(12)),
                    repair_within: (coverage == Coverage::H24x7).then(|| Span::hours(48)),
                    device_ids: devs }.validate()?,
                start,
            )
            .await?;
    }
    store
        .insert_contract(
            &NewContract {
                organization_id: other.id,
                number: "HH-7x8-001".into(),
                starts_on: year_start.clone(),
                ends_on: year_end.clone(),
                coverage: Coverage::H7x8,
                sla_policy: None,
                calendar: None,
                description: None,
                remote_access_approval: false,
                onsite_within: None,
                repair_within: None,
                device_ids: vec![clinic_sw.id],
            }
            .validate()?,
            start,
        )
        .await?;

    let mut users = std::collections::HashMap::new();
    for (username, name, role, level, mobile) in STAFF {
        let u = store
            .insert_user(
                &NewUser {
                    username: (*username).into(),
                    display_name: (*name).into(),
                    email: Some(format!("{username}@outpost.example")),
                    mobile: Some((*mobile).into()),
                    role: *role,
                    manager_level: *level,
                    organization_id: None,
                    quiet_hours: None,
                    timezone: None,
                }
                .validate()?,
                start,
            )
            .await?;
        users.insert(*username, u);
    }
    for (username, name, org_id, mobile) in [
        ("jana", "Jana Vogt", org.id, "+49 40 5550 1042"),
        ("hank", "Hank Harbor", other.id, "+49 421 5550 2042"),
    ] {
        let u = store
            .insert_user(
                &NewUser {
                    username: username.into(),
                    display_name: name.into(),
                    email: Some(format!("{username}@customer.example")),
                    mobile: Some(mobile.into()),
                    role: Role::Customer,
                    manager_level: None,
                    organization_id: Some(org_id),
                    quiet_hours: None,
                    timezone: None,
                }
                .validate()?,
                start,
            )
            .await?;
        users.insert(username, u);
    }
    let p = |n: &str| users.get(n).map(principal);
    let (Some(dana), Some(erik), Some(emma), Some(xavier), Some(jana), Some(hank)) = (
        p("dana"),
        p("erik"),
        p("emma"),
        p("xavier"),
        p("jana"),
        p("hank"),
    ) else {
        return Ok(());
    };

    let clock = ManualClock::new(now);
    let cases = Cases::new(store.clone(), Arc::new(clock.clone()));
    let caller = |name: &str| Caller {
        name: name.into(),
        company: Some("Nordwind Logistik GmbH".into()),
        phone: Some("+49 40 5550 1042".into()),
        email: Some("jana.vogt@nordwind.example".into()),
        contract: None,
    };
    let new_case =
        |summary: &str, details: &str, priority: Priority, t: CaseType, device: Option<i64>| {
            NewCase {
                caller: caller("Jana Vogt"),
                summary: summary.into(),
                details: details.into(),
                priority,
                case_type: Some(t),
                vendor: None,
                channel: Some(Channel::Phone),
                organization_id: Some(org.id),
                device_id: device,
                contract: None,
                assignee_id: None,
            }
        };
    let status = |s: Status, r: Option<&str>| StatusChange {
        status: s,
        reason: r.map(Into::into),
    };
    let at = |ago: Duration| clock.set(now - ago);

    // 1. Closed P2 with a field visit, a week ago.
    at(Duration::days(7));
    let c = cases
        .open(
            &dana,
            &new_case(
                "dist-sw-2 reboots every few hours",
                "Switch reloads with a crashinfo file; users on floor 3 lose connectivity.",
                Priority::P2,
                CaseType::HardwareFault,
                Some(ids[3]),
            ),
        )
        .await?;
    at(Duration::days(7) - Duration::minutes(4));
    cases
        .assign(
            &dana,
            &c.number,
            &Assignment {
                assignee_id: erik.user_id,
                reason: None,
            },
        )
        .await?;
    at(Duration::days(7) - Duration::minutes(18));
    cases
        .record_call(
            &erik,
            &c.number,
            &NewCall {
                direction: CallDirection::Outbound,
                party: "Jana Vogt".into(),
                phone: Some("+49 40 5550 1042".into()),
                duration_secs: Some(420),
                summary: "Collected crashinfo; power supply fan alarm in logs.".into(),
                visibility: Some(Visibility::Public),
            },
        )
        .await?;
    cases
        .set_status(&erik, &c.number, &status(Status::Responded, None))
        .await?;
    at(Duration::days(7) - Duration::hours(1));
    cases
        .set_status(&erik, &c.number, &status(Status::Diagnosing, None))
        .await?;
    at(Duration::days(6));
    cases
        .record_field_visit(
            &erik,
            &c.number,
            &NewFieldVisit {
                engineer: "Erik Engineer".into(),
                arrived_at: now - Duration::days(6) - Duration::hours(2),
                left_at: Some(now - Duration::days(6)),
                work_done: "Replaced PWR-C5-125WAC power supply; monitored for 1 h, no reloads."
                    .into(),
                customer_signoff: Some("Paul Brandt".into()),
            },
        )
        .await?;
    cases
        .set_status(
            &erik,
            &c.number,
            &status(
                Status::Resolved,
                Some("Faulty power supply replaced on site."),
            ),
        )
        .await?;
    cases
        .add_fault_report(
            &erik,
            &c.number,
            &crate::cases::feedback::NewFaultReport {
                cause: "The switch's power supply failed intermittently (capacitor ageing), \
                        so the switch reloaded under load."
                    .into(),
                actions: "Replaced the PWR-C5-125WAC power supply on site; monitored for one hour."
                    .into(),
                prevention: "Second power supply fitted at the next maintenance window; \
                             PSU status now monitored by the agent."
                    .into(),
            },
        )
        .await?;
    at(Duration::days(5));
    cases
        .set_status(
            &jana,
            &c.number,
            &status(Status::Closed, Some("Confirmed stable.")),
        )
        .await?;

    let kb_psu = c.number.clone();

    // 2. Resolved P4 question.
    at(Duration::days(3));
    let c = cases
        .open(
            &dana,
            &NewCase {
                channel: Some(Channel::Email),
                ..new_case(
                    "How to back up the C9300 configuration to TFTP?",
                    "Customer wants a nightly backup procedure.",
                    Priority::P4,
                    CaseType::Question,
                    Some(ids[0]),
                )
            },
        )
        .await?;
    at(Duration::days(3) - Duration::minutes(30));
    cases.take_over(&emma, &c.number).await?;
    cases
        .set_status(&emma, &c.number, &status(Status::Responded, None))
        .await?;
    cases
        .add_note(
            &emma,
            &c.number,
            &NewNote {
                text: "Sent the archive/kron procedure; see KB draft.".into(),
                visibility: Some(Visibility::Public),
                corrects: None,
            },
        )
        .await?;
    cases
        .set_status(
            &emma,
            &c.number,
            &status(Status::Resolved, Some("Procedure sent to the customer.")),
        )
        .await?;

    let kb_backup = c.number.clone();

    // 3. Waiting for parts, P2, on a Huawei switch.
    at(Duration::days(1));
    let c = cases
        .open(
            &dana,
            &new_case(
                "dc-sw-1 port group 0/0/1-8 down",
                "Eight ports of the first module show no link since the morning.",
                Priority::P2,
                CaseType::HardwareFault,
                Some(ids[6]),
            ),
        )
        .await?;
    at(Duration::days(1) - Duration::minutes(10));
    cases
        .assign(
            &dana,
            &c.number,
            &Assignment {
                assignee_id: emma.user_id,
                reason: None,
            },
        )
        .await?;
    at(Duration::days(1) - Duration::minutes(25));
    cases
        .set_status(&emma, &c.number, &status(Status::Responded, None))
        .await?;
    cases
        .set_status(&emma, &c.number, &status(Status::Diagnosing, None))
        .await?;
    at(Duration::hours(20));
    cases
        .add_note(
            &emma,
            &c.number,
            &NewNote {
                text: "PHY chip failure confirmed by vendor TAC; RMA requested.".into(),
                visibility: Some(Visibility::Internal),
                corrects: None,
            },
        )
        .await?;
    cases
        .set_status(
            &emma,
            &c.number,
            &status(Status::WaitingParts, Some("Spare module ordered.")),
        )
        .await?;

    // 4. P1 being diagnosed, opened two hours ago, escalated to the expert.
    at(Duration::hours(2));
    let c = cases
        .open(
            &dana,
            &new_case(
                "Core switch stack split: core-sw-1 unreachable",
                "Warehouse scanners offline; stack member 2 not responding, HSRP flapping.",
                Priority::P1,
                CaseType::HardwareFault,
                Some(ids[0]),
            ),
        )
        .await?;
    at(Duration::hours(2) - Duration::minutes(3));
    cases
        .assign(
            &dana,
            &c.number,
            &Assignment {
                assignee_id: erik.user_id,
                reason: None,
            },
        )
        .await?;
    at(Duration::hours(2) - Duration::minutes(12));
    cases
        .set_status(
            &erik,
            &c.number,
            &status(
                Status::Responded,
                Some("Called Jana Vogt, remote session agreed."),
            ),
        )
        .await?;
    cases
        .set_status(&erik, &c.number, &status(Status::Diagnosing, None))
        .await?;
    at(Duration::hours(1));
    cases.take_over(&xavier, &c.number).await?;
    cases
        .add_note(
            &xavier,
            &c.number,
            &NewNote {
                text: "Stack cable between member 1 and 2 reports CRC errors; reseating planned."
                    .into(),
                visibility: Some(Visibility::Internal),
                corrects: None,
            },
        )
        .await?;

    // 5. P2 assigned 35 minutes ago, engineer has not responded yet.
    at(Duration::minutes(35));
    let c = cases
        .open(
            &dana,
            &new_case(
                "WAN link to Bremen degraded, 30% packet loss",
                "ISR4451 interface Gi0/0/1 shows input errors.",
                Priority::P2,
                CaseType::NetworkFault,
                Some(ids[4]),
            ),
        )
        .await?;
    at(Duration::minutes(33));
    cases
        .assign(
            &dana,
            &c.number,
            &Assignment {
                assignee_id: erik.user_id,
                reason: Some("Core network specialist".into()),
            },
        )
        .await?;

    // 6. New P3 from the customer portal, unassigned.
    at(Duration::minutes(12));
    cases
        .open(
            &jana,
            &NewCase {
                channel: None,
                organization_id: None,
                ..new_case(
                    "Access point in hall B drops clients",
                    "Handheld scanners lose Wi-Fi near dock 14.",
                    Priority::P3,
                    CaseType::NetworkFault,
                    Some(ids[10]),
                )
            },
        )
        .await?;

    // 7. Another customer's case (never visible to Nordwind users).
    at(Duration::hours(5));
    cases
        .open(
            &hank,
            &NewCase {
                caller: Caller {
                    name: "Hank Harbor".into(),
                    company: Some("Harbor Health Clinics".into()),
                    phone: None,
                    email: None,
                    contract: Some("HH-7x8-001".into()),
                },
                summary: "cn-sw-1 fan alarm".into(),
                details: "Fan tray 1 reports failure.".into(),
                priority: Priority::P3,
                case_type: Some(CaseType::HardwareFault),
                vendor: None,
                channel: None,
                organization_id: None,
                device_id: Some(clinic_sw.id),
                contract: None,
                assignee_id: None,
            },
        )
        .await?;
    if let Some(admin) = users.get("admin") {
        seed_topology(store, org.id, admin.id, &ids, now).await?;
        seed_spares(&cases, &principal(admin)).await?;
        seed_inspections(&cases, &principal(admin), hq.id, now).await?;
    }
    if let Some(tomas) = users.get("tomas") {
        let authors = [&erik, &emma, &xavier, &principal(tomas)];
        seed_kb(&cases, authors, [&kb_psu, &kb_backup]).await?;
    }
    Ok(())
}

/// Preventive inspection schedules: Hamburg HQ's quarterly one overdue by
/// three days (the inspections page shows it), Bremen's monthly one due in
/// twenty days.
async fn seed_inspections(
    cases: &Cases,
    admin: &Principal,
    hq: i64,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    use crate::field::inspections::NewSchedule;
    let sla =
        crate::sla::settings::SlaSettings::load(cases.store.clone(), Default::default()).await?;
    let field = crate::field::Field::new(cases.clone(), sla);
    for (contract, site, name, every, due_in) in [
        (
            "NW-24x7-001",
            Some(hq),
            "Quarterly inspection, Hamburg HQ",
            91,
            -3,
        ),
        ("NW-5x8-002", None, "Monthly inspection, Bremen", 30, 20),
    ] {
        let Some(k) = cases.store.contract_by_number(contract).await? else {
            continue;
        };
        field
            .create_schedule(
                admin,
                &NewSchedule {
                    contract_id: k.id,
                    site_id: site,
                    name: name.into(),
                    interval_days: every,
                    // Within the contract's term, whatever the date today.
                    first_due: (now + Duration::days(due_in))
                        .date_naive()
                        .clamp(k.starts_on, k.ends_on)
                        .format("%Y-%m-%d")
                        .to_string(),
                    checklist: vec![
                        "Fans and filters clean".into(),
                        "Power supplies redundant and healthy".into(),
                        "Logs free of hardware errors".into(),
                        "Firmware at the recommended release".into(),
                    ],
                },
            )
            .await?;
    }
    Ok(())
}

/// Knowledge-base articles: two drafted from the resolved demo cases, two
/// written from the vendors' notes (no source case), all published after
/// review by another user; one more waiting in review.
async fn seed_kb(
    cases: &Cases,
    [erik, emma, xavier, tomas]: [&Principal; 4],
    [psu_case, backup_case]: [&String; 2],
) -> Result<()> {
    use crate::kb::{Decision, Kb, NewArticle, Review};
    use crate::store::kb::{ArticleChange, ArticleText};
    let kb = Kb::new(cases.clone());
    let publish = Review {
        decision: Decision::Publish,
        comment: Some("Checked against the case.".into()),
    };
    let a = kb
        .draft_from_case(
            erik,
            &NewArticle {
                case_number: psu_case.clone(),
                title: Some("Catalyst 9200L reloads every few hours: failing power supply".into()),
                ..Default::default()
            },
        )
        .await?;
    kb.submit(erik, a.id).await?;
    kb.review(xavier, a.id, &publish).await?;
    let a = kb
        .draft_from_case(
            emma,
            &NewArticle {
                case_number: backup_case.clone(),
                title: Some("Nightly configuration backup of a Catalyst 9300 to TFTP".into()),
                cause: Some("The customer had no scheduled configuration backup.".into()),
                resolution: Some(
                    "Configure `archive` with `path tftp://<server>/$h-$t` and `time-period 1440`, \
                     or a `kron` policy running `copy running-config tftp:`; verify with \
                     `show archive`."
                        .into(),
                ),
                ..Default::default()
            },
        )
        .await?;
    kb.submit(emma, a.id).await?;
    kb.review(tomas, a.id, &publish).await?;
    // From the vendors' notes: written by one, published by another.
    let store = &cases.store;
    let now = cases.clock.now();
    let notes = [
        (
            ArticleText {
                title: "Catalyst 9300 stack split: member unreachable, HSRP flapping".into(),
                symptom: "A stack member stops responding; the stack splits and HSRP flaps \
                          between the halves; CRC errors on a stack port."
                    .into(),
                cause: "A damaged or badly seated StackWise cable between two members.".into(),
                resolution: "Check `show switch stack-ports detail` for CRC errors, reseat or \
                             replace the stack cable, then reload the isolated member."
                    .into(),
                vendor: Some("Cisco".into()),
                device_type: Some("switch".into()),
                model: Some("C9300-48P".into()),
                firmware: Some("17.9.4a".into()),
            },
            true,
        ),
        (
            ArticleText {
                title: "Huawei S5735 port group without link after a PHY chip failure".into(),
                symptom: "Eight consecutive ports of one module (for example 0/0/1-8) show no \
                          link at the same time; other ports work."
                    .into(),
                cause: "The PHY chip serving that port group failed.".into(),
                resolution: "Confirm with `display device` and the vendor TAC; request a spare \
                             module (RMA) and move critical links to other ports meanwhile."
                    .into(),
                vendor: Some("Huawei".into()),
                device_type: Some("switch".into()),
                model: Some("S5735-L48T4X".into()),
                firmware: Some("V200R022C00SPC500".into()),
            },
            true,
        ),
        (
            ArticleText {
                title: "ISR4451 input errors and packet loss on a WAN interface".into(),
                symptom: "Packet loss on the WAN link; the interface counts input and CRC errors."
                    .into(),
                cause: "A duplex mismatch with the carrier's equipment, or a failing SFP.".into(),
                resolution: "Compare speed and duplex with the carrier; swap the SFP; clear the \
                             counters and watch them."
                    .into(),
                vendor: Some("Cisco".into()),
                device_type: Some("router".into()),
                model: Some("ISR4451-X".into()),
                firmware: Some("17.6.6a".into()),
            },
            false,
        ),
    ];
    for (text, published) in notes {
        let id = store
            .kb_insert_article(None, &text, xavier.user_id, now)
            .await?;
        let submitted_by = Some(xavier.user_id);
        store
            .kb_change(id, xavier.user_id, now, |_| {
                Ok(ArticleChange {
                    state: "in_review",
                    text: None,
                    submitted_by,
                    reviewed_by: None,
                    review_comment: None,
                    publish: false,
                })
            })
            .await?;
        if published {
            kb.review(tomas, id, &publish).await?;
        }
    }
    Ok(())
}

/// Nordwind's network as a jump-box agent would have reported it over LLDP
/// (the console draws it): the agent is recorded as enrolled, its devices
/// bound to it, and its links stored, as the uplink does.
async fn seed_topology(
    store: &Store,
    org: i64,
    admin: i64,
    ids: &[i64],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    use crate::store::agents::{NewAgent, NewEnrollmentToken};
    let token = hash_token(&generate_token());
    store
        .insert_enrollment_token(&NewEnrollmentToken {
            token_hash: token.clone(),
            organization_id: org,
            site_id: None,
            note: Some("demo jump box".into()),
            created_by: admin,
            created_at: now,
            expires_at: now + Duration::hours(1),
        })
        .await?;
    let agent = match store
        .enroll_agent(
            &token,
            &NewAgent {
                uuid: "00000000-0000-4000-8000-00000000d3e0".into(),
                // A key nobody holds: the demo agent never connects.
                public_key: "demo-agent-without-a-private-key".into(),
                fingerprint: "SHA256:demo".into(),
                hostname: "nw-jump-1".into(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                heartbeat_secs: 60,
            },
            now,
        )
        .await?
    {
        Ok(a) => a,
        Err(_) => return Ok(()),
    };
    const NAMES: [&str; 12] = [
        "core-sw-1",
        "core-sw-2",
        "dist-sw-1",
        "dist-sw-2",
        "wan-rtr-1",
        "fw-1",
        "dc-sw-1",
        "dc-sw-2",
        "dc-sw-3",
        "dc-rtr-1",
        "dc-ap-1",
        "dc-ups-1",
    ];
    for (id, name) in ids.iter().zip(NAMES) {
        store.bind_device_agent(*id, agent.id, name).await?;
    }
    let link = |device: &str, local: &str, far: &str, port: &str| outpost_protocol::LldpLink {
        device: device.into(),
        local_port: local.into(),
        remote_chassis_id: None,
        remote_sys_name: Some(far.into()),
        remote_port: port.into(),
        remote_port_descr: None,
    };
    let links = [
        link("core-sw-1", "Gi1/0/1", "dist-sw-1", "Gi0/1"),
        link("core-sw-1", "Gi1/0/2", "dist-sw-2", "Gi0/1"),
        link("core-sw-1", "Gi1/0/47", "core-sw-2", "Gi1/0/47"),
        link("core-sw-1", "Gi1/0/48", "fw-1", "GE0/0/1"),
        link("core-sw-2", "Gi1/0/1", "dist-sw-1", "Gi0/2"),
        link("core-sw-2", "Gi1/0/2", "dist-sw-2", "Gi0/2"),
        link("fw-1", "GE0/0/0", "wan-rtr-1", "Gi0/0/1"),
        link("wan-rtr-1", "Gi0/0/0", "isp-pe-7", "xe-0/1/3"),
        link("dc-rtr-1", "GE0/0/0", "wan-rtr-1", "Gi0/0/2"),
        link("dc-rtr-1", "GE0/0/1", "dc-sw-1", "10GE1/0/1"),
        link("dc-sw-1", "10GE1/0/2", "dc-sw-2", "10GE1/0/1"),
        link("dc-sw-1", "10GE1/0/3", "dc-sw-3", "10GE1/0/1"),
        link("dc-sw-1", "GE1/0/10", "dc-ap-1", "GE0/0/0"),
        link("dc-sw-1", "GE1/0/11", "dc-ups-1", "mgmt"),
    ];
    store.replace_topology(agent.id, &links, now).await
}

/// part number, vendor, model, description, device models it fits, units
type DemoPart = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    i64,
);

/// The spare desk's stock: one depot and parts for the demo's switches and
/// routers, through the same RMA service the API uses.
async fn seed_spares(cases: &Cases, admin: &Principal) -> Result<()> {
    use crate::rma::{NewPart, NewWarehouse, Rma, StockChange};
    let sla =
        crate::sla::settings::SlaSettings::load(cases.store.clone(), Default::default()).await?;
    let rma = Rma::new(cases.clone(), sla, Default::default());
    let depot = rma
        .create_warehouse(
            admin,
            &NewWarehouse {
                name: "Hamburg spare depot".into(),
                address: "Billstrasse 80, 20539 Hamburg".into(),
            },
        )
        .await?;
    let parts: [DemoPart; 5] = [
        (
            "C9K-T1-FANTRAY",
            "Cisco",
            "C9K-T1-FANTRAY",
            "Catalyst 9300 fan tray",
            &["C9300-48P"],
            4,
        ),
        (
            "PWR-C1-715WAC-P",
            "Cisco",
            "PWR-C1-715WAC-P",
            "Catalyst 9300 715 W AC power supply",
            &["C9300-48P"],
            3,
        ),
        (
            "PWR-C5-125WAC",
            "Cisco",
            "PWR-C5-125WAC",
            "Catalyst 9200L 125 W AC power supply",
            &["C9200L-24T"],
            2,
        ),
        (
            "NIM-2GE-CU-SFP",
            "Cisco",
            "NIM-2GE-CU-SFP",
            "ISR 4000 2-port GE module",
            &["ISR4451-X"],
            1,
        ),
        (
            "PAC600S12-CB",
            "Huawei",
            "PAC600S12-CB",
            "S5735 600 W AC power module",
            &["S5735-L48T4X", "S5735-L24T4X"],
            5,
        ),
    ];
    for (number, vendor, model, description, fits, units) in parts {
        rma.create_part(
            admin,
            &NewPart {
                part_number: number.into(),
                vendor: vendor.into(),
                model: model.into(),
                description: description.into(),
                compatible_models: fits.iter().map(|m| (*m).to_string()).collect(),
            },
        )
        .await?;
        rma.adjust_stock(
            admin,
            &StockChange {
                part_number: number.into(),
                warehouse_id: depot.id,
                delta: units,
                serials: vec![],
            },
        )
        .await?;
    }
    Ok(())
}
