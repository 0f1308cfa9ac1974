//! Reading SNMP tables: a GETBULK walk of several columns at once, and the
//! rows it yields, keyed by their index.
//!
//! One GETBULK request carries one cursor per column still being walked, so
//! a table of N wanted columns costs about `rows / max_repetitions` round
//! trips, not N times that. The walk ends for a column when the device
//! answers with an OID outside it or with an exception. A device may return
//! fewer bindings than asked (the walk simply continues); when it answers
//! `tooBig` or `genErr` (net-snmp's answer to an SNMPv3 response that would
//! not fit), the walk halves max-repetitions and asks again. It refuses OIDs
//! that do not increase (a broken agent would otherwise loop forever) and
//! tables larger than [`MAX_CELLS`].

use std::collections::BTreeMap;

/// Bindings asked for in one multi-column GETBULK (rows x columns), at most.
const MAX_BINDINGS: u32 = 100;

use super::error::SnmpError;
use super::value::Value;
use super::Session;

/// The most cells one table walk accepts before giving up.
pub const MAX_CELLS: usize = 100_000;

/// The rows of a table walk, ordered by index.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Table {
    rows: BTreeMap<Vec<u32>, Row>,
}

/// One row: the values of the walked columns present for this index.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Row {
    cells: BTreeMap<u32, Value>,
}

impl Table {
    /// Records `value` for `column` of the row with `index`.
    pub fn insert(&mut self, index: Vec<u32>, column: u32, value: Value) {
        self.rows
            .entry(index)
            .or_default()
            .cells
            .insert(column, value);
    }

    /// Rows in index order.
    pub fn rows(&self) -> impl Iterator<Item = (&[u32], &Row)> {
        self.rows.iter().map(|(index, row)| (index.as_slice(), row))
    }

    /// Rows whose index is a single arc (most tables), in index order.
    pub fn simple_rows(&self) -> impl Iterator<Item = (u32, &Row)> {
        self.rows().filter_map(|(index, row)| match index {
            [single] => Some((*single, row)),
            _ => None,
        })
    }

    /// The row with a single-arc `index`.
    pub fn row(&self, index: u32) -> Option<&Row> {
        self.rows.get([index].as_slice())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the walk found no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Row {
    /// The raw value of `column`.
    pub fn get(&self, column: u32) -> Option<&Value> {
        self.cells.get(&column)
    }

    /// `column` as text; `None` when absent, not a string, or empty.
    pub fn text(&self, column: u32) -> Option<String> {
        self.get(column)
            .and_then(Value::as_text)
            .filter(|text| !text.is_empty())
    }

    /// `column` as a signed integer.
    pub fn int(&self, column: u32) -> Option<i64> {
        self.get(column).and_then(Value::as_i64)
    }

    /// `column` as an unsigned integer.
    pub fn uint(&self, column: u32) -> Option<u64> {
        self.get(column).and_then(Value::as_u64)
    }
}

/// Walks `columns` of the table whose entry OID is `entry` with GETBULK,
/// all columns in the same requests.
pub async fn walk_columns<S: Session>(
    session: &S,
    entry: &[u32],
    columns: &[u32],
) -> Result<Table, SnmpError> {
    let prefixes: Vec<Vec<u32>> = columns
        .iter()
        .map(|column| [entry, &[*column]].concat())
        .collect();
    let mut cursors = prefixes.clone();
    // Positions (into `columns`) still being walked.
    let mut active: Vec<usize> = (0..columns.len()).collect();
    let mut table = Table::default();
    let mut cells = 0usize;
    let mut max_repetitions = session.max_repetitions().max(1);
    while !active.is_empty() {
        let request: Vec<&[u32]> = active.iter().map(|&i| cursors[i].as_slice()).collect();
        // Every column asks for `repetitions` rows, and each runs past its
        // end by as many: keep a request near MAX_BINDINGS so a short table
        // does not make the device compute hundreds of bindings for nothing.
        let width = u32::try_from(active.len()).unwrap_or(u32::MAX).max(1);
        let repetitions = max_repetitions.min((MAX_BINDINGS / width).max(1));
        let varbinds = match session.get_bulk(&request, repetitions).await {
            Ok(varbinds) => varbinds,
            // The response would not fit: ask for fewer rows at a time.
            Err(SnmpError::Status {
                try_smaller: true, ..
            }) if repetitions > 1 => {
                max_repetitions = repetitions / 2;
                continue;
            }
            Err(err) => return Err(err),
        };
        if varbinds.is_empty() {
            // Nothing more to learn; asking again would loop.
            break;
        }
        let width = active.len();
        let mut finished = vec![false; width];
        for (k, varbind) in varbinds.into_iter().enumerate() {
            let slot = k % width;
            if finished[slot] {
                continue;
            }
            let column = active[slot];
            let index = match varbind.oid.index_under(&prefixes[column]) {
                Some(index) if !varbind.value.is_exception() => index.to_vec(),
                _ => {
                    finished[slot] = true;
                    continue;
                }
            };
            if varbind.oid.arcs() <= cursors[column].as_slice() {
                return Err(SnmpError::Protocol {
                    target: session.label().to_owned(),
                    reason: format!(
                        "walk went backwards at {} (after {}): the device's GETBULK is broken",
                        varbind.oid,
                        dotted(&cursors[column])
                    ),
                });
            }
            cursors[column] = varbind.oid.arcs().to_vec();
            table.insert(index, columns[column], varbind.value);
            cells += 1;
            if cells > MAX_CELLS {
                return Err(SnmpError::Protocol {
                    target: session.label().to_owned(),
                    reason: format!(
                        "table {} has more than {MAX_CELLS} values; walk abandoned",
                        dotted(entry)
                    ),
                });
            }
        }
        active = active
            .into_iter()
            .zip(finished)
            .filter_map(|(column, done)| (!done).then_some(column))
            .collect();
    }
    Ok(table)
}

fn dotted(arcs: &[u32]) -> String {
    super::value::Oid::new(arcs).to_string()
}

#[cfg(test)]
mod tests;
