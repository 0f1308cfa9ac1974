//! `/api/v1/reports`: what staff and managers look back on. The SLA report
//! lists every recorded SLA event (reminders, reassignments, breaches,
//! escalations) in a time range, with counts, so missed deadlines are
//! visible (SPEC.md 4).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiQuery, Auth};
use super::AppState;
use crate::auth::Action;
use crate::cases::ActivityBody;
use crate::clock::{from_micros, to_micros};
use crate::error::Error;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlaReportQuery {
    /// RFC 3339; events recorded at or after.
    pub from: DateTime<Utc>,
    /// RFC 3339; events recorded before.
    pub to: DateTime<Utc>,
    pub organization_id: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SlaReportItem {
    pub case_number: String,
    pub organization_name: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub event: crate::cases::SlaEventKind,
    pub level: Option<u8>,
    pub due_at: DateTime<Utc>,
    pub late: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SlaReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Events per kind (`escalated` split by level: `escalated_l1` ..).
    pub counts: BTreeMap<String, i64>,
    /// Distinct cases with a response or resolution breach.
    pub cases_breached: i64,
    pub items: Vec<SlaReportItem>,
    /// True when the range held more than the 10000 items returned.
    pub truncated: bool,
}

const MAX_ITEMS: i64 = 10_000;

/// SLA events in a time range: missed deadlines, escalations, reminders.
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "reports", params(SlaReportQuery),
    responses((status = 200, body = SlaReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sla_report(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<SlaReportQuery>,
) -> ApiResult<Json<SlaReport>> {
    who.require(Action::ReadReports)?;
    if q.to <= q.from {
        return Err(Error::invalid("to", "must be after from").into());
    }
    let rows = s
        .store
        .sla_events(
            to_micros(q.from),
            to_micros(q.to),
            q.organization_id,
            MAX_ITEMS + 1,
        )
        .await?;
    let truncated = rows.len() as i64 > MAX_ITEMS;
    let mut items = Vec::new();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut breached = std::collections::BTreeSet::new();
    for (case_number, organization_name, at, body) in rows.into_iter().take(MAX_ITEMS as usize) {
        let Ok(ActivityBody::SlaEvent {
            event,
            level,
            due_at,
            late,
            ..
        }) = serde_json::from_str(&body)
        else {
            continue;
        };
        let name = serde_json::to_value(event)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let key = match level {
            Some(l) => format!("{name}_l{l}"),
            None => name.clone(),
        };
        *counts.entry(key).or_default() += 1;
        if matches!(name.as_str(), "response_breached" | "resolution_breached") {
            breached.insert(case_number.clone());
        }
        items.push(SlaReportItem {
            case_number,
            organization_name,
            recorded_at: from_micros(at),
            event,
            level,
            due_at,
            late,
        });
    }
    Ok(Json(SlaReport {
        from: q.from,
        to: q.to,
        counts,
        cases_breached: breached.len() as i64,
        items,
        truncated,
    }))
}
