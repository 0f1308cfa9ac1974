//! Field visits and field promises on a case: the one way the field service
//! (`crate::field`) appends to a case's history. The visit row, the parts it
//! takes from stock, the case's promise row and the entries are written in
//! one transaction (`Store::field_step`).

use chrono::{DateTime, Utc};

use super::{entry_by, ActivityBody, Cases, UserRef, Visibility};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::cases::CaseRow;
use crate::store::field::{FieldStep, PromiseRow, StockUse, VisitRow, VisitTarget};

/// What a field step decides: the new visit row, the new promise row, the
/// stock taken, the entries.
pub type FieldDecision = (
    Option<VisitRow>,
    Option<PromiseRow>,
    Vec<StockUse>,
    Vec<(Visibility, ActivityBody)>,
);

impl Cases {
    /// An active engineer or expert, for a visit (`field` names the input).
    pub(crate) async fn field_engineer(&self, id: i64, field: &str) -> Result<UserRef> {
        self.assignable(id, field).await
    }

    /// Run one field step on case `number`: by `who` (checked against the
    /// case's organisation), or by the server itself (`who` `None`, entries
    /// authored by `author`).
    pub(crate) async fn field_step<F>(
        &self,
        who: Option<&Principal>,
        author: &str,
        number: &str,
        target: VisitTarget,
        decide: F,
    ) -> Result<Option<VisitRow>>
    where
        F: FnOnce(
            &CaseRow,
            Option<&VisitRow>,
            Option<&PromiseRow>,
            DateTime<Utc>,
        ) -> Result<FieldDecision>,
    {
        let now = self.clock.now();
        let (author_id, author_name) = match who {
            Some(p) => (Some(p.user_id), p.display_name.as_str()),
            None => (None, author),
        };
        let (case, row) = self
            .store
            .field_step(number, target, |case, visit, promise| {
                if let Some(p) = who {
                    if !p.sees_organization(case.organization_id) {
                        return Err(Error::not_found(format!("case {number}")));
                    }
                }
                let (visit, promise, uses, bodies) = decide(case, visit, promise, now)?;
                let entries = bodies
                    .iter()
                    .map(|(v, b)| entry_by(author_id, author_name, now, *v, b))
                    .collect::<Result<Vec<_>>>()?;
                Ok(FieldStep {
                    visit,
                    promise,
                    uses,
                    entries,
                })
            })
            .await?;
        self.changed(case.id);
        Ok(row)
    }
}
