//! Upgrades in the console: for staff, the campaigns (state, wave progress)
//! and each campaign's waves, devices and recorded steps, with start, pause,
//! resume and abort for those who manage campaigns; for customers, the
//! upgrades that apply to their equipment and the jobs run on it. Every
//! form calls the same `Upgrades` method as its REST endpoint.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};
use serde::Deserialize;

use super::cases::opt;
use super::layout::{table_wrap, time, time_opt, Nav, Page, WebForm, WebResult};
use super::{WebAuth, WebError};
use crate::auth::{Action, Role};
use crate::http::AppState;
use crate::sla::policy::Span;
use crate::upgrades::{CampaignAction, CampaignView, NewCampaign, Selection, WaveSpec, WindowSpec};

fn state_tag(state: &str) -> Markup {
    let class = match state {
        "succeeded" | "completed" => "tag ok",
        "failed" | "rolled_back" | "stopped" | "aborted" => "tag bad",
        "paused" => "tag warn",
        _ => "status",
    };
    html! { span class=(class) { (state.replace('_', " ")) } }
}

fn progress(c: &CampaignView) -> Markup {
    html! {
        @for w in &c.waves {
            span.small {
                "wave " (w.wave) ": " (w.succeeded) "/" (w.devices) " ok"
                @if w.failed > 0 { ", " (w.failed) " failed" }
                @if w.in_progress > 0 { ", " (w.in_progress) " under way" }
            }
            br;
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /upgrades`: campaigns (staff) or applicable upgrades (customers).
pub async fn page(State(s): State<AppState>, who: WebAuth) -> WebResult {
    list_page(&s, &who, None, StatusCode::OK).await
}

async fn list_page(
    s: &AppState,
    who: &WebAuth,
    error: Option<String>,
    status: StatusCode,
) -> WebResult {
    let p = &who.principal;
    if p.role == Role::Customer {
        let applicable = s.agents.upgrades.applicable(p, None, None).await?;
        let body = html! {
            section.card aria-labelledby="applicable" {
                h2 #applicable { "Upgrades for our equipment" }
                @if applicable.is_empty() {
                    p.muted { "Every device runs the newest published release." }
                } @else {
                    (table_wrap(None, html! {
                        table {
                            thead { tr {
                                th scope="col" { "Device" } th scope="col" { "Model" }
                                th scope="col" { "Runs" } th scope="col" { "Release" }
                                th scope="col" { "Published" } th scope="col" { "Notes" }
                            } }
                            tbody {
                                @for u in &applicable {
                                    tr {
                                        td { (u.device) }
                                        td { (u.vendor) " " (u.model) }
                                        td { (u.current_version.as_deref().unwrap_or("unknown")) }
                                        td { (u.release) " " strong { (u.version) } }
                                        td { (time_opt(u.published_at)) }
                                        td.small { (u.notes) }
                                    }
                                }
                            }
                        }
                    }))
                }
            }
        };
        return Ok(Page::new(who, "Upgrades", Nav::Upgrades).response(body));
    }
    let campaigns = s.agents.upgrades.list(p, None).await?;
    let releases = if p.may(Action::ManageCampaigns) {
        s.releases
            .list(p, Some(crate::releases::ReleaseKind::Firmware), None)
            .await?
            .into_iter()
            .filter(|r| r.published_at.is_some())
            .collect()
    } else {
        Vec::new()
    };
    let body = html! {
        section.card aria-labelledby="campaigns" {
            h2 #campaigns { "Campaigns" }
            @if campaigns.is_empty() {
                p.muted { "No campaign yet." }
            } @else {
                (table_wrap(None, html! {
                    table {
                        thead { tr {
                            th scope="col" { "Campaign" } th scope="col" { "Release" } th scope="col" { "State" }
                            th scope="col" { "Wave" } th scope="col" { "Progress" } th scope="col" { "Created" }
                        } }
                        tbody {
                            @for c in &campaigns {
                                tr {
                                    td { a href=(format!("/upgrades/campaigns/{}", c.id)) { (c.name) } }
                                    td { (c.target) " " (c.release_version) }
                                    td { (state_tag(&c.state)) @if let Some(r) = &c.reason { br; span.small { (r) } } }
                                    td { (c.current_wave) " of " (c.wave_count) }
                                    td { (progress(c)) }
                                    td { (time(c.created_at)) }
                                }
                            }
                        }
                    }
                }))
            }
        }
    };
    let form = html! {
        @if !releases.is_empty() {
            section.card aria-labelledby="new-campaign" {
                h2 #new-campaign { "New campaign" }
                form method="post" action="/upgrades/campaigns" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    div.row {
                        label for="c-name" { "Name" }
                        input #c-name name="name" type="text" required maxlength="200";
                        label for="c-release" { "Release" }
                        select #c-release name="release_id" {
                            @for r in &releases {
                                option value=(r.id) { (r.target) " " (r.version) }
                            }
                        }
                    }
                    div.row {
                        label for="c-org" { "Organisation id" }
                        input #c-org name="organization_id" type="number" min="1" placeholder="all";
                        label for="c-versions" { "Running versions" }
                        input #c-versions name="versions" type="text" placeholder="any, or 17.6.1, 17.6.2";
                    }
                    div.row {
                        label for="c-waves" { "Waves (%)" }
                        input #c-waves name="waves" type="text" value="10, 90";
                        label for="c-success" { "Success threshold %" }
                        input #c-success name="success_threshold" type="number" min="0" max="100" value="100";
                        label for="c-error" { "Error threshold %" }
                        input #c-error name="error_threshold" type="number" min="0" max="100" value="20";
                    }
                    div.row {
                        label for="c-cron" { "Window (cron)" }
                        input #c-cron name="window_cron" type="text" placeholder="always, or 0 22 * * 1-5";
                        label for="c-duration" { "for" }
                        input #c-duration name="window_duration" type="text" placeholder="4h";
                        label for="c-tz" { "time zone" }
                        input #c-tz name="window_time_zone" type="text" placeholder="UTC";
                    }
                    div.row {
                        label for="c-install" { "Install timeout" }
                        input #c-install name="install_timeout" type="text" value="30m";
                        label for="c-reboot" { "Reboot timeout" }
                        input #c-reboot name="reboot_timeout" type="text" value="15m";
                        label { input name="start" type="checkbox" value="yes"; " start now" }
                        button type="submit" { "Create" }
                    }
                }
            }
        }
    };
    let body = html! { (body) (form) };
    let mut resp = Page::new(who, "Upgrades", Nav::Upgrades)
        .error(error)
        .response(body);
    *resp.status_mut() = status;
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
pub struct NewCampaignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    release_id: String,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    versions: Option<String>,
    #[serde(default)]
    waves: Option<String>,
    #[serde(default)]
    success_threshold: Option<String>,
    #[serde(default)]
    error_threshold: Option<String>,
    #[serde(default)]
    window_cron: Option<String>,
    #[serde(default)]
    window_duration: Option<String>,
    #[serde(default)]
    window_time_zone: Option<String>,
    #[serde(default)]
    install_timeout: Option<String>,
    #[serde(default)]
    reboot_timeout: Option<String>,
    #[serde(default)]
    start: Option<String>,
}

/// The form as the API's request; errors name the field.
fn campaign_request(f: &NewCampaignForm) -> Result<NewCampaign, String> {
    fn number<T: std::str::FromStr>(field: &str, v: &Option<String>) -> Result<Option<T>, String> {
        opt(v)
            .map(|t| {
                t.parse::<T>()
                    .map_err(|_| format!("{field}: {t:?} is not a number"))
            })
            .transpose()
    }
    fn span(field: &str, v: &Option<String>) -> Result<Option<Span>, String> {
        opt(v)
            .map(|t| t.parse::<Span>().map_err(|e| format!("{field}: {e}")))
            .transpose()
    }
    let release_id = f
        .release_id
        .trim()
        .parse()
        .map_err(|_| format!("release: {:?} is not a release id", f.release_id))?;
    let list = |v: &Option<String>| {
        opt(v).map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
    };
    let waves = match list(&f.waves) {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(|w| {
                    w.trim_end_matches('%')
                        .trim()
                        .parse::<u32>()
                        .map(|p| WaveSpec {
                            percent: Some(p),
                            devices: None,
                        })
                        .map_err(|_| format!("waves: {w:?} is not a percentage"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let window = match opt(&f.window_cron) {
        None => None,
        Some(cron) => Some(WindowSpec {
            cron,
            duration: span("window duration", &f.window_duration)?
                .ok_or("window duration: needed with a window")?,
            time_zone: opt(&f.window_time_zone),
        }),
    };
    Ok(NewCampaign {
        name: f.name.clone(),
        release_id,
        selection: Selection {
            organizations: number::<i64>("organisation id", &f.organization_id)?.map(|o| vec![o]),
            versions: list(&f.versions),
            devices: None,
        },
        waves,
        window,
        success_threshold: number("success threshold", &f.success_threshold)?,
        error_threshold: number("error threshold", &f.error_threshold)?,
        install_timeout: span("install timeout", &f.install_timeout)?,
        reboot_timeout: span("reboot timeout", &f.reboot_timeout)?,
        start: opt(&f.start).is_some(),
    })
}

/// `POST /upgrades/campaigns`: a new campaign from the form.
pub async fn create(
    State(s): State<AppState>,
    who: WebAuth,
    WebForm(f): WebForm<NewCampaignForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let req = match campaign_request(&f) {
        Ok(r) => r,
        Err(e) => return list_page(&s, &who, Some(e), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    match s.agents.upgrades.create(&who.principal, &req).await {
        Ok(c) => {
            Ok(Redirect::to(&format!("/upgrades/campaigns/{}?done=created", c.id)).into_response())
        }
        Err(e) => {
            let e = WebError::from(e);
            list_page(&s, &who, Some(e.message), e.status).await
        }
    }
}

async fn campaign_page(
    s: &AppState,
    who: &WebAuth,
    id: i64,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> WebResult {
    let p = &who.principal;
    let c = s.agents.upgrades.get(p, id).await?;
    let events = s
        .agents
        .upgrades
        .events(p, id, None, None, Some(5000))
        .await?;
    let recent: Vec<_> = events.iter().rev().take(50).collect();
    let manage = p.may(Action::ManageCampaigns);
    let actions: &[&str] = match c.state.as_str() {
        "draft" => &["start", "abort"],
        "running" => &["pause", "abort"],
        "paused" => &["resume", "abort"],
        _ => &[],
    };
    let body = html! {
        section.card aria-labelledby="summary" {
            h2 #summary { (c.target) " " (c.release_version) }
            p { (state_tag(&c.state)) " wave " (c.current_wave) " of " (c.wave_count)
                @if let Some(r) = &c.reason { " — " (r) } }
            p.small {
                "Success threshold " (c.success_threshold) "% per wave; error threshold " (c.error_threshold)
                "%; install timeout " (c.install_timeout) ", reboot timeout " (c.reboot_timeout) "."
            }
            @if let Some(w) = &c.window {
                p.small {
                    "Maintenance window " code { (w.cron) } " (" (w.time_zone) ") for " (w.duration) ": "
                    @if w.open_now { span.tag.ok { "open" } " until " } @else { span.tag.warn { "shut" } " until " }
                    (time_opt(w.next_change))
                }
            }
            @if manage && !actions.is_empty() {
                form.row method="post" action=(format!("/upgrades/campaigns/{id}/action")) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label for="reason" { "Reason" }
                    input #reason name="reason" type="text" maxlength="500";
                    @for a in actions {
                        button type="submit" name="action" value=(a) { (a) }
                    }
                }
            }
        }
        section.card aria-labelledby="waves" {
            h2 #waves { "Waves" }
            (table_wrap(None, html! {
                table {
                    thead { tr {
                        th scope="col" { "Wave" } th scope="col" { "Devices" } th scope="col" { "Scheduled" }
                        th scope="col" { "Under way" } th scope="col" { "Succeeded" } th scope="col" { "Failed" }
                    } }
                    tbody {
                        @for w in &c.waves {
                            tr {
                                td { (w.wave) @if w.wave == c.current_wave { " " span.tag { "current" } } }
                                td { (w.devices) } td { (w.scheduled) } td { (w.in_progress) }
                                td { (w.succeeded) } td { (w.failed) }
                            }
                        }
                    }
                }
            }))
        }
        section.card aria-labelledby="devices" {
            h2 #devices { "Devices" }
            (table_wrap(None, html! {
                table {
                    thead { tr {
                        th scope="col" { "Device" } th scope="col" { "Wave" } th scope="col" { "State" }
                        th scope="col" { "Step" } th scope="col" { "Version" } th scope="col" { "Detail" }
                        th scope="col" { "Case" }
                    } }
                    tbody {
                        @for j in &c.jobs {
                            tr {
                                td { (j.device) }
                                td { @if j.wave == 0 { "—" } @else { (j.wave) } }
                                td { (state_tag(&j.state)) @if j.offered { " " span.small { "offered" } } }
                                td { (j.step.as_deref().unwrap_or("")) }
                                td { (j.from_version.as_deref().unwrap_or("?")) " → " (j.version.as_deref().unwrap_or("")) }
                                td.small { (j.detail) @if let Some(f) = &j.failure { " (" (f) ")" } }
                                td { @if let Some(n) = &j.case_number { a href=(format!("/cases/{n}")) { (n) } } }
                            }
                        }
                    }
                }
            }))
        }
        section.card aria-labelledby="steps" {
            h2 #steps { "Recorded steps" }
            p.small { (events.len()) " steps recorded; the newest 50:" }
            (table_wrap(None, html! {
                table {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Device" } th scope="col" { "By" }
                        th scope="col" { "State" } th scope="col" { "Step" } th scope="col" { "Detail" }
                    } }
                    tbody {
                        @for e in &recent {
                            tr {
                                td { (time(e.reported_at)) }
                                td { (e.device.as_deref().unwrap_or("")) }
                                td { (e.source) }
                                td { (e.state.as_deref().unwrap_or("")) }
                                td { (e.step.as_deref().unwrap_or("")) }
                                td.small { (e.detail) }
                            }
                        }
                    }
                }
            }))
        }
    };
    let mut resp = Page::new(who, format!("Campaign: {}", c.name), Nav::Upgrades)
        .error(error)
        .notice(notice)
        .response(body);
    *resp.status_mut() = status;
    Ok(resp)
}

/// `GET /upgrades/campaigns/{id}`.
pub async fn campaign(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> WebResult {
    let notice = q.done.map(|d| format!("Campaign {d}: done."));
    campaign_page(&s, &who, id, None, notice, StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /upgrades/campaigns/{id}/action`: start, pause, resume, abort.
pub async fn act(
    State(s): State<AppState>,
    who: WebAuth,
    Path(id): Path<i64>,
    WebForm(f): WebForm<ActionForm>,
) -> WebResult {
    who.check_csrf(&f.csrf)?;
    let req = CampaignAction {
        reason: opt(&f.reason),
    };
    match s
        .agents
        .upgrades
        .act(&who.principal, id, &f.action, &req)
        .await
    {
        Ok(_) => Ok(
            Redirect::to(&format!("/upgrades/campaigns/{id}?done={}", f.action)).into_response(),
        ),
        Err(e) => {
            let e = WebError::from(e);
            campaign_page(&s, &who, id, Some(e.message), None, e.status).await
        }
    }
}
