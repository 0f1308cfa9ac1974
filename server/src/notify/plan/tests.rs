use super::*;
use crate::cases::UserRef;

fn case(priority: i64) -> CaseRow {
    CaseRow {
        id: 7,
        number: "C-2026-000007".into(),
        organization_id: Some(1),
        organization_name: Some("Acme".into()),
        contract_id: None,
        contract_number: None,
        device_id: None,
        device_name: Some("core-sw-1".into()),
        caller_name: "Jana Vogt".into(),
        caller_company: None,
        caller_phone: Some("+49 40 1".into()),
        caller_email: Some("jana@customer.example".into()),
        caller_contract: None,
        summary: "Core switch down".into(),
        details: String::new(),
        priority,
        status: "assigned".into(),
        case_type: "hardware_fault".into(),
        vendor: None,
        channel: "phone".into(),
        assignee_id: Some(10),
        assignee_name: Some("Erik".into()),
        created_by: None,
        created_at: 0,
        updated_at: 0,
        responded_at: None,
        resolved_at: None,
        closed_at: None,
        last_seq: 3,
        head_hash: String::new(),
    }
}

fn user(id: i64, role: Role, level: Option<i64>) -> User {
    User {
        id,
        username: format!("u{id}"),
        display_name: format!("User {id}"),
        email: Some(format!("u{id}@example.com")),
        mobile: Some(format!("+49 170 {id}")),
        role,
        manager_level: level,
        organization_id: None,
        quiet_hours: None,
        timezone: None,
        active: true,
        created_at: Utc::now(),
    }
}

fn roster() -> Vec<User> {
    let mut r = vec![
        user(1, Role::Dispatcher, None),
        user(10, Role::Engineer, None),
        user(11, Role::Engineer, None),
    ];
    for l in 1..=5 {
        r.push(user(100 + l, Role::Manager, Some(l)));
    }
    r
}

fn now() -> DateTime<Utc> {
    "2026-01-15T02:00:00Z".parse().unwrap()
}

fn run(case: &CaseRow, roster: &[User], channels: &Channels, body: &ActivityBody) -> Expansion {
    plan(&Context {
        case,
        seq: 4,
        at: now(),
        author: "Dora Dispatcher",
        author_id: None,
        body,
        roster,
        channels,
        public_url: Some("https://support.example.com/"),
        default_tz: "Europe/Berlin".parse().unwrap(),
        now: now(),
        survey_token: "tok123",
        survey_valid_for: chrono::Duration::days(30),
        survey_reminder_after: chrono::Duration::days(3),
    })
}

fn both() -> Channels {
    Channels {
        email: true,
        sms: true,
        webhooks: vec![],
    }
}

fn targets(x: &Expansion) -> Vec<(String, &str, String)> {
    x.deliveries
        .iter()
        .map(|d| (d.reason.clone(), d.channel, d.address.clone()))
        .collect()
}

fn sla(event: SlaEventKind, level: Option<u8>) -> ActivityBody {
    ActivityBody::SlaEvent {
        event,
        level,
        due_at: now(),
        late: false,
        timer_id: 1,
    }
}

#[test]
fn assignment_mails_and_texts_the_engineer() {
    let body = ActivityBody::Assigned {
        from: None,
        to: UserRef {
            id: 11,
            name: "User 11".into(),
        },
        reason: None,
    };
    let x = run(&case(1), &roster(), &both(), &body);
    assert_eq!(
        targets(&x),
        vec![
            ("assigned".into(), "email", "u11@example.com".into()),
            ("assigned".into(), "sms", "+49 170 11".into()),
        ]
    );
    let mail = &x.deliveries[0];
    assert!(mail
        .subject
        .starts_with("[C-2026-000007] P1 assigned to you"));
    assert!(mail
        .body
        .contains("https://support.example.com/cases/C-2026-000007"));
    assert!(x.deliveries[1].body.len() <= SMS_MAX);
    assert!(x.alerts.is_empty());
}

#[test]
fn channels_that_are_off_are_not_planned() {
    let body = ActivityBody::Assigned {
        from: None,
        to: UserRef {
            id: 11,
            name: "User 11".into(),
        },
        reason: None,
    };
    let email_only = Channels {
        email: true,
        sms: false,
        webhooks: vec![],
    };
    let x = run(&case(1), &roster(), &email_only, &body);
    assert_eq!(targets(&x).len(), 1);
    assert_eq!(x.deliveries[0].channel, "email");
    let x = run(&case(1), &roster(), &Channels::default(), &body);
    assert!(x.deliveries.is_empty());
}

#[test]
fn reminder_goes_to_assignee_and_dispatchers() {
    let x = run(
        &case(2),
        &roster(),
        &both(),
        &sla(SlaEventKind::ResponseReminder, None),
    );
    let t = targets(&x);
    assert!(t.contains(&("reminder".into(), "email", "u10@example.com".into())));
    assert!(t.contains(&("reminder".into(), "sms", "+49 170 10".into())));
    assert!(t.contains(&("reminder".into(), "email", "u1@example.com".into())));
    assert!(t.contains(&("reminder".into(), "sms", "+49 170 1".into())));
    assert_eq!(t.len(), 4);
}

#[test]
fn reassign_prompt_alerts_dispatchers() {
    let x = run(
        &case(2),
        &roster(),
        &both(),
        &sla(SlaEventKind::ReassignPrompt, None),
    );
    assert_eq!(x.alerts.len(), 1);
    assert_eq!(x.alerts[0].user_id, 1);
    assert_eq!(targets(&x).len(), 2);
}

#[test]
fn each_escalation_level_reaches_only_its_managers() {
    for level in 1..=5u8 {
        let x = run(
            &case(1),
            &roster(),
            &both(),
            &sla(SlaEventKind::Escalated, Some(level)),
        );
        let id = 100 + i64::from(level);
        assert_eq!(
            targets(&x),
            vec![
                (
                    format!("escalation:{level}"),
                    "email",
                    format!("u{id}@example.com")
                ),
                (
                    format!("escalation:{level}"),
                    "sms",
                    format!("+49 170 {id}")
                ),
            ]
        );
        assert_eq!(x.alerts.len(), 1);
        assert_eq!(x.alerts[0].user_id, id);
        assert_eq!(x.alerts[0].level, Some(i64::from(level)));
        let title = crate::directory::MANAGER_LEVELS[usize::from(level) - 1];
        assert!(
            x.deliveries[0].subject.contains(title),
            "{}",
            x.deliveries[0].subject
        );
    }
}

#[test]
fn inactive_users_hear_nothing() {
    let mut r = roster();
    for u in &mut r {
        u.active = false;
    }
    let x = run(
        &case(1),
        &r,
        &both(),
        &sla(SlaEventKind::Escalated, Some(2)),
    );
    assert!(x.deliveries.is_empty());
    assert!(x.alerts.is_empty());
}

#[test]
fn quiet_hours_defer_all_but_p1() {
    let mut r = roster();
    for u in &mut r {
        // 02:00 UTC is 03:00 in Berlin: inside 22:00-07:00.
        u.quiet_hours = Some("22:00-07:00".into());
    }
    let body = sla(SlaEventKind::Escalated, Some(1));
    let x = run(&case(3), &r, &both(), &body);
    let morning: DateTime<Utc> = "2026-01-15T06:00:00Z".parse().unwrap();
    assert!(x.deliveries.iter().all(|d| d.not_before == morning));
    let x = run(&case(1), &r, &both(), &body);
    assert!(x.deliveries.iter().all(|d| d.not_before == now()));
    // A user's own time zone wins over the default.
    for u in &mut r {
        u.timezone = Some("America/New_York".into());
    }
    let x = run(&case(3), &r, &both(), &body);
    // 02:00 UTC is 21:00 in New York: not quiet yet.
    assert!(x.deliveries.iter().all(|d| d.not_before == now()));
}

#[test]
fn closing_sends_a_survey_and_a_reminder() {
    let body = ActivityBody::StatusChanged {
        from: Status::Resolved,
        to: Status::Closed,
        reason: None,
    };
    let x = run(&case(3), &roster(), &both(), &body);
    assert_eq!(
        targets(&x),
        vec![
            ("survey".into(), "email", "jana@customer.example".into()),
            (
                "survey_reminder".into(),
                "email",
                "jana@customer.example".into()
            ),
        ]
    );
    assert!(x.deliveries[0]
        .body
        .contains("https://support.example.com/survey/tok123"));
    assert_eq!(
        x.deliveries[1].not_before,
        now() + chrono::Duration::days(3)
    );
    let s = x.survey.expect("survey");
    assert_eq!(s.token_hash, crate::auth::hash_token("tok123"));
    assert_eq!(s.engineer_id, Some(10));
    // No contact address: no survey.
    let mut c = case(3);
    c.caller_email = None;
    let x = run(&c, &roster(), &both(), &body);
    assert!(x.survey.is_none() && x.deliveries.is_empty());
}

#[test]
fn fault_report_is_mailed_to_the_contact() {
    let body = ActivityBody::FaultReport {
        cause: "PSU failed".into(),
        actions: "Replaced".into(),
        prevention: "Redundant PSU".into(),
    };
    let x = run(&case(1), &roster(), &both(), &body);
    assert_eq!(
        targets(&x),
        vec![(
            "fault_report".into(),
            "email",
            "jana@customer.example".into()
        )]
    );
    assert!(x.deliveries[0].body.contains("PSU failed"));
}

#[test]
fn webhooks_get_the_kinds_they_want() {
    let channels = Channels {
        email: false,
        sms: false,
        webhooks: vec![
            ("http://127.0.0.1:1/all".into(), vec![]),
            ("http://127.0.0.1:1/sla".into(), vec!["sla_event".into()]),
        ],
    };
    let x = run(
        &case(1),
        &roster(),
        &channels,
        &sla(SlaEventKind::Escalated, Some(1)),
    );
    assert_eq!(x.deliveries.len(), 2);
    let v: serde_json::Value = serde_json::from_str(&x.deliveries[0].body).unwrap();
    assert_eq!(v["event"], "sla_event");
    assert_eq!(v["case"]["number"], "C-2026-000007");
    assert_eq!(v["entry"]["body"]["level"], 1);
    let note = ActivityBody::Opened {
        summary: "x".into(),
        priority: Priority::P1,
        channel: crate::cases::Channel::Phone,
        case_type: crate::cases::CaseType::Other,
    };
    let x = run(&case(1), &roster(), &channels, &note);
    assert_eq!(
        targets(&x),
        vec![(
            "webhook:opened".into(),
            "webhook",
            "http://127.0.0.1:1/all".into()
        )]
    );
}

fn promise(step: &str) -> ActivityBody {
    ActivityBody::Visit {
        visit_id: None,
        step: step.into(),
        engineer: None,
        scheduled_at: None,
        address: None,
        at: None,
        work_done: None,
        parts_used: vec![],
        repaired: None,
        backup_equipment: None,
        signoff: None,
        reason: Some("the repair promise passed unrepaired: provide backup equipment".into()),
        due_at: Some(now()),
        timer_id: Some(7),
    }
}

#[test]
fn field_promises_warn_like_sla_clocks_and_escalate_when_missed() {
    // The warning: assignee and dispatchers, by e-mail only.
    let x = run(&case(2), &roster(), &both(), &promise("onsite_warning"));
    let t = targets(&x);
    assert_eq!(
        t,
        vec![
            ("onsite_warning".into(), "email", "u10@example.com".into()),
            ("onsite_warning".into(), "email", "u1@example.com".into()),
        ]
    );
    assert!(x.alerts.is_empty());
    // The miss: also by SMS, and to the level-1 managers with an alert.
    let x = run(&case(2), &roster(), &both(), &promise("repair_missed"));
    let t = targets(&x);
    assert!(t.contains(&("repair_missed".into(), "sms", "+49 170 10".into())));
    assert!(t.contains(&("repair_missed".into(), "sms", "+49 170 1".into())));
    assert!(t.contains(&("repair_missed".into(), "email", "u101@example.com".into())));
    assert!(!t.iter().any(|(_, _, a)| a == "u102@example.com"));
    assert_eq!(t.len(), 6);
    assert_eq!(x.alerts.len(), 1);
    assert_eq!(x.alerts[0].user_id, 101);
    assert!(x.deliveries[0].body.contains("backup equipment"));
    // Other visit steps notify nobody.
    assert!(!crate::notify::wants(
        &promise("checked_in"),
        crate::cases::model::Visibility::Internal
    ));
    assert!(crate::notify::wants(
        &promise("onsite_missed"),
        crate::cases::model::Visibility::Internal
    ));
    let x = run(&case(2), &roster(), &both(), &promise("checked_in"));
    assert!(x.deliveries.is_empty());
}

fn run_by(author_id: Option<i64>, body: &ActivityBody) -> Expansion {
    let (c, r, ch) = (case(3), roster(), both());
    plan(&Context {
        case: &c,
        seq: 5,
        at: now(),
        author: "User 10",
        author_id,
        body,
        roster: &r,
        channels: &ch,
        public_url: None,
        default_tz: "Europe/Berlin".parse().unwrap(),
        now: now(),
        survey_token: "tok",
        survey_valid_for: chrono::Duration::days(30),
        survey_reminder_after: chrono::Duration::days(3),
    })
}

#[test]
fn the_customer_contact_hears_of_staff_updates_only() {
    let jana = "jana@customer.example".to_string();
    let note = ActivityBody::Note {
        text: "Replacement PSU ships today.".into(),
        corrects: None,
    };
    let x = run_by(Some(10), &note);
    assert_eq!(
        targets(&x),
        vec![("customer_note".into(), "email", jana.clone())]
    );
    assert!(x.deliveries[0]
        .subject
        .starts_with("[C-2026-000007] Update: "));
    assert!(x.deliveries[0]
        .body
        .contains("Replacement PSU ships today."));
    // The customer's own note (by mail or portal) and the server's are not echoed.
    assert!(run_by(Some(500), &note).deliveries.is_empty());
    assert!(run_by(None, &note).deliveries.is_empty());
    let status = ActivityBody::StatusChanged {
        from: Status::Assigned,
        to: Status::Resolved,
        reason: Some("PSU replaced".into()),
    };
    let x = run_by(Some(10), &status);
    assert_eq!(
        targets(&x),
        vec![("customer_status".into(), "email", jana.clone())]
    );
    assert!(x.deliveries[0].subject.contains("Status resolved"));
    // Closing is told by the survey, once.
    let closed = ActivityBody::StatusChanged {
        from: Status::Resolved,
        to: Status::Closed,
        reason: None,
    };
    let reasons: Vec<String> = run_by(Some(10), &closed)
        .deliveries
        .iter()
        .map(|d| d.reason.clone())
        .collect();
    assert_eq!(reasons, ["survey", "survey_reminder"]);
    // A case opened by e-mail is acknowledged, whoever the author.
    let opened = ActivityBody::Opened {
        summary: "x".into(),
        priority: Priority::P3,
        channel: Channel::Email,
        case_type: crate::cases::CaseType::Other,
    };
    let x = run_by(None, &opened);
    assert_eq!(targets(&x), vec![("acknowledgement".into(), "email", jana)]);
    let phoned = ActivityBody::Opened {
        summary: "x".into(),
        priority: Priority::P3,
        channel: Channel::Phone,
        case_type: crate::cases::CaseType::Other,
    };
    assert!(run_by(None, &phoned).deliveries.is_empty());
}
