//! Confirming an upgrade over SNMP: what version a device says it runs.
//!
//! One look ([`observe`]) is a GET of `sysDescr.0` and a walk of the
//! ENTITY-MIB class and software revision columns, with the agent's own
//! target configuration (address, v2c/v3 credentials, timeout, retries).
//! The device runs the target ([`Observed::runs`]) when any chassis row's
//! `entPhysicalSoftwareRev` equals it, or `sysDescr` holds it as a whole
//! token (`17.9.4` is not in `Version 17.9.41,`).

use outpost_protocol::PhysicalClass;

use crate::config::SnmpTarget;
use crate::snmp::device::SystemGroup;
use crate::snmp::oids::{entity, system};
use crate::snmp::table::walk_columns;
use crate::snmp::{AsyncSnmpSession, Session, SnmpError};

/// What a device said about its software.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `sysDescr.0`.
    pub sys_descr: String,
    /// The non-empty `entPhysicalSoftwareRev` of chassis rows.
    pub chassis_software: Vec<String>,
}

impl Observed {
    /// Whether the device runs `version`.
    pub fn runs(&self, version: &str) -> bool {
        self.chassis_software.iter().any(|v| v == version) || has_token(&self.sys_descr, version)
    }

    /// The version the device reports, for messages: the chassis software
    /// revision, else the word after "Version" in sysDescr, else sysDescr
    /// itself (clipped).
    pub fn version(&self) -> Option<String> {
        if let Some(v) = self.chassis_software.first() {
            return Some(v.clone());
        }
        if let Some(v) = version_after_word(&self.sys_descr) {
            return Some(v);
        }
        (!self.sys_descr.is_empty()).then(|| super::plugin::clip(&self.sys_descr, 120))
    }
}

/// Splits text into tokens at characters that cannot be part of a version.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| !t.is_empty())
}

/// Whether `version` is a whole token of `text`.
pub fn has_token(text: &str, version: &str) -> bool {
    !version.is_empty() && tokens(text).any(|t| t == version)
}

/// The token after the word "Version" (any case), if any.
pub fn version_after_word(text: &str) -> Option<String> {
    let mut words = tokens(text);
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("version") {
            return words.next().map(str::to_owned);
        }
    }
    None
}

/// Asks the device once.
pub async fn observe(target: &SnmpTarget) -> Result<Observed, SnmpError> {
    let session = AsyncSnmpSession::connect(target).await?;
    let varbinds = session.get(&[system::SYS_DESCR]).await?;
    let system = SystemGroup::from_varbinds(&varbinds);
    let chassis_software = match walk_columns(
        &session,
        entity::ENTRY,
        &[entity::CLASS, entity::SOFTWARE_REV],
    )
    .await
    {
        Ok(table) => table
            .simple_rows()
            .filter(|(_, row)| row.int(entity::CLASS) == Some(PhysicalClass::Chassis.mib_value()))
            .filter_map(|(_, row)| row.text(entity::SOFTWARE_REV))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
        Err(err) if err.is_unreachable() => return Err(err),
        // No ENTITY-MIB: sysDescr alone decides.
        Err(_) => Vec::new(),
    };
    Ok(Observed {
        sys_descr: system.descr,
        chassis_software,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_as_whole_tokens() {
        let descr = "Cisco IOS Software, Version 17.9.41, RELEASE SOFTWARE (fc3)";
        assert!(!has_token(descr, "17.9.4"));
        assert!(has_token(descr, "17.9.41"));
        assert!(has_token("JUNOS 21.4R3-S5.4 built", "21.4R3-S5.4"));
        assert!(has_token("Version 17.9.4.", "17.9.4"));
        assert!(!has_token("Version 17.9.4a", "17.9.4"));
        assert!(!has_token("Version 117.9.4", "17.9.4"));
        assert!(!has_token("anything", ""));
        let seen = Observed {
            sys_descr: descr.into(),
            chassis_software: vec![],
        };
        assert!(!seen.runs("17.9.4"));
        assert_eq!(seen.version().as_deref(), Some("17.9.41"));
        let seen = Observed {
            sys_descr: "no version here".into(),
            chassis_software: vec!["17.09.04".into()],
        };
        assert!(seen.runs("17.09.04"));
        assert!(!seen.runs("17.9.4"));
        assert_eq!(seen.version().as_deref(), Some("17.09.04"));
    }
}
