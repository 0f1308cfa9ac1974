//! The knowledge base (SPEC.md 2: resolved cases feed a knowledge base that
//! engineers search).
//!
//! - An article is drafted from a resolved or closed case: symptom (the
//!   case's summary and details), cause and resolution (its fault analysis
//!   report, else its diagnosis), vendor, device type, model and firmware
//!   (the case's device), all editable.
//! - States: draft -> in review -> published, and back to draft when a
//!   reviewer returns it or someone edits it. A reviewer
//!   ([`Action::ReviewKnowledge`]) must be another user than the one who
//!   submitted it and the one who wrote its text. Every edit is a new
//!   version; older versions are kept and listed. A published article stays
//!   searchable, as published, while its next version is worked on.
//! - Search covers published articles and closed cases (`store::kb`), with
//!   vendor, device type and model filters; a new case gets the closest
//!   published articles as suggestions ([`Kb::suggestions`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::cases::{ActivityBody, Cases, Status};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::store::kb::{ArticleChange, ArticleRow, ArticleText, SearchFilter, VersionRow};
use crate::validate::opt_text;

/// Longest text of one field.
const MAX_FIELD: usize = 20_000;
/// Most words a search uses (the rest are ignored).
const MAX_WORDS: usize = 32;
/// Most results a search returns.
pub const MAX_RESULTS: i64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArticleState {
    Draft,
    InReview,
    Published,
}

crate::cases::model::text_enum!(ArticleState, "state", {
    Draft => "draft", InReview => "in_review", Published => "published",
});

/// Draft an article from a resolved or closed case; any field given
/// replaces what the case suggests.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArticle {
    pub case_number: String,
    pub title: Option<String>,
    pub symptom: Option<String>,
    pub cause: Option<String>,
    pub resolution: Option<String>,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

/// A new version of an article's text (every field; blank optional fields
/// become empty).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleEdit {
    /// The version this edit starts from; another edit in between is refused
    /// (409), so nobody's text is silently overwritten.
    pub base_version: i64,
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub resolution: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Publish,
    /// Back to draft, with a comment saying what to change.
    Return,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub decision: Decision,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArticleView {
    pub id: i64,
    pub state: ArticleState,
    /// The latest version.
    pub version: i64,
    /// The version readers and search see, once published.
    pub published_version: Option<i64>,
    pub source_case: Option<String>,
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub resolution: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub created_by: String,
    /// Who wrote the latest version.
    pub edited_by: String,
    pub reviewed_by: Option<String>,
    pub review_comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub edited_by: String,
    pub edited_at: DateTime<Utc>,
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub resolution: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    Article,
    Case,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub kind: HitKind,
    /// The article id (articles).
    pub article_id: Option<i64>,
    /// The case number (cases).
    pub case_number: Option<String>,
    pub title: String,
    /// Matching text, matched words in [brackets].
    pub snippet: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    /// Relevance; larger is better (comparable within one result list).
    pub score: f64,
}

/// A search: words, and filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub text: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub kind: Option<HitKind>,
    pub limit: Option<i64>,
}

/// Common English words that carry no meaning for a search (PostgreSQL's
/// `english` configuration drops them too; dropping them here keeps both
/// backends' rankings alike).
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not",
    "of", "on", "or", "our", "she", "since", "so", "some", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "up", "us", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "why", "will", "with", "you", "your",
];

/// The words of a query: letters and digits, lower case, without common
/// words or repeats, at most [`MAX_WORDS`].
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() < 2 || w.len() > 64 || STOPWORDS.contains(&w.as_str()) {
            continue;
        }
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

fn view(r: ArticleRow) -> Result<ArticleView> {
    Ok(ArticleView {
        id: r.id,
        state: crate::store::parse_enum("kb_articles.state", &r.state)?,
        version: r.version,
        published_version: r.published_version,
        source_case: r.source_case_number,
        title: r.text.title,
        symptom: r.text.symptom,
        cause: r.text.cause,
        resolution: r.text.resolution,
        vendor: r.text.vendor,
        device_type: r.text.device_type,
        model: r.text.model,
        firmware: r.text.firmware,
        created_by: r.created_by_name,
        edited_by: r.edited_by_name,
        reviewed_by: r.reviewed_by_name,
        review_comment: r.review_comment,
        created_at: from_micros(r.created_at),
        updated_at: from_micros(r.updated_at),
        published_at: r.published_at.map(from_micros),
    })
}

fn version_view(v: VersionRow) -> VersionView {
    VersionView {
        version: v.version,
        edited_by: v.edited_by_name,
        edited_at: from_micros(v.edited_at),
        title: v.text.title,
        symptom: v.text.symptom,
        cause: v.text.cause,
        resolution: v.text.resolution,
        vendor: v.text.vendor,
        device_type: v.text.device_type,
        model: v.text.model,
        firmware: v.text.firmware,
    }
}

/// A field that may be empty in a draft (filled in before review).
fn field(name: &str, v: &str) -> Result<String> {
    Ok(opt_text(name, &Some(v.to_string()), MAX_FIELD)?.unwrap_or_default())
}

fn short(name: &str, v: &Option<String>) -> Result<Option<String>> {
    opt_text(name, v, 200)
}

/// What review needs: every text field filled in.
fn complete(t: &ArticleText) -> Result<()> {
    for (name, v) in [
        ("title", &t.title),
        ("symptom", &t.symptom),
        ("cause", &t.cause),
        ("resolution", &t.resolution),
    ] {
        if v.trim().is_empty() {
            return Err(Error::invalid(
                name,
                "must be filled in before the article goes to review",
            ));
        }
    }
    Ok(())
}

/// The knowledge-base service.
#[derive(Clone)]
pub struct Kb {
    cases: Cases,
}

impl Kb {
    pub fn new(cases: Cases) -> Kb {
        Kb { cases }
    }

    async fn row(&self, id: i64) -> Result<ArticleRow> {
        self.cases
            .store
            .kb_article(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("article {id}")))
    }

    /// A draft from a resolved or closed case, prefilled from the case, its
    /// device and its fault analysis report.
    pub async fn draft_from_case(&self, who: &Principal, req: &NewArticle) -> Result<ArticleView> {
        who.require(Action::WriteKnowledge)?;
        let number = crate::validate::text("case_number", &req.case_number, 40)?;
        let case = self.cases.get(who, &number).await?;
        let status: Status = crate::store::parse_enum("cases.status", &case.status)?;
        if !matches!(status, Status::Resolved | Status::Closed) {
            return Err(Error::conflict(format!(
                "case {} is {status}; an article is drafted from a resolved or closed case",
                case.number
            )));
        }
        let store = &self.cases.store;
        let device = match case.device_id {
            Some(id) => store.device(id).await?,
            None => None,
        };
        // The latest fault report, else the latest diagnosis.
        let mut cause = None;
        let mut resolution = None;
        let mut diagnosis = None;
        for e in store.entries(case.id).await? {
            match serde_json::from_str::<ActivityBody>(&e.body) {
                Ok(ActivityBody::FaultReport {
                    cause: c,
                    actions,
                    prevention,
                }) => {
                    cause = Some(c);
                    resolution = Some(format!("{actions}\n\nPrevention: {prevention}"));
                }
                Ok(ActivityBody::Diagnosed { summary }) => diagnosis = Some(summary),
                _ => {}
            }
        }
        let suggested = ArticleText {
            title: case.summary.clone(),
            symptom: format!("{}\n\n{}", case.summary, case.details),
            cause: cause.or(diagnosis).unwrap_or_default(),
            resolution: resolution.unwrap_or_default(),
            vendor: case
                .vendor
                .clone()
                .or_else(|| device.as_ref().map(|d| d.vendor.clone())),
            device_type: device.as_ref().map(|d| d.device_type.to_string()),
            model: device.as_ref().map(|d| d.model.clone()),
            firmware: device.as_ref().and_then(|d| d.firmware_version.clone()),
        };
        let pick = |given: &Option<String>, name: &str, default: String| -> Result<String> {
            match given {
                Some(v) => field(name, v),
                None => field(name, &default),
            }
        };
        let pick_short = |given: &Option<String>, name: &str, default: Option<String>| {
            short(name, if given.is_some() { given } else { &default })
        };
        let text = ArticleText {
            title: pick(&req.title, "title", suggested.title)?,
            symptom: pick(&req.symptom, "symptom", suggested.symptom)?,
            cause: pick(&req.cause, "cause", suggested.cause)?,
            resolution: pick(&req.resolution, "resolution", suggested.resolution)?,
            vendor: pick_short(&req.vendor, "vendor", suggested.vendor)?,
            device_type: pick_short(&req.device_type, "device_type", suggested.device_type)?,
            model: pick_short(&req.model, "model", suggested.model)?,
            firmware: pick_short(&req.firmware, "firmware", suggested.firmware)?,
        };
        if text.title.is_empty() {
            return Err(Error::invalid("title", "must not be empty"));
        }
        let id = store
            .kb_insert_article(Some(case.id), &text, who.user_id, self.cases.clock.now())
            .await?;
        view(self.row(id).await?)
    }

    pub async fn get(&self, who: &Principal, id: i64) -> Result<ArticleView> {
        who.require(Action::ReadKnowledge)?;
        view(self.row(id).await?)
    }

    pub async fn list(
        &self,
        who: &Principal,
        state: Option<ArticleState>,
    ) -> Result<Vec<ArticleView>> {
        who.require(Action::ReadKnowledge)?;
        self.cases
            .store
            .kb_articles(state.map(|s| s.as_str()), 500)
            .await?
            .into_iter()
            .map(view)
            .collect()
    }

    pub async fn versions(&self, who: &Principal, id: i64) -> Result<Vec<VersionView>> {
        who.require(Action::ReadKnowledge)?;
        self.row(id).await?;
        Ok(self
            .cases
            .store
            .kb_versions(id)
            .await?
            .into_iter()
            .map(version_view)
            .collect())
    }

    async fn change(
        &self,
        who: &Principal,
        id: i64,
        decide: impl FnOnce(&ArticleRow) -> Result<ArticleChange> + Send,
    ) -> Result<ArticleView> {
        self.cases
            .store
            .kb_change(id, who.user_id, self.cases.clock.now(), decide)
            .await?
            .ok_or_else(|| Error::not_found(format!("article {id}")))?;
        view(self.row(id).await?)
    }

    /// A new version; the article goes (back) to draft. A published
    /// article stays searchable as published until this version is.
    pub async fn edit(&self, who: &Principal, id: i64, req: &ArticleEdit) -> Result<ArticleView> {
        who.require(Action::WriteKnowledge)?;
        let text = ArticleText {
            title: crate::validate::text("title", &req.title, 300)?,
            symptom: field("symptom", &req.symptom)?,
            cause: field("cause", &req.cause)?,
            resolution: field("resolution", &req.resolution)?,
            vendor: short("vendor", &req.vendor)?,
            device_type: short("device_type", &req.device_type)?,
            model: short("model", &req.model)?,
            firmware: short("firmware", &req.firmware)?,
        };
        let base = req.base_version;
        self.change(who, id, move |a| {
            if a.version != base {
                return Err(Error::conflict(format!(
                    "article {id} is at version {} now, not {base}; reload it and edit again",
                    a.version
                )));
            }
            if text == a.text {
                return Err(Error::invalid("title", "the edit changes nothing"));
            }
            Ok(ArticleChange {
                state: "draft",
                text: Some(text),
                submitted_by: None,
                reviewed_by: a.reviewed_by,
                review_comment: a.review_comment.clone(),
                publish: false,
            })
        })
        .await
    }

    /// Draft to review.
    pub async fn submit(&self, who: &Principal, id: i64) -> Result<ArticleView> {
        who.require(Action::WriteKnowledge)?;
        let me = who.user_id;
        self.change(who, id, move |a| {
            if a.state != "draft" {
                return Err(Error::conflict(format!(
                    "article {id} is {}; only a draft goes to review",
                    a.state
                )));
            }
            complete(&a.text)?;
            Ok(ArticleChange {
                state: "in_review",
                text: None,
                submitted_by: Some(me),
                reviewed_by: a.reviewed_by,
                review_comment: a.review_comment.clone(),
                publish: false,
            })
        })
        .await
    }

    /// Publish an article in review, or return it to draft with a comment.
    /// The reviewer is neither who submitted it nor who wrote its text.
    pub async fn review(&self, who: &Principal, id: i64, req: &Review) -> Result<ArticleView> {
        who.require(Action::ReviewKnowledge)?;
        let comment = opt_text("comment", &req.comment, 4000)?;
        if req.decision == Decision::Return && comment.is_none() {
            return Err(Error::invalid(
                "comment",
                "say what to change when returning an article",
            ));
        }
        let me = who.user_id;
        let decision = req.decision;
        self.change(who, id, move |a| {
            if a.state != "in_review" {
                return Err(Error::conflict(format!(
                    "article {id} is {}; only an article in review is reviewed",
                    a.state
                )));
            }
            if a.submitted_by == Some(me) || a.edited_by == me {
                return Err(Error::forbidden(
                    "an article is reviewed by someone other than who wrote or submitted it",
                ));
            }
            let publish = decision == Decision::Publish;
            Ok(ArticleChange {
                state: if publish { "published" } else { "draft" },
                text: None,
                submitted_by: a.submitted_by,
                reviewed_by: Some(me),
                review_comment: comment,
                publish,
            })
        })
        .await
    }

    /// Published articles and closed cases matching the query, best first.
    pub async fn search(&self, who: &Principal, q: &Query) -> Result<Vec<SearchHit>> {
        who.require(Action::ReadKnowledge)?;
        let words = words(&q.text);
        if words.is_empty() {
            return Err(Error::invalid(
                "q",
                "give at least one word of two or more letters or digits (common words like \"the\" do not count)",
            ));
        }
        let limit = q.limit.unwrap_or(20);
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_RESULTS}"),
            ));
        }
        let filter = SearchFilter {
            vendor: short("vendor", &q.vendor)?,
            device_type: short("type", &q.device_type)?,
            model: short("model", &q.model)?,
            kind: q.kind.map(|k| match k {
                HitKind::Article => "article",
                HitKind::Case => "case",
            }),
            limit,
        };
        self.run(&words, &filter).await
    }

    async fn run(&self, words: &[String], filter: &SearchFilter) -> Result<Vec<SearchHit>> {
        let rows = self.cases.store.kb_search(words, filter).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (kind, article_id, case_number) = if r.kind == "article" {
                (HitKind::Article, Some(r.ref_id), None)
            } else {
                let number = self
                    .cases
                    .store
                    .case_by_id(r.ref_id)
                    .await?
                    .map(|c| c.number);
                (HitKind::Case, None, number)
            };
            out.push(SearchHit {
                kind,
                article_id,
                case_number,
                title: r.title,
                snippet: r.snippet,
                vendor: r.vendor,
                device_type: r.device_type,
                model: r.model,
                score: r.score,
            });
        }
        Ok(out)
    }

    /// The published articles closest to a case: searched with its summary,
    /// details, vendor and device model.
    pub async fn suggestions(&self, who: &Principal, number: &str) -> Result<Vec<SearchHit>> {
        who.require(Action::ReadKnowledge)?;
        let case = self.cases.get(who, number).await?;
        let model = match case.device_id {
            Some(id) => self.cases.store.device(id).await?.map(|d| d.model),
            None => None,
        };
        let text = format!(
            "{} {} {} {}",
            case.summary,
            case.vendor.as_deref().unwrap_or(""),
            model.as_deref().unwrap_or(""),
            case.details
        );
        let words = words(&text);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        self.run(
            &words,
            &SearchFilter {
                kind: Some("article"),
                limit: 5,
                ..Default::default()
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_drop_syntax_common_words_and_repeats() {
        assert_eq!(
            words("The PSU fan\" OR (fails) -- psu NEAR/3 \"x\" a 9300"),
            vec!["psu", "fan", "fails", "near", "9300"]
        );
        assert!(words("the a of -- \"\" *").is_empty());
        assert_eq!(words(&"word ".repeat(100)), vec!["word"]);
    }
}
