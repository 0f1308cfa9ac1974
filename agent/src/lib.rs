//! The Outpost agent as a library: the binary (`main.rs`) is a thin
//! command-line layer over these modules, and the integration tests in
//! `agent/tests/` drive them directly against real peers.
//!
//! * [`collect`]: readings of the agent's own host.
//! * [`config`]: the configuration file.
//! * [`snmp`]: polling network devices over SNMP.
//! * [`check`]: the `check` command (validate the config, poll each target
//!   once, print a table).

pub mod check;
pub mod collect;
pub mod config;
pub mod snmp;
