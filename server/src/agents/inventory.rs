//! Device records from an agent's inventory: each polled device with a serial
//! number is matched by serial within the agent's customer and updated (model,
//! firmware and software versions, which agent looks after it and under which
//! target name), or created. Devices without a serial are reported back, not
//! guessed at.

use outpost_protocol::{DeviceInventory, Inventory, Outcome, OutcomeStatus};

use super::Agents;
use crate::error::Result;
use crate::store::agents::{AgentRow, ReportedDevice};

/// The vendor for an SNMP enterprise number (sysObjectID 1.3.6.1.4.1.N...).
pub fn vendor_from_oid(sys_object_id: &str) -> Option<&'static str> {
    let n = sys_object_id
        .trim_start_matches('.')
        .strip_prefix("1.3.6.1.4.1.")?
        .split('.')
        .next()?;
    Some(match n {
        "9" => "Cisco",
        "11" | "47196" => "HPE",
        "2011" => "Huawei",
        "2636" => "Juniper",
        "30065" => "Arista",
        "12356" => "Fortinet",
        "25461" => "Palo Alto Networks",
        "14988" => "MikroTik",
        "6876" => "VMware",
        "674" => "Dell",
        "8072" => "Net-SNMP",
        "311" => "Microsoft",
        "4526" => "Netgear",
        "41112" => "Ubiquiti",
        "6486" => "Nokia",
        "1916" => "Extreme Networks",
        "25506" => "H3C",
        "3902" => "ZTE",
        _ => return None,
    })
}

fn device_type(d: &DeviceInventory) -> &'static str {
    let text = format!("{} {}", d.sys_descr, d.model.as_deref().unwrap_or_default()).to_lowercase();
    let has = |w: &[&str]| w.iter().any(|x| text.contains(x));
    if has(&["firewall", "fortigate", "asa ", "pan-os"]) {
        "firewall"
    } else if has(&["router", "isr", "asr", "mx"]) {
        "router"
    } else if has(&[
        "switch", "catalyst", "nexus", "s57", "s67", "ce68", "ex2", "ex3", "ex4",
    ]) {
        "switch"
    } else if has(&["linux", "windows", "freebsd", "server"]) {
        "server"
    } else if has(&["access point", "aironet"]) {
        "access_point"
    } else {
        "other"
    }
}

fn clip(s: &str, n: usize) -> String {
    s.trim().chars().take(n).collect()
}

fn clip_opt(s: &Option<String>, n: usize) -> Option<String> {
    s.as_deref().map(|v| clip(v, n)).filter(|v| !v.is_empty())
}

/// Apply an inventory report.
pub async fn apply(a: &Agents, agent: &AgentRow, inv: &Inventory) -> Result<Outcome> {
    let now = a.now();
    let mut created = 0;
    let mut updated = 0;
    let mut skipped = Vec::new();
    for d in &inv.devices {
        let Some(serial) = clip_opt(&d.serial, 64) else {
            skipped.push(d.target.clone());
            continue;
        };
        let vendor = clip_opt(&d.vendor, 100)
            .or_else(|| vendor_from_oid(&d.sys_object_id).map(String::from))
            .unwrap_or_else(|| "unknown".into());
        let name = if d.sys_name.trim().is_empty() {
            clip(&d.target, 128)
        } else {
            clip(&d.sys_name, 128)
        };
        let reported = ReportedDevice {
            target: clip(&d.target, 128),
            name,
            device_type: device_type(d),
            vendor,
            model: clip_opt(&d.model, 100).unwrap_or_else(|| "unknown".into()),
            serial,
            firmware_version: clip_opt(&d.firmware_version, 100),
            software_version: clip_opt(&d.software_version, 100),
            sys_object_id: clip(&d.sys_object_id, 200),
        };
        let (_, new) = a
            .cases
            .store
            .upsert_reported_device(
                agent.id,
                agent.organization_id,
                agent.site_id,
                &reported,
                now,
            )
            .await?;
        if new {
            created += 1;
        } else {
            updated += 1;
        }
    }
    let mut detail = format!("{created} devices created, {updated} updated");
    if !skipped.is_empty() {
        detail.push_str(&format!(
            "; no serial number reported for {}",
            skipped.join(", ")
        ));
    }
    Ok(Outcome {
        status: OutcomeStatus::Accepted,
        detail: Some(detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_from_enterprise_numbers() {
        assert_eq!(vendor_from_oid("1.3.6.1.4.1.9.1.1208"), Some("Cisco"));
        assert_eq!(vendor_from_oid(".1.3.6.1.4.1.2011.2.23"), Some("Huawei"));
        assert_eq!(vendor_from_oid("1.3.6.1.4.1.8072.3.2.10"), Some("Net-SNMP"));
        assert_eq!(vendor_from_oid("1.3.6.1.4.1.99999.1"), None);
        assert_eq!(vendor_from_oid("1.3.6.1.2.1"), None);
        assert_eq!(vendor_from_oid(""), None);
    }
}
