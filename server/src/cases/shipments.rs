//! Spare shipments on a case: the one way the RMA service (`crate::rma`)
//! appends to a case's history. The shipment row, its stock change and the
//! entries are written in one transaction (`Store::shipment_step`).

use chrono::{DateTime, Utc};

use super::{entry_by, ActivityBody, Cases, Visibility};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::cases::CaseRow;
use crate::store::rma::{ShipmentRow, ShipmentStep, ShipmentTarget, StockOp};

/// What a shipment step decides: the new row, the stock change, the entries.
pub type ShipmentDecision = (ShipmentRow, StockOp, Vec<(Visibility, ActivityBody)>);

impl Cases {
    /// Run one shipment step on case `number`: by `who` (checked against
    /// the case's organisation), or by the server itself (`who` `None`,
    /// entries authored by `author`).
    pub(crate) async fn shipment_step<F>(
        &self,
        who: Option<&Principal>,
        author: &str,
        number: &str,
        target: ShipmentTarget,
        decide: F,
    ) -> Result<ShipmentRow>
    where
        F: FnOnce(&CaseRow, &ShipmentRow, DateTime<Utc>) -> Result<ShipmentDecision>,
    {
        let now = self.clock.now();
        let (author_id, author_name) = match who {
            Some(p) => (Some(p.user_id), p.display_name.as_str()),
            None => (None, author),
        };
        let (case, row) = self
            .store
            .shipment_step(number, target, |case, current| {
                if let Some(p) = who {
                    if !p.sees_organization(case.organization_id) {
                        return Err(Error::not_found(format!("case {number}")));
                    }
                }
                let (row, stock, bodies) = decide(case, current, now)?;
                let entries = bodies
                    .iter()
                    .map(|(v, b)| entry_by(author_id, author_name, now, *v, b))
                    .collect::<Result<Vec<_>>>()?;
                Ok(ShipmentStep {
                    row,
                    stock,
                    entries,
                })
            })
            .await?;
        self.changed(case.id);
        Ok(row)
    }
}
