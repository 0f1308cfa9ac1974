//! SNMP: polling network devices (v2c and v3) and what the agent learns
//! from them.
//!
//! * [`Session`]: the operations the agent needs from an SNMP library (GET,
//!   GETBULK, a GETBULK walk); [`backend`] implements it with `async-snmp`,
//!   the only module that names that crate.
//! * [`value`]: our own OID, value and binding types.
//! * [`oids`]: the numeric OIDs polled, by MIB.
//! * [`table`]: multi-column GETBULK table walks.
//! * [`device`]: [`DevicePoll`], the typed result of polling one device,
//!   built from walked tables (pure code).
//! * [`poll`]: polling one device, and many with bounded concurrency.
//! * [`trap`]: the trap and inform receiver (v2c and v3).
//! * [`error`]: why an exchange failed ([`SnmpError`]).

pub mod backend;
pub mod device;
pub mod error;
pub mod oids;
pub mod poll;
pub mod table;
pub mod trap;
pub mod value;

use std::future::Future;

pub use backend::AsyncSnmpSession;
pub use device::DevicePoll;
pub use error::SnmpError;
pub use value::{Oid, Value, VarBind};

/// An SNMP session with one device. Implementations keep whatever state the
/// protocol needs (SNMPv3 engine ID and time), so a session is opened once
/// and reused across polls.
pub trait Session: Send + Sync {
    /// `name (address)` of the target, for messages.
    fn label(&self) -> &str;

    /// GETBULK max-repetitions configured for the target.
    fn max_repetitions(&self) -> u32;

    /// GET of the given instances. Instances the device lacks come back as
    /// exception values, not as errors.
    fn get(&self, oids: &[&[u32]]) -> impl Future<Output = Result<Vec<VarBind>, SnmpError>> + Send;

    /// One GETBULK request (no non-repeaters): up to `max_repetitions`
    /// successors of each OID, interleaved row by row as on the wire. The
    /// device may return fewer.
    fn get_bulk(
        &self,
        oids: &[&[u32]],
        max_repetitions: u32,
    ) -> impl Future<Output = Result<Vec<VarBind>, SnmpError>> + Send;

    /// Every instance under `root`, in order, walked with GETBULK.
    fn bulk_walk(
        &self,
        root: &[u32],
    ) -> impl Future<Output = Result<Vec<VarBind>, SnmpError>> + Send;
}
