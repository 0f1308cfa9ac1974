//! Who hears of what: a pure function from one history entry to the
//! deliveries, alerts and survey it causes. No I/O; the caller passes the
//! people (the roster) and the channels that are on.
//!
//! | entry | recipients | channels |
//! |---|---|---|
//! | assigned | the new engineer ("respond at once" on reassignment) | e-mail + SMS |
//! | SLA reminder | the assignee, and dispatchers (prompt to remind) | e-mail + SMS |
//! | SLA reassign prompt | dispatchers (+ alert) | e-mail + SMS |
//! | SLA reassigned | dispatchers | e-mail |
//! | response / resolution breached | assignee and dispatchers | e-mail |
//! | escalation level N | managers of level N (+ alert) | e-mail + SMS |
//! | closed | the customer contact: survey link | e-mail |
//! | fault report | the customer contact | e-mail |
//! | opened by e-mail | the customer contact: acknowledgement | e-mail |
//! | public note, status change by staff | the customer contact | e-mail |
//! | every queued entry | each webhook that wants its kind | webhook |
//!
//! Quiet hours defer everything but P1 to the end of the recipient's window.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::auth::Role;
use crate::cases::{ActivityBody, Channel, Priority, SlaEventKind, Status};
use crate::directory::User;
use crate::store::notify::{Expansion, NewAlert, NewDelivery, NewSurvey};
use crate::store::CaseRow;

use super::quiet::QuietHours;

/// Which channels are configured.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    pub email: bool,
    pub sms: bool,
    /// (url, activity kinds wanted; empty: all).
    pub webhooks: Vec<(String, Vec<String>)>,
}

/// What the plan needs besides the entry.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub case: &'a CaseRow,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub author: &'a str,
    /// The author's user id (`None`: the server, or a sender it did not know).
    pub author_id: Option<i64>,
    pub body: &'a ActivityBody,
    /// Active staff users (assignee, dispatchers, managers).
    pub roster: &'a [User],
    pub channels: &'a Channels,
    pub public_url: Option<&'a str>,
    /// Time zone of quiet hours for users without one.
    pub default_tz: Tz,
    pub now: DateTime<Utc>,
    /// A fresh survey token (only used when the entry closes the case).
    pub survey_token: &'a str,
    pub survey_valid_for: chrono::Duration,
    pub survey_reminder_after: chrono::Duration,
}

/// Longest SMS text; gateways split longer ones, but nobody reads them.
const SMS_MAX: usize = 300;

fn case_link(cx: &Context<'_>) -> String {
    match cx.public_url {
        Some(u) => format!("\n{}/cases/{}\n", u.trim_end_matches('/'), cx.case.number),
        None => String::new(),
    }
}

fn priority(cx: &Context<'_>) -> String {
    Priority::from_level(cx.case.priority)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| format!("P{}", cx.case.priority))
}

/// The common case summary block of every staff message.
fn case_block(cx: &Context<'_>) -> String {
    let c = cx.case;
    let mut s = format!(
        "Case:     {}\nPriority: {}\nStatus:   {}\nSummary:  {}\n",
        c.number,
        priority(cx),
        c.status,
        c.summary
    );
    if let Some(o) = &c.organization_name {
        s.push_str(&format!("Customer: {o}\n"));
    }
    if let Some(d) = &c.device_name {
        s.push_str(&format!("Device:   {d}\n"));
    }
    s.push_str(&format!(
        "Caller:   {}{}\n",
        c.caller_name,
        c.caller_phone
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default()
    ));
    if let Some(a) = &c.assignee_name {
        s.push_str(&format!("Engineer: {a}\n"));
    }
    s
}

struct Message {
    reason: String,
    headline: String,
    detail: String,
    sms: bool,
}

impl Message {
    fn subject(&self, cx: &Context<'_>) -> String {
        format!(
            "[{}] {} {}: {}",
            cx.case.number,
            priority(cx),
            self.headline,
            cx.case.summary
        )
    }
    fn body(&self, cx: &Context<'_>) -> String {
        format!(
            "{}.\n{}\n{}{}",
            self.headline,
            self.detail,
            case_block(cx),
            case_link(cx)
        )
    }
    fn sms_text(&self, cx: &Context<'_>) -> String {
        let s = format!(
            "{} {}: {}. {}",
            cx.case.number,
            priority(cx),
            self.headline,
            cx.case.summary
        );
        s.chars().take(SMS_MAX).collect()
    }
}

/// When a message to `u` may go out: now, or after their quiet hours
/// (never deferred for P1).
fn not_before(cx: &Context<'_>, u: &User) -> DateTime<Utc> {
    if cx.case.priority == Priority::P1.level() {
        return cx.now;
    }
    let Some(q) = u
        .quiet_hours
        .as_deref()
        .and_then(|q| q.parse::<QuietHours>().ok())
    else {
        return cx.now;
    };
    let tz = u
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(cx.default_tz);
    q.next_allowed(tz, cx.now)
}

fn to_user(cx: &Context<'_>, x: &mut Expansion, u: &User, m: &Message) {
    let at = not_before(cx, u);
    if cx.channels.email {
        if let Some(addr) = &u.email {
            x.deliveries.push(NewDelivery {
                reason: m.reason.clone(),
                channel: "email",
                recipient_id: Some(u.id),
                recipient: u.display_name.clone(),
                address: addr.clone(),
                subject: m.subject(cx),
                body: m.body(cx),
                not_before: at,
            });
        }
    }
    if cx.channels.sms && m.sms {
        if let Some(number) = &u.mobile {
            x.deliveries.push(NewDelivery {
                reason: m.reason.clone(),
                channel: "sms",
                recipient_id: Some(u.id),
                recipient: u.display_name.clone(),
                address: number.clone(),
                subject: m.headline.clone(),
                body: m.sms_text(cx),
                not_before: at,
            });
        }
    }
}

fn with_role<'a>(cx: &'a Context<'_>, role: Role) -> impl Iterator<Item = &'a User> + 'a {
    cx.roster.iter().filter(move |u| u.active && u.role == role)
}

fn assignee<'a>(cx: &'a Context<'_>) -> Option<&'a User> {
    cx.case
        .assignee_id
        .and_then(|id| cx.roster.iter().find(|u| u.id == id && u.active))
}

fn due_line(due: DateTime<Utc>, late: bool) -> String {
    let mut s = format!("Due at {} UTC", due.format("%Y-%m-%d %H:%M:%S"));
    if late {
        s.push_str(" (recorded late: the server was not running at that moment)");
    }
    s.push('\n');
    s
}

/// Work out everything entry `cx.body` causes.
pub fn plan(cx: &Context<'_>) -> Expansion {
    let mut x = Expansion::default();
    match cx.body {
        ActivityBody::Assigned { to, reason, .. } => {
            if let Some(u) = cx.roster.iter().find(|u| u.id == to.id && u.active) {
                let m = Message {
                    reason: "assigned".into(),
                    headline: "assigned to you".into(),
                    detail: match reason {
                        Some(r) => {
                            format!("By {}: {r}\nPlease contact the customer now.\n", cx.author)
                        }
                        None => format!("By {}. Please contact the customer now.\n", cx.author),
                    },
                    sms: true,
                };
                to_user(cx, &mut x, u, &m);
            }
        }
        ActivityBody::SlaEvent {
            event,
            level,
            due_at,
            late,
            ..
        } => sla_event(cx, &mut x, *event, *level, *due_at, *late),
        ActivityBody::Visit { due_at, reason, .. } => {
            if let Some((promise, missed)) = promise_event(cx.body) {
                field_promise(cx, &mut x, promise, missed, *due_at, reason.as_deref());
            }
        }
        ActivityBody::StatusChanged {
            to: Status::Closed, ..
        } => survey(cx, &mut x),
        ActivityBody::FaultReport {
            cause,
            actions,
            prevention,
        } => {
            if let Some(email) = cx.case.caller_email.as_ref().filter(|_| cx.channels.email) {
                let body = format!(
                    "Dear {},\n\nthis is the fault analysis report for case {} ({}).\n\n\
                     Cause:\n{cause}\n\nActions taken:\n{actions}\n\nPrevention:\n{prevention}\n\n\
                     Your support team\n",
                    cx.case.caller_name, cx.case.number, cx.case.summary
                );
                x.deliveries.push(NewDelivery {
                    reason: "fault_report".into(),
                    channel: "email",
                    recipient_id: None,
                    recipient: cx.case.caller_name.clone(),
                    address: email.clone(),
                    subject: format!(
                        "[{}] Fault analysis report: {}",
                        cx.case.number, cx.case.summary
                    ),
                    body,
                    not_before: cx.now,
                });
            }
        }
        _ => {}
    }
    customer_update(cx, &mut x);
    webhooks(cx, &mut x);
    x
}

/// A field promise entry (`visit` with step `onsite_warning`,
/// `onsite_missed`, `repair_warning`, `repair_missed`): which promise, and
/// whether it was missed (else it is the warning).
pub fn promise_event(body: &ActivityBody) -> Option<(&'static str, bool)> {
    match body {
        ActivityBody::Visit { step, .. } => match step.as_str() {
            "onsite_warning" => Some(("on-site", false)),
            "onsite_missed" => Some(("on-site", true)),
            "repair_warning" => Some(("repair", false)),
            "repair_missed" => Some(("repair", true)),
            _ => None,
        },
        _ => None,
    }
}

/// The contract's field promises, like the SLA clocks: the warning goes to
/// the assignee and the dispatchers by e-mail; the miss also by SMS, and to
/// the response-center managers (level 1) with an alert.
fn field_promise(
    cx: &Context<'_>,
    x: &mut Expansion,
    promise: &str,
    missed: bool,
    due: Option<DateTime<Utc>>,
    why: Option<&str>,
) {
    let mut detail = why.map(|w| format!("{w}.\n")).unwrap_or_default();
    if let Some(d) = due {
        detail.push_str(&due_line(d, false));
    }
    let kind = promise.replace('-', "");
    let m = Message {
        reason: format!("{kind}_{}", if missed { "missed" } else { "warning" }),
        headline: if missed {
            format!("{promise} promise missed")
        } else {
            format!("{promise} promise near")
        },
        detail,
        sms: missed,
    };
    if let Some(u) = assignee(cx) {
        to_user(cx, x, u, &m);
    }
    for u in with_role(cx, Role::Dispatcher) {
        to_user(cx, x, u, &m);
    }
    if missed {
        for u in with_role(cx, Role::Manager).filter(|u| u.manager_level == Some(1)) {
            to_user(cx, x, u, &m);
            x.alerts.push(NewAlert {
                user_id: u.id,
                level: Some(1),
                message: format!(
                    "{}: the {promise} promise was missed: {}",
                    cx.case.number, cx.case.summary
                ),
            });
        }
    }
}

/// Case updates to the customer contact (the caller's e-mail address): the
/// acknowledgement of a case opened by e-mail, and public notes and status
/// changes written by staff (not the customer's own, not the server's).
/// Closing is told by the survey mail. The subject carries the case number
/// and the notifier threads the mail (`send::Thread`), so a reply comes
/// back to the case.
fn customer_update(cx: &Context<'_>, x: &mut Expansion) {
    let Some(email) = cx.case.caller_email.as_ref().filter(|_| cx.channels.email) else {
        return;
    };
    let by_staff = cx
        .author_id
        .is_some_and(|id| cx.roster.iter().any(|u| u.id == id));
    let c = cx.case;
    let (reason, subject, text) = match cx.body {
        ActivityBody::Opened {
            channel: Channel::Email,
            ..
        } => (
            "acknowledgement",
            format!("[{}] Case opened: {}", c.number, c.summary),
            format!(
                "we have opened case {} for your message.\n\nTo add to it, reply to this e-mail \
                 and keep the case number in the subject.",
                c.number
            ),
        ),
        ActivityBody::Note { text, .. } if by_staff => (
            "customer_note",
            format!("[{}] Update: {}", c.number, c.summary),
            format!("{} wrote on case {}:\n\n{text}", cx.author, c.number),
        ),
        ActivityBody::StatusChanged { to, reason, .. } if by_staff && *to != Status::Closed => (
            "customer_status",
            format!("[{}] Status {}: {}", c.number, to, c.summary),
            format!(
                "case {} is now {to}.{}",
                c.number,
                reason
                    .as_deref()
                    .map(|r| format!("\n\n{r}"))
                    .unwrap_or_default()
            ),
        ),
        _ => return,
    };
    x.deliveries.push(NewDelivery {
        reason: reason.into(),
        channel: "email",
        recipient_id: None,
        recipient: c.caller_name.clone(),
        address: email.clone(),
        subject,
        body: format!(
            "Dear {},\n\n{text}\n{}\nYour support team\n",
            c.caller_name,
            case_link(cx)
        ),
        not_before: cx.now,
    });
}

fn sla_event(
    cx: &Context<'_>,
    x: &mut Expansion,
    event: SlaEventKind,
    level: Option<u8>,
    due: DateTime<Utc>,
    late: bool,
) {
    let due = due_line(due, late);
    let engineer = cx.case.assignee_name.as_deref().unwrap_or("nobody");
    match event {
        SlaEventKind::ResponseReminder => {
            if let Some(u) = assignee(cx) {
                let m = Message {
                    reason: "reminder".into(),
                    headline: "reminder: contact the customer".into(),
                    detail: format!("You have not recorded a response yet.\n{due}"),
                    sms: true,
                };
                to_user(cx, x, u, &m);
            }
            let m = Message {
                reason: "reminder".into(),
                headline: format!("no response yet from {engineer}: remind them"),
                detail: due,
                sms: true,
            };
            for u in with_role(cx, Role::Dispatcher) {
                to_user(cx, x, u, &m);
            }
        }
        SlaEventKind::ReassignPrompt => {
            let m = Message {
                reason: "reassign_prompt".into(),
                headline: format!("still no response from {engineer}: reassign"),
                detail: due,
                sms: true,
            };
            for u in with_role(cx, Role::Dispatcher) {
                to_user(cx, x, u, &m);
                x.alerts.push(NewAlert {
                    user_id: u.id,
                    level: None,
                    message: format!("{}: no response from {engineer}; reassign", cx.case.number),
                });
            }
        }
        SlaEventKind::Reassigned => {
            let m = Message {
                reason: "reassigned".into(),
                headline: format!("reassigned automatically to {engineer}"),
                detail: format!("No response by the reassign point.\n{due}"),
                sms: false,
            };
            for u in with_role(cx, Role::Dispatcher) {
                to_user(cx, x, u, &m);
            }
        }
        SlaEventKind::ResponseBreached | SlaEventKind::ResolutionBreached => {
            let what = if event == SlaEventKind::ResponseBreached {
                "response"
            } else {
                "resolution"
            };
            let m = Message {
                reason: format!("{what}_breached"),
                headline: format!("{what} target missed"),
                detail: due,
                sms: false,
            };
            if let Some(u) = assignee(cx) {
                to_user(cx, x, u, &m);
            }
            for u in with_role(cx, Role::Dispatcher) {
                to_user(cx, x, u, &m);
            }
        }
        SlaEventKind::Escalated => {
            let level = i64::from(level.unwrap_or(1));
            let title = crate::directory::MANAGER_LEVELS
                .get(usize::try_from(level - 1).unwrap_or(0))
                .copied()
                .unwrap_or("manager");
            let m = Message {
                reason: format!("escalation:{level}"),
                headline: format!("escalated to level {level} ({title})"),
                detail: format!("Not diagnosed in time; engineer: {engineer}.\n{due}"),
                sms: true,
            };
            for u in with_role(cx, Role::Manager).filter(|u| u.manager_level == Some(level)) {
                to_user(cx, x, u, &m);
                x.alerts.push(NewAlert {
                    user_id: u.id,
                    level: Some(level),
                    message: format!(
                        "{} escalated to level {level}: {}",
                        cx.case.number, cx.case.summary
                    ),
                });
            }
        }
    }
}

/// Closing sends the customer contact a survey link, and a reminder later
/// (cancelled when they answer).
fn survey(cx: &Context<'_>, x: &mut Expansion) {
    let Some(email) = &cx.case.caller_email else {
        return;
    };
    if !cx.channels.email {
        return;
    }
    let base = cx
        .public_url
        .unwrap_or("http://127.0.0.1:8080")
        .trim_end_matches('/');
    let link = format!("{base}/survey/{}", cx.survey_token);
    let expires = cx.now + cx.survey_valid_for;
    let body = |intro: &str| {
        format!(
            "Dear {},\n\n{intro}\n\nCase {}: {}\n\nPlease rate our service from 1 to 5 (no login needed):\n{link}\n\n\
             The link is valid until {} UTC.\n\nYour support team\n",
            cx.case.caller_name,
            cx.case.number,
            cx.case.summary,
            expires.format("%Y-%m-%d")
        )
    };
    let mut d = NewDelivery {
        reason: "survey".into(),
        channel: "email",
        recipient_id: None,
        recipient: cx.case.caller_name.clone(),
        address: email.clone(),
        subject: format!("[{}] How did we do? {}", cx.case.number, cx.case.summary),
        body: body("your case is closed. We would like to know how we did."),
        not_before: cx.now,
    };
    x.deliveries.push(d.clone());
    d.reason = "survey_reminder".into();
    d.subject = format!("[{}] Reminder: how did we do?", cx.case.number);
    d.body = body("a short reminder: we would still like to know how we did.");
    d.not_before = cx.now + cx.survey_reminder_after;
    x.deliveries.push(d);
    x.survey = Some(NewSurvey {
        token_hash: crate::auth::hash_token(cx.survey_token),
        email: email.clone(),
        engineer_id: cx.case.assignee_id,
        expires_at: expires,
    });
}

fn webhooks(cx: &Context<'_>, x: &mut Expansion) {
    let kind = cx.body.kind();
    let targets: Vec<&String> = cx
        .channels
        .webhooks
        .iter()
        .filter(|(_, events)| events.is_empty() || events.iter().any(|e| e == kind))
        .map(|(url, _)| url)
        .collect();
    if targets.is_empty() {
        return;
    }
    let c = cx.case;
    let payload = serde_json::json!({
        "event": kind,
        "case": {
            "number": c.number,
            "priority": priority(cx),
            "status": c.status,
            "summary": c.summary,
            "organization": c.organization_name,
            "device": c.device_name,
            "assignee": c.assignee_name,
        },
        "entry": {
            "seq": cx.seq,
            "at": cx.at,
            "author": cx.author,
            "body": cx.body,
        },
    })
    .to_string();
    for url in targets {
        x.deliveries.push(NewDelivery {
            reason: format!("webhook:{kind}"),
            channel: "webhook",
            recipient_id: None,
            recipient: url.clone(),
            address: url.clone(),
            subject: kind.into(),
            body: payload.clone(),
            not_before: cx.now,
        });
    }
}

#[cfg(test)]
mod tests;
