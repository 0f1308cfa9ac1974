//! What closes the loop on a case: the fault analysis report (required before
//! a P1/P2 case closes), the customer's satisfaction survey answer, alert
//! acknowledgements, and the list of notifications sent for a case.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ActivityBody, CaseView, Cases, Priority, Visibility};
use crate::auth::{hash_token, Action, Principal, Role};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::store::notify::Alert;
use crate::validate::{opt_text, text};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFaultReport {
    /// What caused the fault.
    pub cause: String,
    /// What was done about it.
    pub actions: String,
    /// How it is kept from happening again.
    pub prevention: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDiagnosis {
    /// The cause found, in a sentence or two.
    pub summary: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    /// 1 (poor) .. 5 (excellent).
    pub rating: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A notification as listed on a case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The history entry that caused it.
    pub seq: i64,
    /// The rule: assigned, reminder, reassign_prompt, escalation:N, survey, ...
    pub reason: String,
    /// email, sms or webhook.
    pub channel: String,
    pub recipient: String,
    pub address: String,
    pub subject: String,
    /// pending, sent, failed or cancelled.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Not sent before (quiet hours, retry back-off, survey reminder).
    pub not_before: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The survey a link refers to, for the form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SurveyView {
    pub case_number: String,
    pub summary: String,
    pub answered: bool,
    pub expires_at: DateTime<Utc>,
}

/// Whether a P1/P2 case has the report it needs to close.
pub(super) fn needs_report(priority: Priority, history_has_report: bool) -> bool {
    priority <= Priority::P2 && !history_has_report
}

impl Cases {
    /// Whether the case's history holds a fault analysis report.
    pub(super) async fn has_fault_report(&self, case_id: i64) -> Result<bool> {
        Ok(self
            .store
            .entries(case_id)
            .await?
            .iter()
            .any(|e| e.kind == "fault_report"))
    }

    /// File the fault analysis report (public; e-mailed to the contact).
    pub async fn add_fault_report(
        &self,
        who: &Principal,
        number: &str,
        req: &NewFaultReport,
    ) -> Result<CaseView> {
        who.require(Action::WriteFaultReport)?;
        let body = ActivityBody::FaultReport {
            cause: text("cause", &req.cause, 20_000)?,
            actions: text("actions", &req.actions, 20_000)?,
            prevention: text("prevention", &req.prevention, 20_000)?,
        };
        self.change(who, number, |c, _| {
            if c.status == super::Status::Closed {
                return Err(Error::conflict(format!(
                    "case {} is closed; reopen it to add a report",
                    c.number
                )));
            }
            Ok(vec![(Visibility::Public, body)])
        })
        .await
    }

    /// Record the diagnosis (the cause is known): escalation by time without
    /// diagnosis stops until the case is reopened.
    pub async fn diagnose(
        &self,
        who: &Principal,
        number: &str,
        req: &NewDiagnosis,
    ) -> Result<CaseView> {
        who.require(Action::Classify)?;
        let summary = text("summary", &req.summary, 4000)?;
        let has = {
            let row = self.get(who, number).await?;
            let entries = self.store.entries(row.id).await?;
            // Diagnosed since the last reopening?
            let mut diagnosed = false;
            for e in &entries {
                match serde_json::from_str::<ActivityBody>(&e.body) {
                    Ok(ActivityBody::Diagnosed { .. }) => diagnosed = true,
                    Ok(ActivityBody::StatusChanged {
                        to: super::Status::Reopened,
                        ..
                    }) => diagnosed = false,
                    _ => {}
                }
            }
            diagnosed
        };
        self.change(who, number, |c, _| {
            if !c.status.is_open() {
                return Err(Error::conflict(format!(
                    "case {} is {}; reopen it first",
                    c.number, c.status
                )));
            }
            if has {
                return Err(Error::conflict(format!(
                    "case {} is diagnosed already",
                    c.number
                )));
            }
            Ok(vec![(
                Visibility::Public,
                ActivityBody::Diagnosed { summary },
            )])
        })
        .await
    }

    /// The notifications sent (or due) for a case (staff).
    pub async fn deliveries(&self, who: &Principal, number: &str) -> Result<Vec<DeliveryView>> {
        who.require(Action::ReadInternal)?;
        let case = self.get(who, number).await?;
        Ok(self
            .store
            .deliveries_for_case(case.id)
            .await?
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                seq: d.seq,
                reason: d.reason,
                channel: d.channel,
                recipient: d.recipient,
                address: d.address,
                subject: d.subject,
                status: d.status,
                attempts: d.attempts,
                last_error: d.last_error,
                created_at: from_micros(d.created_at),
                not_before: from_micros(d.not_before),
                sent_at: d.sent_at.map(from_micros),
            })
            .collect())
    }

    /// Alerts for the caller; `all` (admins only) lists everyone's.
    pub async fn alerts(
        &self,
        who: &Principal,
        all: bool,
        acknowledged: bool,
    ) -> Result<Vec<Alert>> {
        who.require(Action::ReadInternal)?;
        if all && who.role != Role::Admin {
            return Err(Error::forbidden("only admins list everyone's alerts"));
        }
        let user = (!all).then_some(who.user_id);
        self.store.alerts(user, acknowledged, 500).await
    }

    /// Acknowledge an alert (its recipient or an admin); recorded on the case.
    pub async fn acknowledge_alert(&self, who: &Principal, id: i64) -> Result<Alert> {
        who.require(Action::ReadInternal)?;
        let not_found = || Error::not_found(format!("alert {id}"));
        let alert = self.store.alert(id).await?.ok_or_else(not_found)?;
        if alert.user_id != who.user_id && who.role != Role::Admin {
            return Err(not_found());
        }
        if alert.acknowledged_at.is_some() {
            return Ok(alert);
        }
        if self.store.acknowledge_alert(id, self.clock.now()).await? {
            let body = ActivityBody::AlertAcknowledged {
                alert_id: id,
                level: alert.level,
            };
            self.change(who, &alert.case_number, |_, _| {
                Ok(vec![(Visibility::Internal, body)])
            })
            .await?;
        }
        self.store.alert(id).await?.ok_or_else(not_found)
    }

    async fn survey_by_token(&self, token: &str) -> Result<crate::store::notify::SurveyRow> {
        let unknown = || Error::not_found("survey link (unknown or mistyped)");
        if token.len() > 200 {
            return Err(unknown());
        }
        self.store
            .survey_by_token(&hash_token(token))
            .await?
            .ok_or_else(unknown)
    }

    /// What a survey link refers to (no login: the token is the key).
    pub async fn survey(&self, token: &str) -> Result<SurveyView> {
        let s = self.survey_by_token(token).await?;
        let case = self
            .store
            .case_by_id(s.case_id)
            .await?
            .ok_or_else(|| Error::not_found("survey case"))?;
        Ok(SurveyView {
            case_number: case.number,
            summary: case.summary,
            answered: s.answered_at.is_some(),
            expires_at: from_micros(s.expires_at),
        })
    }

    /// Record a survey answer once; it becomes a public case activity.
    pub async fn answer_survey(&self, token: &str, a: &SurveyAnswer) -> Result<SurveyView> {
        check_answer(a)?;
        let s = self.survey_by_token(token).await?;
        let now = self.clock.now();
        if s.expires_at <= to_micros(now) {
            return Err(Error::conflict("this survey link has expired"));
        }
        let case = self
            .store
            .case_by_id(s.case_id)
            .await?
            .ok_or_else(|| Error::not_found("survey case"))?;
        let author = format!("{} (survey)", case.caller_name);
        self.record_answer(&s, &case.number, &author, a).await?;
        self.survey(token).await
    }

    /// A signed-in customer answers the survey of their closed case in the
    /// portal: the survey e-mailed for this closing, if there is one, else
    /// one made now. Once per closing, like the link.
    pub async fn answer_survey_signed_in(
        &self,
        who: &Principal,
        number: &str,
        a: &SurveyAnswer,
    ) -> Result<()> {
        if who.role != crate::auth::Role::Customer {
            return Err(Error::forbidden(
                "the satisfaction survey is for the customer",
            ));
        }
        check_answer(a)?;
        let row = self.get(who, number).await?;
        if row.status != crate::cases::Status::Closed.as_str() {
            return Err(Error::conflict("the survey opens once the case is closed"));
        }
        let closing = self
            .store
            .entries(row.id)
            .await?
            .into_iter()
            .filter(|e| {
                matches!(
                    serde_json::from_str::<ActivityBody>(&e.body),
                    Ok(ActivityBody::StatusChanged {
                        to: crate::cases::Status::Closed,
                        ..
                    })
                )
            })
            .map(|e| e.seq)
            .max()
            .ok_or_else(|| Error::conflict("the case has no closing entry"))?;
        let now = self.clock.now();
        let email = self
            .store
            .user(who.user_id)
            .await?
            .and_then(|u| u.email)
            .unwrap_or_else(|| who.username.clone());
        let s = self
            .store
            .survey_for_closing(
                row.id,
                closing,
                &hash_token(&crate::auth::generate_token()),
                &email,
                row.assignee_id,
                now,
            )
            .await?;
        self.record_answer(&s, number, &who.display_name, a).await
    }

    async fn record_answer(
        &self,
        s: &crate::store::notify::SurveyRow,
        number: &str,
        author: &str,
        a: &SurveyAnswer,
    ) -> Result<()> {
        let comment = opt_text("comment", &a.comment, 4000)?;
        let now = self.clock.now();
        if !self
            .store
            .answer_survey(s.id, a.rating, comment.as_deref(), now)
            .await?
        {
            return Err(Error::conflict("this survey was answered already"));
        }
        let body = ActivityBody::SurveyAnswered {
            rating: u8::try_from(a.rating).unwrap_or(0),
            comment,
        };
        self.record_system(number, author, Visibility::Public, &body)
            .await?;
        Ok(())
    }
}

fn check_answer(a: &SurveyAnswer) -> Result<()> {
    if !(1..=5).contains(&a.rating) {
        return Err(Error::invalid(
            "rating",
            format!("{} is not 1..5", a.rating),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_p1_and_p2_need_a_report() {
        assert!(needs_report(Priority::P1, false));
        assert!(needs_report(Priority::P2, false));
        assert!(!needs_report(Priority::P2, true));
        assert!(!needs_report(Priority::P3, false));
        assert!(!needs_report(Priority::P4, false));
    }
}
