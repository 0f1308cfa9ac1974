//! The manager dashboard (`/dashboard`): open cases by priority and age,
//! breaches and escalations, SLA compliance per contract, engineer, vendor
//! and case type with the mean times to respond and resolve, and cases
//! opened per day; three server-drawn charts, and every table as a CSV
//! download (`/dashboard/{table}.csv?from=..&to=..`). What it shows is
//! computed by [`crate::dashboard`]; who may see it is decided there too
//! ([`crate::auth::Action::ReadReports`], as for the report API).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{self, Series};
use super::layout::{
    priority_badge, raw_svg, span_words, table_wrap, time, Nav, Page, WebError, WebResult,
};
use super::{csv, WebAuth};
use crate::cases::Priority;
use crate::dashboard::{
    kind_label, AgeBucket, Compliance, Dashboard, Events, Group, OpenByAge, Period, Periods,
};
use crate::http::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// How many breaches and escalations the page lists (the CSV has them all).
const LISTED: usize = 200;
/// How many contracts the compliance chart shows (those with most cases).
const CHART_CONTRACTS: usize = 12;

const PRIORITY_COLORS: [&str; 4] = ["#b00020", "#d35400", "#2e6da4", "#5b6475"];

fn priority_series() -> Vec<Series<'static>> {
    Priority::ALL
        .iter()
        .zip(PRIORITY_COLORS)
        .map(|(p, color)| Series {
            label: p.as_str(),
            color,
        })
        .collect()
}

const CLOCK_SERIES: [Series<'static>; 2] = [
    Series {
        label: "Response",
        color: "#1f5fbf",
    },
    Series {
        label: "Resolution",
        color: "#1e7b34",
    },
];

// ------------------------------------------------------------------ tables

/// One cell, shown on the page and written to CSV.
enum Cell {
    Text(String),
    Case(String),
    Priority(Priority),
    Num(i64),
    Percent(Option<f64>),
    /// Working seconds (shown as hours and minutes; CSV in minutes).
    Secs(Option<i64>),
    Time(DateTime<Utc>),
}

impl Cell {
    fn html(&self) -> Markup {
        match self {
            Cell::Text(t) => html! { (t) },
            Cell::Case(n) => html! { a.nowrap href={"/cases/" (n)} { (n) } },
            Cell::Priority(p) => priority_badge(*p),
            Cell::Num(n) => html! { (n) },
            Cell::Percent(Some(p)) => html! { (format!("{p:.1}%")) },
            Cell::Secs(Some(s)) => html! { (span_words(*s)) },
            Cell::Percent(None) | Cell::Secs(None) => html! { span.muted { "-" } },
            Cell::Time(t) => html! { span.nowrap { (time(*t)) } },
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(t) | Cell::Case(t) => t.clone(),
            Cell::Priority(p) => p.as_str().to_string(),
            Cell::Num(n) => n.to_string(),
            Cell::Percent(Some(p)) => format!("{p:.1}"),
            Cell::Secs(Some(s)) => format!("{:.1}", *s as f64 / 60.0),
            Cell::Percent(None) | Cell::Secs(None) => String::new(),
            Cell::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Cell::Num(_) | Cell::Percent(_) | Cell::Secs(_))
    }
}

/// A column: its heading on the page and in the CSV file.
struct Col {
    head: &'static str,
    csv: &'static str,
}

const fn col(head: &'static str, csv: &'static str) -> Col {
    Col { head, csv }
}

struct Table {
    slug: &'static str,
    /// Headings over runs of columns (label, how many), above the columns'.
    groups: Vec<(&'static str, usize)>,
    /// The period the table covers (none: as of now).
    period: Option<Period>,
    cols: Vec<Col>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn csv_href(&self) -> String {
        match self.period {
            Some(p) => format!("/dashboard/{}.csv?{}", self.slug, p.query()),
            None => format!("/dashboard/{}.csv", self.slug),
        }
    }

    /// The table on the page, the first `limit` rows.
    fn html(&self, caption: &str, limit: usize) -> Markup {
        let href = self.csv_href();
        table_wrap(
            Some(&href),
            html! {
                table id={"table-" (self.slug)} {
                    caption.sr { (caption) }
                    thead {
                    @if !self.groups.is_empty() {
                        tr {
                            @for (label, span) in &self.groups {
                                @if label.is_empty() {
                                    td colspan=(span) {}
                                } @else {
                                    th scope="colgroup" colspan=(span) { (label) }
                                }
                            }
                        }
                    }
                    tr {
                        @for (i, c) in self.cols.iter().enumerate() {
                            @if self.rows.first().is_some_and(|r| r.get(i).is_some_and(Cell::numeric)) {
                                th.num scope="col" { (c.head) }
                            } @else {
                                th scope="col" { (c.head) }
                            }
                        }
                    } }
                    tbody {
                        @for r in self.rows.iter().take(limit) {
                            tr {
                                @for c in r {
                                    @if c.numeric() { td.num { (c.html()) } } @else { td { (c.html()) } }
                                }
                            }
                        }
                        @if self.rows.is_empty() {
                            tr { td.muted colspan=(self.cols.len()) { "None in this period." } }
                        }
                    }
                }
            },
        )
    }

    fn csv(&self) -> String {
        let head: Vec<&str> = self.cols.iter().map(|c| c.csv).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::csv).collect())
            .collect();
        csv::document(&head, &rows)
    }

    fn filename(&self, now: DateTime<Utc>) -> String {
        match self.period {
            Some(p) => format!("outpost-{}-{}-to-{}.csv", self.slug, p.from, p.to),
            None => format!("outpost-{}-{}.csv", self.slug, now.format("%Y-%m-%d")),
        }
    }
}

fn open_table(o: &OpenByAge) -> Table {
    let mut cols = vec![col("Priority", "Priority")];
    for b in AgeBucket::ALL {
        cols.push(Col {
            head: b.label(),
            csv: b.label(),
        });
    }
    cols.push(col("Total", "Total"));
    let mut rows: Vec<Vec<Cell>> = Priority::ALL
        .iter()
        .map(|p| {
            let mut r = vec![Cell::Priority(*p)];
            r.extend(AgeBucket::ALL.iter().map(|b| Cell::Num(o.get(*p, *b))));
            r.push(Cell::Num(o.priority_total(*p)));
            r
        })
        .collect();
    let mut total = vec![Cell::Text("All".into())];
    total.extend(AgeBucket::ALL.iter().map(|b| Cell::Num(o.bucket_total(*b))));
    total.push(Cell::Num(o.total()));
    rows.push(total);
    Table {
        slug: "open-cases",
        groups: Vec::new(),
        period: None,
        cols,
        rows,
    }
}

fn event_counts_table(e: &Events) -> Table {
    Table {
        slug: "sla-event-counts",
        groups: Vec::new(),
        period: Some(e.period),
        cols: vec![
            col("Event", "Event"),
            col("Manager level", "Manager level"),
            col("Count", "Count"),
        ],
        rows: e
            .counts
            .iter()
            .map(|c| {
                vec![
                    Cell::Text(kind_label(c.kind).into()),
                    Cell::Text(c.level.map(|l| format!("L{l}")).unwrap_or_default()),
                    Cell::Num(c.count),
                ]
            })
            .collect(),
    }
}

fn events_table(e: &Events) -> Table {
    Table {
        slug: "breaches-escalations",
        groups: Vec::new(),
        period: Some(e.period),
        cols: vec![
            col("Case", "Case"),
            col("Customer", "Customer"),
            col("Event", "Event"),
            col("Level", "Manager level"),
            col("When", "Recorded at (UTC)"),
            col("Due", "Due at (UTC)"),
            col("Late", "Recorded late"),
        ],
        rows: e
            .items
            .iter()
            .map(|i| {
                vec![
                    Cell::Case(i.case_number.clone()),
                    Cell::Text(i.organization.clone().unwrap_or_default()),
                    Cell::Text(kind_label(i.kind).into()),
                    Cell::Text(i.level.map(|l| format!("L{l}")).unwrap_or_default()),
                    Cell::Time(i.at),
                    Cell::Time(i.due_at),
                    Cell::Text(if i.late { "yes" } else { "" }.into()),
                ]
            })
            .collect(),
    }
}

/// The compliance tables: (slug, what the first column names).
const GROUPINGS: [(&str, &str); 4] = [
    ("compliance-by-contract", "Contract"),
    ("compliance-by-engineer", "Engineer"),
    ("compliance-by-vendor", "Vendor"),
    ("compliance-by-type", "Case type"),
];

fn groups<'a>(c: &'a Compliance, slug: &str) -> &'a [Group] {
    match slug {
        "compliance-by-contract" => &c.by_contract,
        "compliance-by-engineer" => &c.by_engineer,
        "compliance-by-vendor" => &c.by_vendor,
        _ => &c.by_type,
    }
}

fn compliance_table(c: &Compliance, slug: &'static str, first: &'static str) -> Table {
    let rows = groups(c, slug)
        .iter()
        .map(|g| {
            let name = if slug == "compliance-by-type" {
                g.name.replace('_', " ")
            } else {
                g.name.clone()
            };
            vec![
                Cell::Text(name),
                Cell::Num(g.cases),
                Cell::Num(g.response.met),
                Cell::Num(g.response.missed),
                Cell::Num(g.response.pending),
                Cell::Percent(g.response.percent()),
                Cell::Num(g.resolution.met),
                Cell::Num(g.resolution.missed),
                Cell::Num(g.resolution.pending),
                Cell::Percent(g.resolution.percent()),
                Cell::Secs(g.response.mean_secs()),
                Cell::Secs(g.resolution.mean_secs()),
            ]
        })
        .collect();
    Table {
        slug,
        groups: vec![
            ("", 2),
            ("Response", 4),
            ("Resolution", 4),
            ("Mean working time", 2),
        ],
        period: Some(c.period),
        cols: vec![
            col(first, first),
            col("Cases", "Cases"),
            col("Met", "Response met"),
            col("Missed", "Response missed"),
            col("Open", "Response open"),
            col("% met", "Response met %"),
            col("Met", "Resolution met"),
            col("Missed", "Resolution missed"),
            col("Open", "Resolution open"),
            col("% met", "Resolution met %"),
            col("To respond", "Mean time to respond (working minutes)"),
            col("To resolve", "Mean time to resolve (working minutes)"),
        ],
        rows,
    }
}

fn per_day_table(c: &Compliance) -> Table {
    let mut cols = vec![col("Day", "Day (UTC)")];
    for p in Priority::ALL {
        cols.push(Col {
            head: p.as_str(),
            csv: p.as_str(),
        });
    }
    cols.push(col("Total", "Total"));
    Table {
        slug: "opened-per-day",
        groups: Vec::new(),
        period: Some(c.period),
        cols,
        rows: c
            .per_day
            .iter()
            .map(|(day, n)| {
                let mut r = vec![Cell::Text(day.to_string())];
                r.extend(n.iter().map(|v| Cell::Num(*v)));
                r.push(Cell::Num(n.iter().sum()));
                r
            })
            .collect(),
    }
}

// -------------------------------------------------------------------- page

fn periods_of(q: &PeriodQuery, now: DateTime<Utc>) -> crate::error::Result<Periods> {
    Periods::choose(q.from.as_deref(), q.to.as_deref(), now.date_naive())
}

fn period_words(p: Period) -> String {
    format!(
        "{} to {}",
        p.from.format("%a %Y-%m-%d"),
        p.to.format("%a %Y-%m-%d")
    )
}

/// The same check as the report API's (the domain checks it again).
fn staff_only(who: &WebAuth) -> WebResult<()> {
    who.principal
        .require(crate::auth::Action::ReadReports)
        .map_err(|_| WebError::new(StatusCode::FORBIDDEN, "The dashboard is for staff."))
}

/// `GET /dashboard`.
pub async fn page(
    State(s): State<AppState>,
    who: WebAuth,
    Query(q): Query<PeriodQuery>,
) -> WebResult {
    staff_only(&who)?;
    let now = s.clock.now();
    let (periods, error) = match periods_of(&q, now) {
        Ok(p) => (p, None),
        Err(e) => (
            Periods::choose(None, None, now.date_naive())?,
            Some(format!(
                "The period was not understood ({e}); showing the default."
            )),
        ),
    };
    let d = crate::dashboard::load(&s.store, s.sla.current(), &who.principal, periods, now).await?;
    Ok(Page::new(&who, "Dashboard", Nav::Dashboard)
        .error(error)
        .response(render(&d)))
}

fn render(d: &Dashboard) -> Markup {
    let p = &d.periods;
    let c = &d.compliance;
    let e = &d.events;
    let events_heading = if p.chosen {
        "Breaches and escalations in the period"
    } else {
        "Breaches and escalations this week"
    };
    html! {
        form.row method="get" action="/dashboard" aria-describedby="period-help" {
            div { label for="from" { "From" } input #from type="date" name="from" value=[p.chosen.then(|| p.compliance.from.to_string())]; }
            div { label for="to" { "To" } input #to type="date" name="to" value=[p.chosen.then(|| p.compliance.to.to_string())]; }
            button type="submit" { "Show" }
            @if p.chosen { a.button.secondary href="/dashboard" { "Default periods" } }
        }
        p #period-help .small {
            @if p.chosen {
                "Period: " strong { (period_words(p.compliance)) } " (" (p.compliance.days()) " days, UTC)."
            } @else {
                "SLA events: this ISO week, " strong { (period_words(p.events)) } ". "
                "Compliance: cases opened in the last 30 days, " strong { (period_words(p.compliance)) } ". Days are UTC."
            }
            " As of " (time(d.now)) "."
        }

        section.card aria-labelledby="open-h" {
            h2 #open-h { "Open cases by priority and age (" (d.open.total()) ")" }
            p.small { "Now; age is the wall-clock time since the case was opened." }
            (raw_svg(open_chart(&d.open)))
            (open_table(&d.open).html("Open cases by priority and age", usize::MAX))
        }

        section.card aria-labelledby="events-h" {
            h2 #events-h { (events_heading) }
            p.small { (period_words(e.period)) ". The SLA events recorded in the case histories." }
            dl.facts {
                dt { "Response breaches" } dd { (e.count(crate::cases::SlaEventKind::ResponseBreached)) }
                dt { "Resolution breaches" } dd { (e.count(crate::cases::SlaEventKind::ResolutionBreached)) }
                dt { "Cases breached" } dd { (e.cases_breached) }
                dt { "Escalations" } dd { (e.count(crate::cases::SlaEventKind::Escalated)) }
            }
            @if e.truncated {
                p.error { "More than " (crate::dashboard::MAX_EVENTS) " events were recorded; only the first are counted. Choose a shorter period." }
            }
            h3 { "By kind" }
            (event_counts_table(e).html("SLA events by kind", usize::MAX))
            h3 { "Breaches and escalations" }
            @if e.items.len() > LISTED {
                p.small { "The latest " (LISTED) " of " (e.items.len()) " are listed; the CSV has them all." }
            }
            (events_table(e).html("Breaches and escalations", LISTED))
        }

        section.card aria-labelledby="compliance-h" {
            h2 #compliance-h { "SLA compliance" }
            p.small {
                "Cases opened " (period_words(c.period)) ", their clocks as of now. "
                "Targets and mean times count " strong { "working time" }
                " on each contract's business calendar, pauses excluded. "
                "Met: stopped within the target; missed: past it; open: still running within it. "
                "The percentage is met out of met and missed; cases whose policy sets no target for their priority count in neither. "
                "Engineer: the case's current assignee."
            }
            @if c.truncated {
                p.error { "More than " (crate::dashboard::MAX_CASES) " cases were opened in the period; the oldest " (crate::dashboard::MAX_CASES) " are counted. Choose a shorter period." }
            }
            @if c.unevaluated > 0 {
                p.small { (c.unevaluated) " cases could not be evaluated (no opening entry, or a calendar that cannot be built) and are left out." }
            }
            dl.facts {
                dt { "Cases" } dd { (c.cases) }
                dt { "Response met" } dd { (percent_words(&c.overall.response)) }
                dt { "Resolution met" } dd { (percent_words(&c.overall.resolution)) }
                dt { "Mean time to respond" } dd { (secs_words(c.overall.response.mean_secs())) }
                dt { "Mean time to resolve" } dd { (secs_words(c.overall.resolution.mean_secs())) }
            }
            (raw_svg(compliance_chart(c)))
            @for (slug, first) in GROUPINGS {
                h3 { "By " (first.to_lowercase()) }
                (compliance_table(c, slug, first).html(&format!("Compliance by {}", first.to_lowercase()), usize::MAX))
            }
        }

        section.card aria-labelledby="per-day-h" {
            h2 #per-day-h { "Cases opened per day" }
            p.small { (period_words(c.period)) ", by current priority." }
            (raw_svg(per_day_chart(c)))
            details {
                summary { "The numbers" }
                (per_day_table(c).html("Cases opened per day", usize::MAX))
            }
        }
    }
}

fn percent_words(t: &crate::dashboard::Tally) -> String {
    match t.percent() {
        Some(p) => format!("{p:.1}% ({} of {})", t.met, t.met + t.missed),
        None => "- (nothing decided yet)".into(),
    }
}

fn secs_words(s: Option<i64>) -> String {
    s.map(span_words).unwrap_or_else(|| "-".into())
}

fn open_chart(o: &OpenByAge) -> String {
    let cats: Vec<String> = AgeBucket::ALL.iter().map(|b| b.label().into()).collect();
    let values: Vec<Vec<i64>> = Priority::ALL
        .iter()
        .map(|p| AgeBucket::ALL.iter().map(|b| o.get(*p, *b)).collect())
        .collect();
    charts::stacked_bars(
        "chart-open",
        "Open cases by age, stacked by priority",
        &cats,
        &priority_series(),
        &values,
    )
}

fn compliance_chart(c: &Compliance) -> String {
    let mut by_cases: Vec<&Group> = c.by_contract.iter().collect();
    by_cases.sort_by(|a, b| b.cases.cmp(&a.cases).then_with(|| a.name.cmp(&b.name)));
    let rows: Vec<(String, Vec<Option<f64>>)> = by_cases
        .into_iter()
        .take(CHART_CONTRACTS)
        .map(|g| {
            (
                g.name.clone(),
                vec![g.response.percent(), g.resolution.percent()],
            )
        })
        .collect();
    let title = if c.by_contract.len() > CHART_CONTRACTS {
        format!("Targets met per contract (the {CHART_CONTRACTS} with most cases)")
    } else {
        "Targets met per contract".to_string()
    };
    charts::percent_bars("chart-compliance", &title, &rows, &CLOCK_SERIES)
}

fn per_day_chart(c: &Compliance) -> String {
    let cats: Vec<String> = c
        .per_day
        .iter()
        .map(|(d, _)| d.format("%m-%d").to_string())
        .collect();
    let values: Vec<Vec<i64>> = (0..4)
        .map(|i| c.per_day.iter().map(|(_, n)| n[i]).collect())
        .collect();
    charts::stacked_bars(
        "chart-per-day",
        "Cases opened per day, stacked by priority",
        &cats,
        &priority_series(),
        &values,
    )
}

// --------------------------------------------------------------------- CSV

/// `GET /dashboard/{table}.csv`: one of the page's tables, for the same
/// period (`?from=..&to=..`, defaults as on the page).
pub async fn download(
    State(s): State<AppState>,
    who: WebAuth,
    Path(file): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> WebResult<Response> {
    staff_only(&who)?;
    let not_found = || WebError::new(StatusCode::NOT_FOUND, "There is no such table.");
    let slug = file.strip_suffix(".csv").ok_or_else(not_found)?;
    let now = s.clock.now();
    let periods = periods_of(&q, now)?;
    let p = &who.principal;
    let table = match slug {
        "open-cases" => open_table(&crate::dashboard::open_cases(&s.store, p, now).await?),
        "sla-event-counts" | "breaches-escalations" => {
            let e = crate::dashboard::sla_events(&s.store, p, periods.events).await?;
            if slug == "sla-event-counts" {
                event_counts_table(&e)
            } else {
                events_table(&e)
            }
        }
        _ => {
            let grouping = GROUPINGS.iter().find(|(g, _)| *g == slug);
            if grouping.is_none() && slug != "opened-per-day" {
                return Err(not_found());
            }
            let c =
                crate::dashboard::compliance(&s.store, s.sla.current(), p, periods.compliance, now)
                    .await?;
            match grouping {
                Some((g, first)) => compliance_table(&c, g, first),
                None => per_day_table(&c),
            }
        }
    };
    Ok(csv::download(&table.filename(now), table.csv()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::{summarise_events, SlaEvent};

    #[test]
    fn tables_link_their_csv_for_their_period() {
        let week =
            Period::iso_week(chrono::NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default());
        let e = summarise_events(
            week,
            vec![SlaEvent {
                case_number: "C-2026-000001".into(),
                organization: Some("=cmd|' /C calc'!A0, Inc.".into()),
                at: week.start(),
                kind: crate::cases::SlaEventKind::Escalated,
                level: Some(2),
                due_at: week.start(),
                late: true,
            }],
            false,
        );
        let t = events_table(&e);
        assert_eq!(
            t.csv_href(),
            "/dashboard/breaches-escalations.csv?from=2026-03-02&to=2026-03-08"
        );
        assert_eq!(
            t.filename(week.start()),
            "outpost-breaches-escalations-2026-03-02-to-2026-03-08.csv"
        );
        let csv = t.csv();
        let mut lines = csv.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("Case,Customer,Event,Manager level,Recorded at (UTC),Due at (UTC),Recorded late")
        );
        assert_eq!(
            lines.next(),
            Some("C-2026-000001,\"'=cmd|' /C calc'!A0, Inc.\",Escalated,L2,2026-03-02T00:00:00Z,2026-03-02T00:00:00Z,yes")
        );
        let html = t.html("x", 10).into_string();
        assert!(html.contains("href=\"/cases/C-2026-000001\""));
        assert!(html.contains("Download as CSV"));
        let open = open_table(&OpenByAge::from_rows(&[(1, 0, 2)]));
        assert_eq!(open.csv_href(), "/dashboard/open-cases.csv");
        assert!(open
            .csv()
            .starts_with("Priority,<1h,1-4h,4-24h,1-3d,>3d,Total\r\nP1,2,0,0,0,0,2\r\n"));
    }
}
