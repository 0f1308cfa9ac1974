//! SQL for cases and their history.
//!
//! Creating a case takes the next number from `case_counters` and writes the
//! case and its first entries in one transaction. Every later change runs
//! through [`Store::change_case`]: read, decide and write inside one write
//! transaction holding the case, so the new entries chain onto the true head.

use chrono::{DateTime, Datelike, Utc};
use sqlx::FromRow;

use super::directory::escape_like;
use super::{map_db_err, read, write, Store};
use crate::cases::history::{entry_hash, EntryFields, StoredEntry, GENESIS};
use crate::clock::to_micros;
use crate::error::{Error, Result};

/// Insert one chained history entry inside the transaction `$tx`.
macro_rules! insert_entry {
    ($tx:expr, $case_id:expr, $seq:expr, $e:expr, $prev:expr, $hash:expr) => {{
        let e: &PendingEntry = $e;
        sqlx::query(
            "INSERT INTO activities (case_id, seq, kind, visibility, author_id, author_name, at, body, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($case_id)
        .bind($seq)
        .bind(e.kind)
        .bind(e.visibility)
        .bind(e.author_id)
        .bind(e.author_name.as_str())
        .bind(to_micros(e.at))
        .bind(e.body.as_str())
        .bind($prev.as_str())
        .bind($hash.as_str())
        .execute(&mut *$tx)
        .await
        .map_err(|e| map_db_err(e, "activity"))?;
    }};
}

/// Queue one entry in the notification outbox inside the transaction `$tx`.
macro_rules! insert_outbox {
    ($tx:expr, $case_id:expr, $seq:expr, $at:expr) => {{
        sqlx::query("INSERT INTO outbox (case_id, seq, created_at) VALUES ($1, $2, $3)")
            .bind($case_id)
            .bind($seq)
            .bind(to_micros($at))
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Inside the transaction `$tx`, mark the open cases whose `$col` is `$id`
/// for an SLA resync (their policy, calendar or time zone may have changed).
macro_rules! mark_sla_stale {
    ($tx:expr, $col:literal, $id:expr) => {{
        sqlx::query(concat!(
            "UPDATE cases SET sla_seq = NULL WHERE ",
            $col,
            " = $1 AND status NOT IN ('resolved', 'closed')"
        ))
        .bind($id)
        .execute(&mut *$tx)
        .await?;
    }};
}
/// Appends `entries` to the history of `case` (a [`CaseRow`] read in `tx`,
/// which holds it): chained onto its head, the head moved, and the entries
/// that notify queued in the outbox. Evaluates to whether any was queued.
/// For changes that append to a case beside rows of their own (shipments,
/// field visits); the callers import `PendingEntry`.
macro_rules! append_entries {
    ($tx:expr, $case:expr, $entries:expr, $now:expr) => {{
        let case: &$crate::store::cases::CaseRow = $case;
        let entries: &[PendingEntry] = $entries;
        let links =
            $crate::store::cases::chain(&case.number, case.last_seq + 1, &case.head_hash, entries);
        let mut queued = false;
        if let Some((last_seq, _, head)) = links.last().cloned() {
            sqlx::query(
                "UPDATE cases SET last_seq = $1, head_hash = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(last_seq)
            .bind(&head)
            .bind($now)
            .bind(case.id)
            .execute(&mut *$tx)
            .await?;
            for (e, (seq, prev, hash)) in entries.iter().zip(links) {
                $crate::store::cases::insert_entry!($tx, case.id, seq, e, prev, hash);
                if e.notify {
                    $crate::store::cases::insert_outbox!($tx, case.id, seq, e.at);
                    queued = true;
                }
            }
        }
        queued
    }};
}
pub(crate) use {append_entries, insert_entry, insert_outbox, mark_sla_stale};

/// A case creation waiting for the writer task.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    insert: CaseInsert,
    entries: Vec<PendingEntry>,
    reply: tokio::sync::oneshot::Sender<Result<(i64, String)>>,
}

/// Most creations written in one transaction.
const MAX_BATCH: usize = 256;

/// The group-commit loop: waits for one creation, takes every other one
/// already queued (up to [`MAX_BATCH`]), and writes them together. If the
/// batch fails, each creation is retried alone, so one bad case never fails
/// the others.
pub(crate) async fn case_writer(store: Store, mut rx: tokio::sync::mpsc::Receiver<CreateRequest>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let inputs: Vec<(&CaseInsert, &[PendingEntry])> = batch
            .iter()
            .map(|r| (&r.insert, r.entries.as_slice()))
            .collect();
        match store.insert_cases(&inputs).await {
            Ok(done) => {
                for (req, r) in batch.into_iter().zip(done) {
                    let _ = req.reply.send(Ok(r));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(req) = batch.pop() {
                    let _ = req.reply.send(Err(e));
                }
            }
            Err(_) => {
                for req in batch {
                    let one = store
                        .insert_cases(&[(&req.insert, req.entries.as_slice())])
                        .await
                        .and_then(|mut v| {
                            v.pop()
                                .ok_or_else(|| Error::Corrupt("no case inserted".into()))
                        });
                    let _ = req.reply.send(one);
                }
            }
        }
    }
}

/// A case row with the names of what it refers to.
#[derive(Debug, Clone, FromRow)]
pub struct CaseRow {
    pub id: i64,
    pub number: String,
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
    pub contract_id: Option<i64>,
    pub contract_number: Option<String>,
    pub device_id: Option<i64>,
    pub device_name: Option<String>,
    pub caller_name: String,
    pub caller_company: Option<String>,
    pub caller_phone: Option<String>,
    pub caller_email: Option<String>,
    pub caller_contract: Option<String>,
    pub summary: String,
    pub details: String,
    pub priority: i64,
    pub status: String,
    pub case_type: String,
    pub vendor: Option<String>,
    pub channel: String,
    pub assignee_id: Option<i64>,
    pub assignee_name: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub responded_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub last_seq: i64,
    pub head_hash: String,
}

pub(crate) const CASE_SELECT: &str =
    "SELECT c.id, c.number, c.organization_id, o.name AS organization_name,
    c.contract_id, k.number AS contract_number, c.device_id, d.name AS device_name,
    c.caller_name, c.caller_company, c.caller_phone, c.caller_email, c.caller_contract,
    c.summary, c.details, c.priority, c.status, c.case_type, c.vendor, c.channel,
    c.assignee_id, u.display_name AS assignee_name, c.created_by, c.created_at, c.updated_at,
    c.responded_at, c.resolved_at, c.closed_at, c.last_seq, c.head_hash
  FROM cases c
  LEFT JOIN organizations o ON o.id = c.organization_id
  LEFT JOIN contracts k ON k.id = c.contract_id
  LEFT JOIN devices d ON d.id = c.device_id
  LEFT JOIN users u ON u.id = c.assignee_id";

/// What a new case row holds (the number is assigned by the store).
#[derive(Debug, Clone)]
pub struct CaseInsert {
    pub organization_id: Option<i64>,
    pub contract_id: Option<i64>,
    pub device_id: Option<i64>,
    pub caller_name: String,
    pub caller_company: Option<String>,
    pub caller_phone: Option<String>,
    pub caller_email: Option<String>,
    pub caller_contract: Option<String>,
    pub summary: String,
    pub details: String,
    pub priority: i64,
    pub status: String,
    pub case_type: String,
    pub vendor: Option<String>,
    pub channel: String,
    pub assignee_id: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// For cases an agent opened: the agent and the fault's key. At most one
    /// open case per (agent, fault key); a second is refused as a conflict.
    pub agent_id: Option<i64>,
    pub fault_key: Option<String>,
}

/// The mutable part of a case, written by a change.
#[derive(Debug, Clone)]
pub struct CaseState {
    pub status: String,
    pub priority: i64,
    pub case_type: String,
    pub vendor: Option<String>,
    pub assignee_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A history entry before it has a place in the chain.
#[derive(Debug, Clone)]
pub struct PendingEntry {
    pub kind: &'static str,
    pub visibility: &'static str,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub at: DateTime<Utc>,
    /// JSON text of the activity body.
    pub body: String,
    /// Queue it in the notification outbox, in the same transaction.
    pub notify: bool,
}

/// A stored history entry.
#[derive(Debug, Clone, FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub seq: i64,
    pub kind: String,
    pub visibility: String,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub at: i64,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<EntryRow> for StoredEntry {
    fn from(r: EntryRow) -> Self {
        StoredEntry {
            seq: r.seq,
            kind: r.kind,
            visibility: r.visibility,
            author_id: r.author_id,
            author_name: r.author_name,
            at: r.at,
            body: r.body,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Search criteria; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub organization_id: Option<i64>,
    pub statuses: Vec<String>,
    pub priorities: Vec<i64>,
    pub case_types: Vec<String>,
    pub channels: Vec<String>,
    pub vendor: Option<String>,
    pub device_id: Option<i64>,
    pub contract_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub unassigned: bool,
    pub open_only: bool,
    pub text: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub closed_from: Option<i64>,
    pub closed_to: Option<i64>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// Keyset position for stable pagination: newest first by (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }
    pub fn decode(s: &str) -> Result<Cursor> {
        let bad = || Error::invalid("cursor", "is not a cursor returned by this API");
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            created_at: a.parse().map_err(|_| bad())?,
            id: b.parse().map_err(|_| bad())?,
        })
    }
}

pub(crate) fn chain(
    number: &str,
    start_seq: i64,
    start_prev: &str,
    entries: &[PendingEntry],
) -> Vec<(i64, String, String)> {
    let mut prev = start_prev.to_string();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let seq = start_seq + i as i64;
        let hash = entry_hash(&EntryFields {
            case_number: number,
            seq,
            kind: e.kind,
            visibility: e.visibility,
            author_id: e.author_id,
            author_name: &e.author_name,
            at_micros: to_micros(e.at),
            body: &e.body,
            prev_hash: &prev,
        });
        out.push((seq, prev.clone(), hash.clone()));
        prev = hash;
    }
    out
}

impl Store {
    /// Create a case with a fresh number and its first history entries.
    /// Returns the new case's id and number. Creations are group-committed:
    /// a writer task takes every creation waiting at that moment and writes
    /// them in one transaction (see [`case_writer`]).
    pub async fn insert_case(
        &self,
        c: &CaseInsert,
        entries: &[PendingEntry],
    ) -> Result<(i64, String)> {
        if entries.is_empty() {
            return Err(Error::Corrupt(
                "a case must start with at least one history entry".into(),
            ));
        }
        let Some(tx) = &self.creator else {
            return self
                .insert_cases(&[(c, entries)])
                .await?
                .pop()
                .ok_or_else(|| Error::Corrupt("no case inserted".into()));
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = CreateRequest {
            insert: c.clone(),
            entries: entries.to_vec(),
            reply,
        };
        tx.send(req)
            .await
            .map_err(|_| Error::Corrupt("the case writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Corrupt("the case writer has stopped".into()))?
    }

    /// Insert several cases in one transaction: one counter bump per year,
    /// one multi-row insert of cases, one of history entries.
    pub(crate) async fn insert_cases(
        &self,
        batch: &[(&CaseInsert, &[PendingEntry])],
    ) -> Result<Vec<(i64, String)>> {
        let mut per_year: std::collections::BTreeMap<i64, i64> = Default::default();
        for (c, _) in batch {
            *per_year.entry(i64::from(c.created_at.year())).or_default() += 1;
        }
        write!(self, |p, _d| {
            let mut tx = p.begin().await?;
            let mut next: std::collections::BTreeMap<i64, i64> = Default::default();
            for (year, n) in &per_year {
                let last: i64 = sqlx::query_scalar(
                    "INSERT INTO case_counters (year, last) VALUES ($1, $2)
                     ON CONFLICT (year) DO UPDATE SET last = case_counters.last + $2 RETURNING last",
                )
                .bind(year)
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
                next.insert(*year, last - n + 1);
            }
            // Number each case and chain its first entries.
            let mut rows = Vec::with_capacity(batch.len());
            for (c, entries) in batch {
                let year = i64::from(c.created_at.year());
                let n = next
                    .get_mut(&year)
                    .ok_or_else(|| Error::Corrupt("case year".into()))?;
                let number = format!("C-{year}-{:06}", *n);
                *n += 1;
                let links = chain(&number, 1, GENESIS, entries);
                let (last_seq, head) = links
                    .last()
                    .map(|(s, _, h)| (*s, h.clone()))
                    .unwrap_or((0, GENESIS.to_string()));
                rows.push((*c, number, last_seq, head, links, *entries));
            }
            let mut ids: std::collections::HashMap<String, i64> = Default::default();
            for chunk in rows.chunks(500) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO cases (number, organization_id, contract_id, device_id, caller_name,
                        caller_company, caller_phone, caller_email, caller_contract, summary, details,
                        priority, status, case_type, vendor, channel, assignee_id, created_by,
                        created_at, updated_at, last_seq, head_hash, agent_id, fault_key) ",
                );
                qb.push_values(chunk, |mut b, (c, number, last_seq, head, _, _)| {
                    let at = to_micros(c.created_at);
                    b.push_bind(number.as_str())
                        .push_bind(c.organization_id)
                        .push_bind(c.contract_id)
                        .push_bind(c.device_id)
                        .push_bind(c.caller_name.as_str())
                        .push_bind(c.caller_company.as_deref())
                        .push_bind(c.caller_phone.as_deref())
                        .push_bind(c.caller_email.as_deref())
                        .push_bind(c.caller_contract.as_deref())
                        .push_bind(c.summary.as_str())
                        .push_bind(c.details.as_str())
                        .push_bind(c.priority)
                        .push_bind(c.status.as_str())
                        .push_bind(c.case_type.as_str())
                        .push_bind(c.vendor.as_deref())
                        .push_bind(c.channel.as_str())
                        .push_bind(c.assignee_id)
                        .push_bind(c.created_by)
                        .push_bind(at)
                        .push_bind(at)
                        .push_bind(*last_seq)
                        .push_bind(head.as_str())
                        .push_bind(c.agent_id)
                        .push_bind(c.fault_key.as_deref());
                });
                qb.push(" RETURNING id, number");
                let got: Vec<(i64, String)> = qb
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, "case"))?;
                ids.extend(got.into_iter().map(|(id, n)| (n, id)));
            }
            let mut entries = Vec::new();
            for (_, number, _, _, links, es) in &rows {
                let id = *ids
                    .get(number)
                    .ok_or_else(|| Error::Corrupt(format!("case {number} not returned")))?;
                for (e, (seq, prev, hash)) in es.iter().zip(links) {
                    entries.push((id, *seq, e, prev.as_str(), hash.as_str()));
                }
            }
            for chunk in entries.chunks(1000) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO activities (case_id, seq, kind, visibility, author_id, author_name, at, body, prev_hash, hash) ",
                );
                qb.push_values(chunk, |mut b, (id, seq, e, prev, hash)| {
                    b.push_bind(*id)
                        .push_bind(*seq)
                        .push_bind(e.kind)
                        .push_bind(e.visibility)
                        .push_bind(e.author_id)
                        .push_bind(e.author_name.as_str())
                        .push_bind(to_micros(e.at))
                        .push_bind(e.body.as_str())
                        .push_bind(*prev)
                        .push_bind(*hash);
                });
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_db_err(e, "activity"))?;
            }
            let mut queued = false;
            for (id, seq, e, _, _) in &entries {
                if e.notify {
                    insert_outbox!(tx, *id, *seq, e.at);
                    queued = true;
                }
            }
            tx.commit().await?;
            if queued {
                self.outbox_signal.notify_one();
            }
            rows.iter()
                .map(|(_, number, ..)| {
                    ids.get(number)
                        .map(|id| (*id, number.clone()))
                        .ok_or_else(|| Error::Corrupt(format!("case {number} not returned")))
                })
                .collect()
        })
    }

    /// Change one case atomically: inside a write transaction that holds the
    /// case row (PostgreSQL `FOR UPDATE`; SQLite has one writer), read it,
    /// let `decide` compute the new state and history entries, chain the
    /// entries onto the head it saw, and commit. Concurrent changes to the same
    /// case queue up instead of failing. `Ok(None)`: no such case.
    pub async fn change_case<F>(&self, number: &str, decide: F) -> Result<Option<()>>
    where
        F: FnOnce(&CaseRow) -> Result<(CaseState, Vec<PendingEntry>)>,
    {
        write!(self, |p, d| {
            let mut tx = p.begin().await?;
            let lock = match d {
                super::Dialect::Postgres => " FOR UPDATE OF c",
                super::Dialect::Sqlite => "",
            };
            let row: Option<CaseRow> =
                sqlx::query_as(&format!("{CASE_SELECT} WHERE c.number = $1{lock}"))
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else { return Ok(None) };
            let (state, entries) = decide(&row)?;
            let links = chain(&row.number, row.last_seq + 1, &row.head_hash, &entries);
            let (last_seq, head) = links
                .last()
                .map(|(s, _, h)| (*s, h.clone()))
                .unwrap_or((row.last_seq, row.head_hash.clone()));
            sqlx::query(
                "UPDATE cases SET status = $1, priority = $2, case_type = $3, vendor = $4,
                    assignee_id = $5, updated_at = $6, responded_at = $7, resolved_at = $8,
                    closed_at = $9, last_seq = $10, head_hash = $11
                 WHERE id = $12",
            )
            .bind(&state.status)
            .bind(state.priority)
            .bind(&state.case_type)
            .bind(&state.vendor)
            .bind(state.assignee_id)
            .bind(to_micros(state.updated_at))
            .bind(state.responded_at.map(to_micros))
            .bind(state.resolved_at.map(to_micros))
            .bind(state.closed_at.map(to_micros))
            .bind(last_seq)
            .bind(&head)
            .bind(row.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_db_err(e, "assignee_id"))?;
            let mut queued = false;
            for (e, (seq, prev, hash)) in entries.iter().zip(links) {
                insert_entry!(tx, row.id, seq, e, prev, hash);
                if e.notify {
                    insert_outbox!(tx, row.id, seq, e.at);
                    queued = true;
                }
            }
            tx.commit().await?;
            if queued {
                self.outbox_signal.notify_one();
            }
            Ok(Some(()))
        })
    }

    pub async fn case_by_id(&self, id: i64) -> Result<Option<CaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{CASE_SELECT} WHERE c.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn case_by_number(&self, number: &str) -> Result<Option<CaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!("{CASE_SELECT} WHERE c.number = $1"))
                .bind(number)
                .fetch_optional(p)
                .await?
        }))
    }

    /// The whole history of a case, oldest first.
    pub async fn entries(&self, case_id: i64) -> Result<Vec<EntryRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT id, seq, kind, visibility, author_id, author_name, at, body, prev_hash, hash
                 FROM activities WHERE case_id = $1 ORDER BY seq, id",
            )
            .bind(case_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Cases in id order after `after_id`, for walking all of them in batches.
    pub async fn cases_after(&self, after_id: i64, limit: i64) -> Result<Vec<CaseRow>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(&format!(
                "{CASE_SELECT} WHERE c.id > $1 ORDER BY c.id LIMIT $2"
            ))
            .bind(after_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    pub async fn search_cases(&self, f: &CaseFilter) -> Result<Vec<CaseRow>> {
        let pattern = f.text.as_deref().map(|t| format!("%{}%", escape_like(t)));
        let vendor = f.vendor.as_deref().map(|v| v.to_lowercase());
        Ok(read!(self, |p, d| {
            let mut qb = sqlx::QueryBuilder::new(CASE_SELECT);
            qb.push(" WHERE 1 = 1");
            if let Some(o) = f.organization_id {
                qb.push(" AND c.organization_id = ").push_bind(o);
            }
            if !f.statuses.is_empty() {
                qb.push(" AND c.status IN (");
                let mut sep = qb.separated(", ");
                for s in &f.statuses {
                    sep.push_bind(s.as_str());
                }
                qb.push(")");
            }
            if !f.priorities.is_empty() {
                qb.push(" AND c.priority IN (");
                let mut sep = qb.separated(", ");
                for s in &f.priorities {
                    sep.push_bind(*s);
                }
                qb.push(")");
            }
            if !f.case_types.is_empty() {
                qb.push(" AND c.case_type IN (");
                let mut sep = qb.separated(", ");
                for s in &f.case_types {
                    sep.push_bind(s.as_str());
                }
                qb.push(")");
            }
            if !f.channels.is_empty() {
                qb.push(" AND c.channel IN (");
                let mut sep = qb.separated(", ");
                for s in &f.channels {
                    sep.push_bind(s.as_str());
                }
                qb.push(")");
            }
            if let Some(v) = &vendor {
                qb.push(" AND LOWER(c.vendor) = ").push_bind(v.as_str());
            }
            if let Some(x) = f.device_id {
                qb.push(" AND c.device_id = ").push_bind(x);
            }
            if let Some(x) = f.contract_id {
                qb.push(" AND c.contract_id = ").push_bind(x);
            }
            if let Some(x) = f.assignee_id {
                qb.push(" AND c.assignee_id = ").push_bind(x);
            }
            if f.unassigned {
                qb.push(" AND c.assignee_id IS NULL");
            }
            if f.open_only {
                qb.push(" AND c.status NOT IN ('resolved', 'closed')");
            }
            if let Some(pat) = &pattern {
                let op = d.ilike();
                qb.push(" AND (c.number ")
                    .push(op)
                    .push(" ")
                    .push_bind(pat.as_str());
                for col in [
                    "c.summary",
                    "c.details",
                    "c.caller_name",
                    "c.caller_company",
                    "c.vendor",
                ] {
                    qb.push(" ESCAPE '\\' OR ")
                        .push(col)
                        .push(" ")
                        .push(op)
                        .push(" ")
                        .push_bind(pat.as_str());
                }
                qb.push(" ESCAPE '\\')");
            }
            if let Some(x) = f.created_from {
                qb.push(" AND c.created_at >= ").push_bind(x);
            }
            if let Some(x) = f.created_to {
                qb.push(" AND c.created_at < ").push_bind(x);
            }
            if let Some(x) = f.closed_from {
                qb.push(" AND c.closed_at >= ").push_bind(x);
            }
            if let Some(x) = f.closed_to {
                qb.push(" AND c.closed_at < ").push_bind(x);
            }
            if let Some(cur) = f.after {
                qb.push(" AND (c.created_at < ").push_bind(cur.created_at);
                qb.push(" OR (c.created_at = ").push_bind(cur.created_at);
                qb.push(" AND c.id < ").push_bind(cur.id);
                qb.push("))");
            }
            qb.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
                .push_bind(f.limit);
            qb.build_query_as::<CaseRow>().fetch_all(p).await?
        }))
    }

    /// SLA events recorded between `from` and `to` (entry time), oldest
    /// first, optionally for one organisation: (case number, organisation
    /// name, entry time, body).
    pub async fn sla_events(
        &self,
        from: i64,
        to: i64,
        org: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>, i64, String)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as(
                "SELECT c.number, o.name, a.at, a.body FROM activities a
                 JOIN cases c ON c.id = a.case_id
                 LEFT JOIN organizations o ON o.id = c.organization_id
                 WHERE a.kind = 'sla_event' AND a.at >= $1 AND a.at < $2
                   AND ($3 IS NULL OR c.organization_id = $3)
                 ORDER BY a.at, a.id LIMIT $4",
            )
            .bind(from)
            .bind(to)
            .bind(org)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Ids of open (not resolved or closed) cases after `after_id`, in id order.
    pub async fn open_case_ids_after(&self, after_id: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT id FROM cases WHERE id > $1 AND status NOT IN ('resolved', 'closed')
                 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Cases whose SLA timers may be behind their history (changed since the
    /// engine last synced them, or never synced), after `after_id` in id order,
    /// last updated before `updated_before`. An index lookup on the stale
    /// ones only (`cases_sla_stale`).
    pub async fn stale_sla_case_ids_after(
        &self,
        after_id: i64,
        updated_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT id FROM cases WHERE (sla_seq IS NULL OR sla_seq < last_seq)
                 AND id > $1 AND updated_at < $2 ORDER BY id LIMIT $3",
            )
            .bind(after_id)
            .bind(to_micros(updated_before))
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Record that the case's timers are in line with its history up to `seq`.
    pub async fn mark_sla_synced(&self, case_id: i64, seq: i64) -> Result<()> {
        write!(self, |p, _d| {
            sqlx::query(
                "UPDATE cases SET sla_seq = $2 WHERE id = $1 AND (sla_seq IS NULL OR sla_seq < $2)",
            )
            .bind(case_id)
            .bind(seq)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Bulk import only (benchmarks, data loads whose timers were computed
    /// and imported with [`Store::import_timers`]): mark every case synced.
    pub async fn mark_all_sla_synced(&self) -> Result<u64> {
        Ok(write!(self, |p, _d| {
            sqlx::query(
                "UPDATE cases SET sla_seq = last_seq WHERE sla_seq IS NULL OR sla_seq < last_seq",
            )
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Number of cases per status (for /metrics).
    pub async fn case_counts_by_status(&self) -> Result<Vec<(String, i64)>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_as("SELECT status, COUNT(*) FROM cases GROUP BY status ORDER BY status")
                .fetch_all(p)
                .await?
        }))
    }

    /// Distinct engineers assigned to an organisation's open cases.
    pub async fn open_case_assignees(&self, org: i64) -> Result<Vec<i64>> {
        Ok(read!(self, |p, _d| {
            sqlx::query_scalar(
                "SELECT DISTINCT assignee_id FROM cases WHERE organization_id = $1
                 AND assignee_id IS NOT NULL AND status NOT IN ('resolved', 'closed') ORDER BY assignee_id",
            )
            .bind(org)
            .fetch_all(p)
            .await?
        }))
    }
}
