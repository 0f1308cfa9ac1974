//! Escalation to an expert: a second-line engineer joins a case beside its
//! assignee (SPEC.md 2), and may then reach the case's device through the
//! remote-login relay like the assignee.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{ActivityBody, CaseView, Cases, Visibility};
use crate::auth::{Action, Principal};
use crate::error::{Error, Result};
use crate::validate::text;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExpert {
    /// The engineer or expert to bring in.
    pub user_id: i64,
    /// Why (what the expert is asked to look at).
    pub reason: String,
}

impl Cases {
    /// Escalates an open case to an expert (recorded on the case).
    pub async fn add_expert(
        &self,
        who: &Principal,
        number: &str,
        req: &NewExpert,
    ) -> Result<CaseView> {
        who.require(Action::EscalateToExpert)?;
        let reason = text("reason", &req.reason, 2000)?;
        let expert = self.assignable(req.user_id, "user_id").await?;
        let mut case_id = 0;
        let view = self
            .change(who, number, |c, _| {
                if !c.status.is_open() {
                    return Err(Error::conflict(format!(
                        "case {} is {}; reopen it first",
                        c.number, c.status
                    )));
                }
                if c.assignee_id == Some(expert.id) {
                    return Err(Error::invalid(
                        "user_id",
                        format!("{} is the case's assignee already", expert.name),
                    ));
                }
                case_id = c.id;
                Ok(vec![(
                    Visibility::Internal,
                    ActivityBody::ExpertAdded {
                        expert: expert.clone(),
                        reason: reason.clone(),
                    },
                )])
            })
            .await?;
        self.store
            .add_case_expert(case_id, expert.id, Some(who.user_id), self.clock.now())
            .await?;
        Ok(view)
    }
}
