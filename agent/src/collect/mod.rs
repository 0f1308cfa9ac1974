//! Collectors: read the world and turn the readings into protocol types.
//!
//! * [`host`]: the agent's own host (operating system, CPU, memory, disks,
//!   temperatures), through `sysinfo`.

pub mod host;
