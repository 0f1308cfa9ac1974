//! The Outpost agent as a library: the binary (`main.rs`) is a thin
//! command-line layer over these modules, and the integration tests in
//! `agent/tests/` drive them directly against real peers.
//!
//! * [`collect`]: readings of the agent's own host.
//! * [`config`]: the configuration file.
//! * [`snmp`]: polling network devices over SNMP.
//! * [`check`]: the `check` command (validate the config, poll each target
//!   once, print a table).
//! * [`identity`] and [`enroll`]: the agent's key pair and the `enroll`
//!   command.
//! * [`uplink`]: the signed HTTPS client for the server (with TLS pinning).
//! * [`spool`]: the durable on-disk queue of messages for the server.
//! * [`detect`]: the fault detector (observations in, fault events out).
//! * [`daemon`]: the `run` command, tying it all together; [`metrics`]: its
//!   Prometheus endpoint.
//! * [`tunnel`]: the reverse SSH tunnel to the server's relay, through which
//!   engineers reach the devices in `[[tunnel.targets]]`.
//! * [`fsutil`]: atomic file replacement.
//! * [`update`]: self-update (signed releases, resumable download, atomic
//!   replacement, health check and rollback); [`version`]: the version this
//!   binary reports; [`download`]: the resumable, checked download of a
//!   signed artifact that self-update and upgrade jobs share.
//! * [`jobs`]: firmware/software upgrade jobs on the devices the agent
//!   polls, carried out by vendor plug-ins ([`plugin_kit`]: what the
//!   shipped plug-ins share).

pub mod check;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod download;
pub mod enroll;
pub mod fsutil;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod plugin_kit;
pub mod snmp;
pub mod spool;
pub mod tunnel;
pub mod update;
pub mod uplink;
pub mod version;
