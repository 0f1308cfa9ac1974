//! Outpost case server: the library behind the `outpost-server` binary.
//! See ARCHITECTURE.md for the map of modules and the rules they keep.

pub mod agents;
pub mod auth;
pub mod backup;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod directory;
pub mod error;
pub mod field;
pub mod http;
pub mod kb;
pub mod mail;
pub mod notify;
pub mod password;
pub mod relay;
pub mod releases;
pub mod reports;
pub mod rma;
pub mod sla;
pub mod store;
pub mod tls;
pub mod upgrades;
pub mod validate;
