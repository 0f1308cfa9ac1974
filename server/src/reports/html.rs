//! The service report as one self-contained HTML document (inline style, no
//! scripts, no external resources): shown in the console and printed to PDF
//! as it is.

use maud::{html, Markup, DOCTYPE};

use super::{ClockSummary, PriorityCount, ServiceReport};
use crate::dashboard::kind_label;

const STYLE: &str = "
body { font-family: 'DejaVu Sans', sans-serif; color: #1b1f24; margin: 2em; font-size: 11pt; }
h1 { font-size: 20pt; margin-bottom: 0.2em; color: #123d73; }
h2 { font-size: 13pt; border-bottom: 2px solid #123d73; padding-bottom: 0.15em; margin-top: 1.6em; }
p.sub { color: #4a5563; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #c9d1dc; padding: 0.3em 0.5em; text-align: left; }
th { background: #e8eef6; }
td.n { text-align: right; }
.note { color: #4a5563; font-style: italic; }
.kpi { display: inline-block; border: 1px solid #c9d1dc; background: #f4f7fb; padding: 0.5em 1em; margin: 0 0.6em 0.6em 0; }
.kpi b { display: block; font-size: 16pt; color: #123d73; }
";

fn percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

fn hours(secs: Option<i64>) -> String {
    match secs {
        Some(s) => {
            let m = (s + 30) / 60;
            format!("{}h {:02}m", m / 60, m % 60)
        }
        None => "-".into(),
    }
}

fn total(list: &[PriorityCount]) -> i64 {
    list.iter().map(|c| c.count).sum()
}

fn clock_cells(c: &ClockSummary) -> Markup {
    html! {
        td.n { (c.met) } td.n { (c.missed) } td.n { (c.pending) }
        td.n { (percent(c.percent)) } td.n { (hours(c.mean_secs)) }
    }
}

/// The whole report document.
pub fn document(r: &ServiceReport) -> Markup {
    let title = format!(
        "Service report {} - {} to {}",
        r.organization_name, r.from, r.to
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (STYLE) }
            }
            body { (body(r)) }
        }
    }
}

/// The report's content (also embedded in console pages).
pub fn body(r: &ServiceReport) -> Markup {
    let c = &r.compliance;
    html! {
        h1 { "Service report: " (r.organization_name) }
        p.sub { "Period " (r.from) " to " (r.to) " (UTC, both days included). Generated "
                (r.generated_at.format("%Y-%m-%d %H:%M UTC")) "." }
        div {
            span.kpi { b { (total(&r.opened)) } "cases opened" }
            span.kpi { b { (total(&r.closed)) } "cases closed" }
            span.kpi { b { (percent(c.response.percent)) } "responses in time" }
            span.kpi { b { (percent(c.resolution.percent)) } "resolutions in time" }
            span.kpi { b { (r.escalations) } "escalations" }
            span.kpi { b { (r.spares.iter().map(|s| s.quantity).sum::<i64>()) } "spares shipped" }
        }
        h2 { "Cases by priority" }
        table {
            thead { tr { th { "Priority" } th { "Opened" } th { "Closed" } } }
            tbody {
                @for (o, cl) in r.opened.iter().zip(&r.closed) {
                    tr { td { (o.priority.as_str()) } td.n { (o.count) } td.n { (cl.count) } }
                }
                tr { th { "Total" } th.n { (total(&r.opened)) } th.n { (total(&r.closed)) } }
            }
        }
        h2 { "SLA compliance" }
        p { "Of the " (c.cases) " cases opened in the period, against their contracts' targets; times are working time of the contract's calendar, pauses excluded."
            @if c.unevaluated > 0 { " " (c.unevaluated) " could not be evaluated." } }
        table {
            thead {
                tr { th rowspan="2" { "Priority" } th rowspan="2" { "Cases" } th colspan="5" { "Response" } th colspan="5" { "Resolution" } }
                tr { @for _ in 0..2 { th { "met" } th { "missed" } th { "running" } th { "in time" } th { "mean time" } } }
            }
            tbody {
                @for p in &c.by_priority {
                    tr { td { (p.priority.as_str()) } td.n { (p.cases) } (clock_cells(&p.response)) (clock_cells(&p.resolution)) }
                }
                tr { th { "All" } th.n { (c.cases) } (clock_cells(&c.response)) (clock_cells(&c.resolution)) }
            }
        }
        h2 { "Breaches and escalations" }
        p { (r.cases_breached) " case(s) missed a response or resolution target; " (r.escalations) " escalation(s) to managers." }
        @if r.incidents.is_empty() {
            p.note { "None in the period." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Case" } th { "Event" } } }
                tbody { @for i in &r.incidents {
                    tr { td { (i.at.format("%Y-%m-%d %H:%M")) } td { (i.case_number) }
                         td { (kind_label(i.event)) @if let Some(l) = i.level { " (level " (l) ")" } } }
                } }
            }
        }
        h2 { "Spare parts shipped" }
        @if r.spares.is_empty() {
            p.note { "None in the period." }
        } @else {
            table {
                thead { tr { th { "Shipped" } th { "Case" } th { "Part" } th { "Quantity" } th { "State now" } } }
                tbody { @for s in &r.spares {
                    tr { td { (s.shipped_at.format("%Y-%m-%d")) } td { (s.case_number) }
                         td { (s.part_number) " " (s.description) } td.n { (s.quantity) } td { (s.state.replace('_', " ")) } }
                } }
            }
        }
        h2 { "Upgrades applied" }
        @if r.upgrades.is_empty() {
            p.note { "None in the period." }
        } @else {
            table {
                thead { tr { th { "Ended" } th { "Device" } th { "Campaign" } th { "From" } th { "To" } th { "Outcome" } th { "Case" } } }
                tbody { @for u in &r.upgrades {
                    tr { td { (u.finished_at.format("%Y-%m-%d")) } td { (u.device) } td { (u.campaign) }
                         td { (u.from_version.as_deref().unwrap_or("?")) } td { (u.to_version) }
                         td { (u.state.replace('_', " ")) } td { (u.case_number.as_deref().unwrap_or("")) } }
                } }
            }
        }
        h2 { "Preventive inspections" }
        @if r.inspections.performed.is_empty() {
            p.note { "None performed in the period." }
        } @else {
            table {
                thead { tr { th { "Performed" } th { "Inspection" } th { "Contract" } th { "Due" } th { "Engineer" } th { "Findings" } th { "Follow-up cases" } } }
                tbody { @for i in &r.inspections.performed {
                    tr { td { (i.performed_at.format("%Y-%m-%d")) } td { (i.schedule_name) } td { (i.contract_number) }
                         td { (i.due_on) } td { (i.engineer) } td.n { (i.findings) } td { (i.follow_up_cases.join(", ")) } }
                } }
            }
        }
        @if !r.inspections.outstanding.is_empty() {
            p { "Due by the end of the period and not yet performed:" }
            table {
                thead { tr { th { "Due" } th { "Inspection" } th { "Contract" } th { "Site" } th { "State" } } }
                tbody { @for d in &r.inspections.outstanding {
                    tr { td { (d.next_due) } td { (d.schedule_name) } td { (d.contract_number) }
                         td { (d.site_name.as_deref().unwrap_or("all sites")) }
                         td { @if d.overdue { "overdue" } @else { "due" } } }
                } }
            }
        }
    }
}
