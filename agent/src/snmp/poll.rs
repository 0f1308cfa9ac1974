//! Polling: one device through a [`Session`] ([`poll_device`]), and many
//! configured targets at once with a bound on how many are in flight
//! ([`poll_targets`]).
//!
//! A device is read gently: the system group in one GET, then one table
//! after another, each as a multi-column GETBULK walk (see [`super::table`]).
//! The poll fails as a whole only when the device cannot be talked to (no
//! answer, network or authentication errors); a table that breaks on its
//! own becomes a warning on an otherwise good [`DevicePoll`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::device::{self, DevicePoll, SystemGroup};
use super::oids::{
    entity, entity_sensor, entity_state, host_resources as hr, if_table, if_x_table, lldp, system,
};
use super::table::{walk_columns, Table};
use super::{AsyncSnmpSession, Session, SnmpError};
use crate::config::SnmpTarget;

/// The tables a poll walks: a name for warnings, the entry OID and the
/// columns wanted.
pub const TABLES: [(&str, &[u32], &[u32]); 10] = [
    (
        "ifTable",
        if_table::ENTRY,
        &[
            if_table::DESCR,
            if_table::TYPE,
            if_table::ADMIN_STATUS,
            if_table::OPER_STATUS,
            if_table::IN_DISCARDS,
            if_table::IN_ERRORS,
            if_table::OUT_DISCARDS,
            if_table::OUT_ERRORS,
        ],
    ),
    (
        "ifXTable",
        if_x_table::ENTRY,
        &[
            if_x_table::NAME,
            if_x_table::HC_IN_OCTETS,
            if_x_table::HC_OUT_OCTETS,
            if_x_table::HIGH_SPEED,
            if_x_table::ALIAS,
        ],
    ),
    (
        "entPhysicalTable",
        entity::ENTRY,
        &[
            entity::DESCR,
            entity::CLASS,
            entity::NAME,
            entity::HARDWARE_REV,
            entity::FIRMWARE_REV,
            entity::SOFTWARE_REV,
            entity::SERIAL,
            entity::MFG_NAME,
            entity::MODEL,
        ],
    ),
    (
        "entPhySensorTable",
        entity_sensor::ENTRY,
        &[
            entity_sensor::TYPE,
            entity_sensor::SCALE,
            entity_sensor::PRECISION,
            entity_sensor::VALUE,
            entity_sensor::OPER_STATUS,
        ],
    ),
    ("entStateTable", entity_state::ENTRY, &[entity_state::OPER]),
    (
        "hrProcessorTable",
        hr::PROCESSOR_ENTRY,
        &[hr::PROCESSOR_LOAD],
    ),
    (
        "hrStorageTable",
        hr::STORAGE_ENTRY,
        &[
            hr::STORAGE_TYPE,
            hr::STORAGE_DESCR,
            hr::STORAGE_ALLOCATION_UNITS,
            hr::STORAGE_SIZE,
            hr::STORAGE_USED,
        ],
    ),
    (
        "hrDeviceTable",
        hr::DEVICE_ENTRY,
        &[hr::DEVICE_DESCR, hr::DEVICE_STATUS],
    ),
    (
        "lldpRemTable",
        lldp::REM_ENTRY,
        &[
            lldp::REM_CHASSIS_ID_SUBTYPE,
            lldp::REM_CHASSIS_ID,
            lldp::REM_PORT_ID_SUBTYPE,
            lldp::REM_PORT_ID,
            lldp::REM_PORT_DESC,
            lldp::REM_SYS_NAME,
        ],
    ),
    (
        "lldpLocPortTable",
        lldp::LOC_PORT_ENTRY,
        &[lldp::LOC_PORT_ID, lldp::LOC_PORT_DESC],
    ),
];

/// Polls one device: system group, interfaces, HOST-RESOURCES, ENTITY-MIB
/// inventory, sensors and states, LLDP neighbours. `now` stamps the result.
pub async fn poll_device<S: Session>(
    session: &S,
    target: &SnmpTarget,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<DevicePoll, SnmpError> {
    let started = Instant::now();
    let system_vbs = session
        .get(&[
            system::SYS_DESCR,
            system::SYS_OBJECT_ID,
            system::SYS_UP_TIME,
            system::SYS_NAME,
        ])
        .await?;
    let system = SystemGroup::from_varbinds(&system_vbs);

    let mut warnings = Vec::new();
    let mut tables: Vec<Table> = Vec::with_capacity(TABLES.len());
    for (name, entry, columns) in TABLES {
        match walk_columns(session, entry, columns).await {
            Ok(table) => tables.push(table),
            // The device stopped answering, or refuses us: give up now.
            Err(err) if err.is_unreachable() || matches!(err, SnmpError::Authentication { .. }) => {
                return Err(err)
            }
            Err(err) => {
                warnings.push(format!("{name}: {err}"));
                tables.push(Table::default());
            }
        }
    }
    let [if_rows, if_x_rows, physical, sensor_rows, state_rows, processor_rows, storage_rows, hr_device_rows, lldp_remote, lldp_local] =
        <[Table; TABLES.len()]>::try_from(tables).map_err(|_| SnmpError::Protocol {
            target: session.label().to_owned(),
            reason: "internal error: table count mismatch".to_owned(),
        })?;

    Ok(DevicePoll {
        collected_at: now(),
        elapsed: started.elapsed(),
        sys_uptime_centis: system.uptime_centis,
        inventory: device::inventory(&target.name, &target.address, &system, &physical),
        interfaces: device::interfaces(&if_rows, &if_x_rows),
        processors: device::processors(&processor_rows),
        storage: device::storage(&storage_rows),
        hr_devices: device::hr_devices(&hr_device_rows),
        sensors: device::sensors(&sensor_rows, &physical),
        entity_states: device::entity_states(&state_rows, &physical),
        neighbours: device::neighbours(&lldp_remote, &lldp_local),
        warnings,
    })
}

/// The outcome of polling one configured target.
#[derive(Debug)]
pub struct TargetOutcome {
    /// The target as configured.
    pub target: SnmpTarget,
    /// How long connecting and polling took.
    pub elapsed: Duration,
    /// The poll, or why it failed.
    pub result: Result<DevicePoll, SnmpError>,
}

/// Opens a session to each target and polls it once, at most `concurrency`
/// targets at a time. Outcomes come back in the order of `targets`.
pub async fn poll_targets(targets: &[SnmpTarget], concurrency: usize) -> Vec<TargetOutcome> {
    let mut outcomes: Vec<Option<TargetOutcome>> = targets.iter().map(|_| None).collect();
    poll_targets_each(targets, concurrency, |position, outcome| {
        outcomes[position] = Some(outcome)
    })
    .await;
    outcomes.into_iter().flatten().collect()
}

/// Like [`poll_targets`], but hands each outcome (with the target's
/// position in `targets`) to `on_outcome` as soon as it is complete, in
/// completion order, so that at most about `concurrency` polls are held in
/// memory at a time rather than all of them. Every target gets exactly one
/// outcome.
pub async fn poll_targets_each(
    targets: &[SnmpTarget],
    concurrency: usize,
    mut on_outcome: impl FnMut(usize, TargetOutcome),
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (position, target) in targets.iter().cloned().enumerate() {
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail; if it
            // ever did, polling without a permit is the harmless fallback.
            let _permit = permits.acquire_owned().await.ok();
            let started = Instant::now();
            let result = match AsyncSnmpSession::connect(&target).await {
                Ok(session) => poll_device(&session, &target, Utc::now).await,
                Err(err) => Err(err),
            };
            let outcome = TargetOutcome {
                elapsed: started.elapsed(),
                target,
                result,
            };
            (position, outcome)
        });
    }
    let mut done = vec![false; targets.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((position, outcome)) => {
                if let Some(seen) = done.get_mut(position) {
                    *seen = true;
                }
                on_outcome(position, outcome);
            }
            // A poll task panicked: a bug, reported below as a failed poll.
            Err(err) => tracing::error!(error = %err, "SNMP poll task failed"),
        }
    }
    for (position, target) in targets.iter().enumerate() {
        if !done[position] {
            on_outcome(
                position,
                TargetOutcome {
                    target: target.clone(),
                    elapsed: Duration::ZERO,
                    result: Err(SnmpError::Protocol {
                        target: target.name.clone(),
                        reason: "internal error: the poll task failed".to_owned(),
                    }),
                },
            );
        }
    }
}
