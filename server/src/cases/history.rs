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

/// The fields of one entry that its hash covers. Serialised as JSON in this
/// field order, after a version prefix; changing either changes every hash.
#[derive(Serialize)]
pub struct EntryFields<'a> {
    #[serde(rename = "case")]
    pub case_number: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub visibility: &'a str,
    pub author_id: Option<i64>,
    pub author_name: &'a str,
    #[serde(rename = "at")]
    pub at_micros: i64,
    pub body: &'a str,
    #[serde(rename = "prev")]
    pub prev_hash: &'a str,
}

/// Domain separation and format version of the history hash.
const HASH_PREFIX: &[u8] = b"outpost-history-v1\n";

pub fn entry_hash(e: &EntryFields<'_>) -> String {
    // Serialising a struct of plain strings and integers cannot fail.
    let json = serde_json::to_vec(e).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(HASH_PREFIX);
    h.update(&json);
    hex::encode(h.finalize())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::model::{CaseType, Channel, Priority};
    use crate::cases::{Caller, Status};

    fn case(last_seq: i64, head: &str) -> Case {
        let t = crate::clock::from_micros(0);
        Case {
            id: 1,
            number: "C-2026-000001".into(),
            organization_id: Some(1),
            contract_id: None,
            device_id: None,
            caller: Caller::default(),
            summary: "s".into(),
            details: String::new(),
            priority: Priority::P2,
            status: Status::New,
            case_type: CaseType::Other,
            vendor: None,
            channel: Channel::Phone,
            assignee_id: None,
            created_by: None,
            created_at: t,
            updated_at: t,
            responded_at: None,
            resolved_at: None,
            closed_at: None,
            last_seq,
            head_hash: head.into(),
        }
    }

    /// Build a valid chain of an `opened` entry and `n` notes.
    fn chain(n: usize) -> Vec<StoredEntry> {
        let mut out: Vec<StoredEntry> = Vec::new();
        let mut bodies = vec![serde_json::to_string(&ActivityBody::Opened {
            summary: "s".into(),
            priority: Priority::P2,
            channel: Channel::Phone,
            case_type: CaseType::Other,
        })
        .unwrap_or_default()];
        for i in 0..n {
            bodies.push(format!("{{\"kind\":\"note\",\"text\":\"note {i}\"}}"));
        }
        for (i, body) in bodies.into_iter().enumerate() {
            let kind = if i == 0 { "opened" } else { "note" };
            let prev = out
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or_else(|| GENESIS.to_string());
            let seq = i as i64 + 1;
            let hash = entry_hash(&EntryFields {
                case_number: "C-2026-000001",
                seq,
                kind,
                visibility: "public",
                author_id: Some(7),
                author_name: "Erik",
                at_micros: 1_000 * seq,
                body: &body,
                prev_hash: &prev,
            });
            out.push(StoredEntry {
                seq,
                kind: kind.into(),
                visibility: "public".into(),
                author_id: Some(7),
                author_name: "Erik".into(),
                at: 1_000 * seq,
                body,
                prev_hash: prev,
                hash,
            });
        }
        out
    }

    #[test]
    fn hash_is_stable() {
        // A fixed vector: a change of the hashed format must be deliberate.
        let h = entry_hash(&EntryFields {
            case_number: "C-2026-000001",
            seq: 1,
            kind: "note",
            visibility: "internal",
            author_id: None,
            author_name: "a",
            at_micros: 0,
            body: "{}",
            prev_hash: GENESIS,
        });
        // Computed independently: sha256("outpost-history-v1\n" + compact JSON).
        assert_eq!(
            h,
            "1cec44e831892fa0ee3a03b0a0b8aae9d5387eddcc6ca7d2491ae406a67dbc73"
        );
    }

    #[test]
    fn intact_chain_has_no_findings() {
        let entries = chain(3);
        let head = entries.last().map(|e| e.hash.clone()).unwrap_or_default();
        assert!(verify_chain(&case(4, &head), &entries).is_empty());
    }

    #[test]
    fn altered_removed_and_truncated_entries_are_found() {
        let entries = chain(3);
        let head = entries.last().map(|e| e.hash.clone()).unwrap_or_default();
        let c = case(4, &head);

        let mut altered = entries.clone();
        altered[2].body = "{\"kind\":\"note\",\"text\":\"changed\"}".into();
        let f = verify_chain(&c, &altered);
        assert!(
            f.iter()
                .any(|f| f.seq == Some(3) && f.problem.contains("altered")),
            "{f:?}"
        );

        let mut removed = entries.clone();
        removed.remove(1);
        let f = verify_chain(&c, &removed);
        assert!(
            f.iter()
                .any(|f| f.seq == Some(3) && f.problem.contains("removed")),
            "{f:?}"
        );

        let truncated = entries[..3].to_vec();
        let f = verify_chain(&c, &truncated);
        assert!(
            f.iter()
                .any(|f| f.seq.is_none() && f.problem.contains("records 4 entries")),
            "{f:?}"
        );

        let mut bad_status = c.clone();
        bad_status.status = Status::Closed;
        let f = verify_chain(&bad_status, &entries);
        assert!(
            f.iter().any(|f| f
                .problem
                .contains("status is closed but the history says new")),
            "{f:?}"
        );
    }
}
