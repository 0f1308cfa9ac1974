//! SQL for the knowledge base: articles, their append-only versions, and the
//! full-text index over published articles and closed cases.
//!
//! The index is `kb_docs`: an FTS5 table on SQLite (Porter stemmer, BM25
//! ranking), a table with a weighted `tsvector` under a GIN index on
//! PostgreSQL (`websearch_to_tsquery`, `ts_rank`). Articles' documents are
//! written here, in the transaction that publishes them; closed cases'
//! documents are kept by triggers on `cases` (migration 0017), so every path
//! that closes or reopens a case keeps the index true.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{map_db_err, read, write, Dialect, Store};
use crate::clock::to_micros;
use crate::error::{Error, Result};

/// The text of one version of an article.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct ArticleText {
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub resolution: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

/// An article with its latest version's text and the names it refers to.
#[derive(Debug, Clone, FromRow)]
pub struct ArticleRow {
    pub id: i64,
    pub source_case_id: Option<i64>,
    pub source_case_number: Option<String>,
    pub state: String,
    pub version: i64,
    pub published_version: Option<i64>,
    pub created_by: i64,
    pub created_by_name: String,
    pub submitted_by: Option<i64>,
    pub reviewed_by: Option<i64>,
    pub reviewed_by_name: Option<String>,
    pub review_comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub published_at: Option<i64>,
    /// Who wrote the latest version.
    pub edited_by: i64,
    pub edited_by_name: String,
    #[sqlx(flatten)]
    pub text: ArticleText,
}

/// One stored version of an article.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub edited_by: i64,
    pub edited_by_name: String,
    pub edited_at: i64,
    #[sqlx(flatten)]
    pub text: ArticleText,
}

/// What a change to an article decides (see [`Store::kb_change`]).
#[derive(Debug, Clone)]
pub struct ArticleChange {
    pub state: &'static str,
    /// A new version's text, if the change edits it.
    pub text: Option<ArticleText>,
    pub submitted_by: Option<i64>,
    pub reviewed_by: Option<i64>,
    pub review_comment: Option<String>,
    /// Publish the (new) latest version: it replaces the article's document
    /// in the search index.
    pub publish: bool,
}

/// Search filters; `None` matches anything. Vendor and model compare
/// without regard to case.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    /// `article` or `case`.
    pub kind: Option<&'static str>,
    pub limit: i64,
}

/// One search result; `score` is larger for better matches.
#[derive(Debug, Clone, FromRow)]
pub struct SearchRow {
    pub kind: String,
    pub ref_id: i64,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub model: Option<String>,
    pub title: String,
    pub snippet: String,
    pub score: f64,
}

const ARTICLE_SELECT: &str =
    "SELECT a.id, a.source_case_id, c.number AS source_case_number, a.state,
        a.version, a.published_version, a.created_by, cu.display_name AS created_by_name,
        a.submitted_by, a.reviewed_by, ru.display_name AS reviewed_by_name, a.review_comment,
        a.created_at, a.updated_at, a.published_at, v.edited_by, eu.display_name AS edited_by_name,
        v.title, v.symptom, v.cause, v.resolution, v.vendor, v.device_type, v.model, v.firmware
   FROM kb_articles a
   JOIN kb_versions v ON v.article_id = a.id AND v.version = a.version
   JOIN users cu ON cu.id = a.created_by
   JOIN users eu ON eu.id = v.edited_by
   LEFT JOIN users ru ON ru.id = a.reviewed_by
   LEFT JOIN cases c ON c.id = a.source_case_id";

/// The SQLite document key (see migration 0017): odd rowids are articles.
fn article_rowid(id: i64) -> i64 {
    2 * id + 1
}

/// Insert one version row inside the transaction `$tx`.
macro_rules! insert_version {
    ($tx:expr, $id:expr, $version:expr, $t:expr, $by:expr, $at:expr) => {{
        let t: &ArticleText = $t;
        sqlx::query(
            "INSERT INTO kb_versions (article_id, version, title, symptom, cause, resolution,
                 vendor, device_type, model, firmware, edited_by, edited_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($id)
        .bind($version)
        .bind(&t.title)
        .bind(&t.symptom)
        .bind(&t.cause)
        .bind(&t.resolution)
        .bind(&t.vendor)
        .bind(&t.device_type)
        .bind(&t.model)
        .bind(&t.firmware)
        .bind($by)
        .bind($at)
        .execute(&mut *$tx)
        .await
        .map_err(|e| map_db_err(e, "article version"))?;
    }};
}

impl Store {
    /// A new draft (version 1).
    pub async fn kb_insert_article(
        &self,
        source_case_id: Option<i64>,
        text: &ArticleText,
        by: i64,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let at = to_micros(now);
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO kb_articles (source_case_id, state, version, created_by, created_at, updated_at)
                 VALUES ($1, 'draft', 1, $2, $3, $3) RETURNING id",
            )
            .bind(source_case_id)
            .bind(by)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "article"))?;
            insert_version!(tx, id, 1i64, text, by, at);
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn kb_article(&self, id: i64) -> Result<Option<ArticleRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{ARTICLE_SELECT} WHERE a.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Articles, newest change first; `state` filters.
    pub async fn kb_articles(&self, state: Option<&str>, limit: i64) -> Result<Vec<ArticleRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{ARTICLE_SELECT} WHERE ($1 IS NULL OR a.state = $1)
                 ORDER BY a.updated_at DESC, a.id DESC LIMIT $2"
            ))
            .bind(state)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Every version of an article, oldest first.
    pub async fn kb_versions(&self, id: i64) -> Result<Vec<VersionRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT v.version, v.edited_by, u.display_name AS edited_by_name, v.edited_at,
                        v.title, v.symptom, v.cause, v.resolution, v.vendor, v.device_type,
                        v.model, v.firmware
                 FROM kb_versions v JOIN users u ON u.id = v.edited_by
                 WHERE v.article_id = $1 ORDER BY v.version",
            )
            .bind(id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Change an article in one transaction holding it: `decide` sees the
    /// current row and returns the change (or refuses; nothing is written).
    /// A new text becomes version `version + 1`; publishing writes the
    /// article's search document. `None` when there is no such article.
    pub async fn kb_change<F>(
        &self,
        id: i64,
        by: i64,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<Option<()>>
    where
        F: FnOnce(&ArticleRow) -> Result<ArticleChange> + Send,
    {
        let at = to_micros(now);
        write!(self, |p, d| {
            let mut tx = p.begin().await?;
            let lock = match d {
                Dialect::Postgres => " FOR UPDATE OF a",
                Dialect::Sqlite => "",
            };
            let row: Option<ArticleRow> =
                sqlx::query_as(&format!("{ARTICLE_SELECT} WHERE a.id = $1{lock}"))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let change = decide(&row)?;
            let mut version = row.version;
            let text = match &change.text {
                Some(t) => {
                    version += 1;
                    insert_version!(tx, id, version, t, by, at);
                    t.clone()
                }
                None => row.text.clone(),
            };
            let published_version = if change.publish {
                Some(version)
            } else {
                row.published_version
            };
            let published_at = if change.publish {
                Some(at)
            } else {
                row.published_at
            };
            sqlx::query(
                "UPDATE kb_articles SET state = $1, version = $2, published_version = $3,
                        submitted_by = $4, reviewed_by = $5, review_comment = $6,
                        updated_at = $7, published_at = $8
                 WHERE id = $9",
            )
            .bind(change.state)
            .bind(version)
            .bind(published_version)
            .bind(change.submitted_by)
            .bind(change.reviewed_by)
            .bind(&change.review_comment)
            .bind(at)
            .bind(published_at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "article"))?;
            if change.publish {
                let body = format!("{}\n{}\n{}", text.symptom, text.cause, text.resolution);
                match d {
                    Dialect::Sqlite => {
                        sqlx::query("DELETE FROM kb_docs WHERE rowid = $1")
                            .bind(article_rowid(id))
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO kb_docs (rowid, kind, ref_id, vendor, device_type, model, title, body)
                             VALUES ($1, 'article', $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(article_rowid(id))
                        .bind(id)
                        .bind(&text.vendor)
                        .bind(&text.device_type)
                        .bind(&text.model)
                        .bind(&text.title)
                        .bind(&body)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Dialect::Postgres => {
                        sqlx::query(
                            "INSERT INTO kb_docs (kind, ref_id, vendor, device_type, model, title, body)
                             VALUES ('article', $1, $2, $3, $4, $5, $6)
                             ON CONFLICT (kind, ref_id) DO UPDATE SET vendor = excluded.vendor,
                                 device_type = excluded.device_type, model = excluded.model,
                                 title = excluded.title, body = excluded.body",
                        )
                        .bind(id)
                        .bind(&text.vendor)
                        .bind(&text.device_type)
                        .bind(&text.model)
                        .bind(&text.title)
                        .bind(&body)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(Some(()))
        })
    }

    /// Full-text search: documents matching any of `words` (already reduced
    /// to letters and digits), best first. Titles weigh more than bodies;
    /// articles more than cases.
    pub async fn kb_search(&self, words: &[String], f: &SearchFilter) -> Result<Vec<SearchRow>> {
        if words.is_empty()
            || words
                .iter()
                .any(|w| w.is_empty() || !w.chars().all(char::is_alphanumeric))
        {
            return Err(Error::invalid("q", "needs words of letters and digits"));
        }
        Ok(read!(self, |p, d| {
            let sql = match d {
                Dialect::Sqlite => {
                    "SELECT kind, CAST(ref_id AS INTEGER) AS ref_id, vendor, device_type, model, title,
                            snippet(kb_docs, 6, '[', ']', ' ... ', 24) AS snippet,
                            -bm25(kb_docs, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 1.0)
                              * (CASE kind WHEN 'article' THEN 1.5 ELSE 1.0 END) AS score
                     FROM kb_docs
                     WHERE kb_docs MATCH $1
                       AND ($2 IS NULL OR lower(vendor) = lower($2))
                       AND ($3 IS NULL OR lower(device_type) = lower($3))
                       AND ($4 IS NULL OR lower(model) = lower($4))
                       AND ($5 IS NULL OR kind = $5)
                     ORDER BY score DESC, kind, ref_id LIMIT $6"
                }
                Dialect::Postgres => {
                    "SELECT kind, ref_id, vendor, device_type, model, title,
                            ts_headline('english', body, q, 'StartSel=[, StopSel=], MaxWords=30, MinWords=12') AS snippet,
                            CAST(ts_rank(tsv, q, 1) AS DOUBLE PRECISION)
                              * (CASE kind WHEN 'article' THEN 1.5 ELSE 1.0 END) AS score
                     FROM kb_docs, websearch_to_tsquery('english', $1) AS q
                     WHERE tsv @@ q
                       AND ($2::text IS NULL OR lower(vendor) = lower($2))
                       AND ($3::text IS NULL OR lower(device_type) = lower($3))
                       AND ($4::text IS NULL OR lower(model) = lower($4))
                       AND ($5::text IS NULL OR kind = $5)
                     ORDER BY score DESC, kind, ref_id LIMIT $6"
                }
            };
            let query = match d {
                // Each word quoted: FTS5 syntax characters cannot occur.
                Dialect::Sqlite => words
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(" OR "),
                Dialect::Postgres => words.join(" or "),
            };
            sqlx::query_as(sql)
                .bind(query)
                .bind(&f.vendor)
                .bind(&f.device_type)
                .bind(&f.model)
                .bind(f.kind)
                .bind(f.limit)
                .fetch_all(p)
                .await?
        }))
    }
}
