//! The tamper-evident case history: each activity carries the SHA-256 of its
//! own content and of the entry before it, so a changed, removed or reordered
//! entry breaks the chain. The case row keeps the head (last seq and hash), so
//! dropping the newest entries is caught too. `admin verify` walks every chain
//! with [`verify_chain`].

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::model::{ActivityBody, Case};

/// The `prev_hash` of the first entry of every case.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Everything an entry's hash covers, serialised with a fixed field order.
#[derive(Serialize)]
struct HashInput<'a> {
    v: u32,
    case: &'a str,
    seq: i64,
    kind: &'a str,
    visibility: &'a str,
    author_id: Option<i64>,
    author_name: &'a str,
    at: i64,
    body: &'a str,
    prev: &'a str,
}

/// The fields of one entry that the hash covers.
pub struct EntryFields<'a> {
    pub case_number: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub visibility: &'a str,
    pub author_id: Option<i64>,
    pub author_name: &'a str,
    pub at_micros: i64,
    pub body: &'a str,
    pub prev_hash: &'a str,
}

pub fn entry_hash(e: &EntryFields<'_>) -> String {
    let input = HashInput {
        v: 1,
        case: e.case_number,
        seq: e.seq,
        kind: e.kind,
        visibility: e.visibility,
        author_id: e.author_id,
        author_name: e.author_name,
        at: e.at_micros,
        body: e.body,
        prev: e.prev_hash,
    };
    // Serialising a struct of plain strings and integers cannot fail.
    let bytes = serde_json::to_vec(&input).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// A stored activity row as `admin verify` reads it (kind kept as text so a
/// tampered kind is reported, not rejected while loading).
#[derive(Debug, Clone)]
pub struct StoredEntry {
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

/// One problem found in a case's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub case_number: String,
    /// The entry concerned, when the problem is with one entry.
    pub seq: Option<i64>,
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(
                f,
                "case {} entry #{}: {}",
                self.case_number, s, self.problem
            ),
            None => write!(f, "case {}: {}", self.case_number, self.problem),
        }
    }
}

/// Check one case's chain: contiguous seqs from 1, every `prev_hash` linking to
/// the previous entry, every stored hash matching the content, bodies that
/// parse, the head recorded on the case matching the last entry, and the
/// case's status/priority/assignee matching what the history says.
pub fn verify_chain(case: &Case, entries: &[StoredEntry]) -> Vec<Finding> {
    let mut out = Vec::new();
    let finding = |seq: Option<i64>, problem: String| Finding {
        case_number: case.number.clone(),
        seq,
        problem,
    };
    let mut prev = GENESIS.to_string();
    let mut status = None;
    let mut priority = None;
    let mut assignee: Option<Option<i64>> = None;
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            out.push(finding(
                Some(e.seq),
                format!("expected entry #{expected_seq} here: an entry was removed or renumbered"),
            ));
        }
        if e.prev_hash != prev {
            out.push(finding(
                Some(e.seq),
                "prev_hash does not match the entry before it (an earlier entry was altered or removed)".into(),
            ));
        }
        let recomputed = entry_hash(&EntryFields {
            case_number: &case.number,
            seq: e.seq,
            kind: &e.kind,
            visibility: &e.visibility,
            author_id: e.author_id,
            author_name: &e.author_name,
            at_micros: e.at,
            body: &e.body,
            prev_hash: &e.prev_hash,
        });
        if recomputed != e.hash {
            out.push(finding(
                Some(e.seq),
                "content does not match its hash (entry altered)".into(),
            ));
        }
        match serde_json::from_str::<ActivityBody>(&e.body) {
            Ok(body) => {
                if body.kind() != e.kind {
                    out.push(finding(
                        Some(e.seq),
                        format!(
                            "kind column {:?} disagrees with body {:?}",
                            e.kind,
                            body.kind()
                        ),
                    ));
                }
                match body {
                    ActivityBody::Opened { priority: p, .. } => {
                        priority = Some(p);
                        status = Some(super::Status::New);
                        assignee = Some(None);
                    }
                    ActivityBody::StatusChanged { to, .. } => status = Some(to),
                    ActivityBody::PriorityChanged { to, .. } => priority = Some(to),
                    ActivityBody::Assigned { to, .. } | ActivityBody::TakenOver { to, .. } => {
                        assignee = Some(Some(to.id));
                    }
                    _ => {}
                }
            }
            Err(err) => out.push(finding(
                Some(e.seq),
                format!("body is not a valid activity: {err}"),
            )),
        }
        prev = e.hash.clone();
    }
    let last = entries.last().map(|e| e.seq).unwrap_or(0);
    if case.last_seq != last || case.head_hash != prev {
        out.push(finding(
            None,
            format!(
                "the case records {} entries ending in {}, but the history has {} ending in {} (entries removed or added outside the server)",
                case.last_seq, short(&case.head_hash), last, short(&prev)
            ),
        ));
    }
    if let Some(s) = status {
        if s != case.status {
            out.push(finding(
                None,
                format!("status is {} but the history says {}", case.status, s),
            ));
        }
    }
    if let Some(p) = priority {
        if p != case.priority {
            out.push(finding(
                None,
                format!("priority is {} but the history says {}", case.priority, p),
            ));
        }
    }
    if let Some(a) = assignee {
        if a != case.assignee_id {
            out.push(finding(
                None,
                format!(
                    "assignee is {:?} but the history says {:?}",
                    case.assignee_id, a
                ),
            ));
        }
    }
    out
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}
