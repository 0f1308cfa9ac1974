//! The multi-column walk against an in-memory agent that can misbehave the
//! ways real ones do: truncated GETBULK responses, `tooBig`, and OIDs that
//! go backwards. (The real `snmpd` runs in `agent/tests/snmp.rs`.)

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::snmp::value::{Oid, VarBind};

/// A sorted MIB answering GETBULK by lexicographic successor.
#[derive(Default)]
struct MemoryAgent {
    mib: BTreeMap<Vec<u32>, Value>,
    /// Answer at most this many bindings per response.
    truncate_to: Option<usize>,
    /// Answer `tooBig` when asked for more bindings than this.
    too_big_above: Option<usize>,
    /// Send each successor's predecessor instead (a broken agent).
    backwards: bool,
    /// Requests seen, as (number of OIDs, max-repetitions).
    requests: Mutex<Vec<(usize, u32)>>,
}

impl MemoryAgent {
    fn successor(&self, oid: &[u32]) -> VarBind {
        let next = self
            .mib
            .range::<[u32], _>((std::ops::Bound::Excluded(oid), std::ops::Bound::Unbounded))
            .next();
        match next {
            Some((next_oid, value)) if self.backwards => VarBind {
                oid: Oid::new([&next_oid[..next_oid.len() - 1], &[0]].concat()),
                value: value.clone(),
            },
            Some((next_oid, value)) => VarBind {
                oid: Oid::new(next_oid.clone()),
                value: value.clone(),
            },
            None => VarBind {
                oid: Oid::new(oid),
                value: Value::EndOfMibView,
            },
        }
    }
}

impl Session for MemoryAgent {
    fn label(&self) -> &str {
        "mem (127.0.0.1:161)"
    }

    fn max_repetitions(&self) -> u32 {
        10
    }

    async fn get(&self, _oids: &[&[u32]]) -> Result<Vec<VarBind>, SnmpError> {
        unreachable!("walks use GETBULK")
    }

    async fn get_bulk(
        &self,
        oids: &[&[u32]],
        max_repetitions: u32,
    ) -> Result<Vec<VarBind>, SnmpError> {
        self.requests
            .lock()
            .expect("lock")
            .push((oids.len(), max_repetitions));
        let wanted = oids.len() * max_repetitions as usize;
        if self.too_big_above.is_some_and(|limit| wanted > limit) {
            return Err(SnmpError::Status {
                target: self.label().to_owned(),
                status: "tooBig".into(),
                try_smaller: true,
            });
        }
        let mut cursors: Vec<Vec<u32>> = oids.iter().map(|oid| oid.to_vec()).collect();
        let mut out = Vec::new();
        for _ in 0..max_repetitions {
            for cursor in &mut cursors {
                let vb = self.successor(cursor);
                *cursor = vb.oid.arcs().to_vec();
                out.push(vb);
            }
        }
        if let Some(limit) = self.truncate_to {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn bulk_walk(&self, _root: &[u32]) -> Result<Vec<VarBind>, SnmpError> {
        unreachable!("not used here")
    }
}

const ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1];

/// 23 rows of columns 2 and 8 (column 8 missing on row 5), then an
/// unrelated object after the table.
fn agent() -> MemoryAgent {
    let mut agent = MemoryAgent::default();
    for row in 1..=23u32 {
        agent.mib.insert(
            [ENTRY, &[2, row]].concat(),
            Value::OctetString(format!("if{row}").into_bytes()),
        );
        agent
            .mib
            .insert([ENTRY, &[3, row]].concat(), Value::Integer(6));
        if row != 5 {
            agent
                .mib
                .insert([ENTRY, &[8, row]].concat(), Value::Integer(1));
        }
    }
    agent
        .mib
        .insert(vec![1, 3, 6, 1, 2, 1, 4, 1, 0], Value::Integer(1));
    agent
}

fn check_table(table: &Table) {
    assert_eq!(table.len(), 23);
    let five = table.row(5).expect("row 5");
    assert_eq!(five.text(2).as_deref(), Some("if5"));
    assert_eq!(five.get(8), None);
    assert_eq!(five.get(3), None, "column 3 was not asked for");
    assert_eq!(table.row(23).and_then(|r| r.int(8)), Some(1));
}

#[tokio::test]
async fn walks_several_columns_in_the_same_requests() {
    let agent = agent();
    let table = walk_columns(&agent, ENTRY, &[2, 8]).await.expect("walk");
    check_table(&table);
    let requests = agent.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "23 rows at 10 per request: {requests:?}");
    assert!(requests.iter().all(|(width, _)| *width == 2));
}

#[tokio::test]
async fn truncated_responses_still_reach_every_row() {
    let mut agent = agent();
    agent.truncate_to = Some(3);
    let table = walk_columns(&agent, ENTRY, &[2, 8]).await.expect("walk");
    check_table(&table);
}

#[tokio::test]
async fn too_big_halves_the_repetitions() {
    let mut agent = agent();
    agent.too_big_above = Some(6);
    let table = walk_columns(&agent, ENTRY, &[2, 8]).await.expect("walk");
    check_table(&table);
    let requests = agent.requests.lock().expect("lock").clone();
    assert_eq!(&requests[..3], [(2, 10), (2, 5), (2, 2)]);

    agent.too_big_above = Some(1);
    let err = walk_columns(&agent, ENTRY, &[2, 8])
        .await
        .expect_err("never fits");
    assert!(matches!(err, SnmpError::Status { .. }), "{err:?}");
}

#[tokio::test]
async fn a_walk_going_backwards_is_refused() {
    let mut agent = agent();
    agent.backwards = true;
    let err = walk_columns(&agent, ENTRY, &[2])
        .await
        .expect_err("broken agent");
    assert!(err.to_string().contains("walk went backwards"), "{err}");
}

#[tokio::test]
async fn absent_tables_are_empty() {
    let agent = agent();
    let table = walk_columns(&agent, &[1, 3, 6, 1, 2, 1, 99, 1, 1, 1], &[1, 4])
        .await
        .expect("walk");
    assert!(table.is_empty());
    let table = walk_columns(&agent, &[1, 3, 6, 1, 9], &[1])
        .await
        .expect("walk past the end");
    assert!(table.is_empty());
}
